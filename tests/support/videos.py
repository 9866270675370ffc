"""Synthetic video files with chosen frame times (PyAV), and what a video file holds."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

W, H = 64, 48
AUDIO_RATE = 16000


def frame_times(gaps: Sequence[float], count: int, start: float = 0.0) -> list[float]:
    """``count`` presentation times from ``start``, the gaps between them taken from ``gaps`` in turn."""
    times = [start]
    for k in range(count - 1):
        times.append(times[-1] + gaps[k % len(gaps)])
    return times


def write_video(path: Path, times: Sequence[float], *, encoder: str = "libx264", audio_seconds: float = 0.0,
                time_base: Fraction = Fraction(1, 1000), rate: Fraction | int | None = None) -> None:
    """A video whose frame k is shown at ``times[k]`` seconds (``pts`` set explicitly in ``time_base``),
    each frame a different picture; with ``audio_seconds`` also an AAC track (a sine) from 0."""
    import av

    mean_gap = (times[-1] - times[0]) / max(1, len(times) - 1) or 0.04
    with av.open(str(path), "w") as out:
        vs = out.add_stream(encoder, rate=rate or Fraction(round(1 / mean_gap * 1000), 1000), time_base=time_base)
        vs.width, vs.height = W, H
        vs.pix_fmt = "bgr0" if encoder == "ffv1" else "yuv420p"
        aus = None
        if audio_seconds:
            aus = out.add_stream("aac", rate=AUDIO_RATE)
            aus.layout = "mono"
        rng = np.random.default_rng(len(times))
        for k, t in enumerate(times):
            img = np.clip(rng.normal(40 + 6 * k, 20, (H, W, 3)), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = round(Fraction(t) / time_base), time_base
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if aus is not None:
            for k in range(int(audio_seconds * AUDIO_RATE) // 1024):
                samples = (0.3 * np.sin(np.arange(k * 1024, (k + 1) * 1024) / 7.0)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                af.sample_rate, af.pts = AUDIO_RATE, k * 1024
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))


class VideoTiming(NamedTuple):
    times: list[float]           # each decoded frame's presentation time, seconds
    tick: Fraction               # the video stream's time base
    duration: float | None       # the container's duration, seconds
    average_rate: Fraction | None
    audio: list[tuple[bytes, float | None]]  # every audio packet: its bytes and its time


def video_timing(path: Path) -> VideoTiming:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(v)]
        tick, rate = v.time_base, v.average_rate
        duration = c.duration / 1e6 if c.duration is not None else None
    audio = []
    with av.open(str(path)) as c:
        if c.streams.audio:
            audio = [(bytes(p), None if p.pts is None else float(p.pts * p.time_base))
                     for p in c.demux(c.streams.audio[0]) if p.size]
    return VideoTiming(times, tick, duration, rate, audio)
