"""Video files through PyAV: frames decoded, enhanced and encoded one at a time.

Memory does not grow with the video's length: with temporal smoothing only the
look-ahead window (``LightSmoother.radius`` frames) is held back. Audio packets
are copied unchanged; every frame keeps its timestamp (so the frame rate and any
variable timing survive), and the display rotation is carried over. PyAV is
imported only when a video is enhanced.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from ..errors import CLIPLITError
from ..engine.frames import FrameStream
from ..engine.options import EnhanceOptions
from ..engine.run_context import RunContext
from .atomic import write_together
from .video_timing import FrameTimes

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
KEPT_CONTAINERS = (".mp4", ".mov", ".mkv")  # written in the input's container; others become .mp4
DECODE_ORDER_DURATIONS = ("mp4", "mov")  # muxers that store each frame's duration in decoding order


class VideoCodec(NamedTuple):
    encoder: str         # FFmpeg encoder name
    pix_fmt: str         # pixel format of the encoded frames
    default_crf: int | None  # None: lossless, no quality setting
    suffix: str | None   # container it needs (None: the input's, see KEPT_CONTAINERS)


VIDEO_CODECS = {"h264": VideoCodec("libx264", "yuv420p", 18, None),
                "h265": VideoCodec("libx265", "yuv420p", 22, None),
                "lossless": VideoCodec("ffv1", "bgr0", None, ".mkv")}


class VideoError(CLIPLITError):
    """A video that cannot be read or written (the run goes on with the next input)."""


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def output_suffix(src: Path, codec: str) -> str:
    need = VIDEO_CODECS[codec].suffix
    if need:
        return need
    return src.suffix.lower() if src.suffix.lower() in KEPT_CONTAINERS else ".mp4"


def _av():
    try:
        import av
    except ImportError:
        raise CLIPLITError("video files need PyAV: pip install av") from None
    return av


def _first_frame(av, path: Path):
    """(rotation in degrees, width, height) from the first decoded frame."""
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            return int(round(frame.rotation or 0)), frame.width, frame.height
    raise VideoError(f"{path}: video stream holds no frames")


def enhance_video(model, src: Path, dst: Path, *, options: EnhanceOptions = EnhanceOptions(),
                  run: RunContext = RunContext(), codec: str = "h264", crf: int | None = None,
                  progress: Callable[[int, int | None], None] | None = None, record=None) -> int:
    """Enhance every frame of ``src`` into ``dst`` (written atomically) as ``options`` say (strength,
    mode, precision, tile, temporal smoothing; the frames run in the engine: engine/frames.py);
    returns the frame count. ``progress(frames_done, frames_total_or_None)`` after each frame;
    ``record`` (the output manifest's) lists the result as ours before it is renamed into place."""
    av = _av()
    spec = VIDEO_CODECS[codec]
    try:
        inp = av.open(str(src))
    except av.FFmpegError as e:
        raise VideoError(f"{src}: cannot read video ({e})") from None
    try:
        with inp:
            if not inp.streams.video:
                raise VideoError(f"{src}: no video stream")
            vin = inp.streams.video[0]
            rotation, width, height = _first_frame(av, src)
            total = vin.frames or None
            dst.parent.mkdir(parents=True, exist_ok=True)
            end = vin.duration + (vin.start_time or 0) if vin.duration else None
            times = FrameTimes(vin.time_base, vin.average_rate or vin.guessed_rate, end)
            written = 0

            def write(tmp: Path) -> None:  # fills the temporary file; write_together renames it
                nonlocal written
                with av.open(str(tmp), "w") as out:
                    # the encoder in the input's time base, not 1 / rate: each frame keeps its own pts
                    vout = out.add_stream(spec.encoder, rate=times.rate, time_base=times.time_base)
                    vout.width, vout.height = width, height
                    odd = width % 2 or height % 2
                    vout.pix_fmt = "yuv444p" if odd and spec.pix_fmt == "yuv420p" else spec.pix_fmt
                    if spec.default_crf is not None:
                        vout.options = {"crf": str(spec.default_crf if crf is None else crf)}
                    if rotation:
                        vout.set_display_rotation(rotation)
                    audio = {a.index: out.add_stream_from_template(a) for a in inp.streams.audio}
                    frames = FrameStream(model, options, run, height=height, width=width)

                    def encode(done):
                        nonlocal written
                        for pixels, (pts, time_base) in done:
                            f = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                            f.pts, f.time_base = pts, time_base
                            out.mux(times.timed(vout.encode(f)))
                            written += 1
                            if progress is not None:
                                progress(written, total)

                    for packet in inp.demux(vin, *inp.streams.audio):
                        if packet.stream.index in audio:
                            if packet.dts is not None:
                                packet.stream = audio[packet.stream.index]
                                out.mux(packet)
                            continue
                        for frame in packet.decode():
                            pts = times.pts(frame.pts, frame.time_base, frame.duration)
                            encode(frames.push(frame.to_ndarray(format="rgb24"), (pts, times.time_base)))
                    times.finish()
                    encode(frames.finish())
                    decode_order = out.format.name in DECODE_ORDER_DURATIONS
                    out.mux(times.timed(vout.encode(None), last=True, decode_order=decode_order))
            write_together([(dst, write)], record=record)
        return written
    except av.FFmpegError as e:
        raise VideoError(f"{src}: video failed ({e})") from None
