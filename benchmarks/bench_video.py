#!/usr/bin/env python
"""Frames per second of ``enhance`` on a video, exact and ``--fast``, against decoding and encoding
the same video alone (the I/O baseline: PyAV decode to RGB, encode with the same codec and CRF,
audio copied), all in one run.

A synthetic clip (a moving backlit scene: bright sky, dark subject, noise) is written with PyAV.
Each variant runs in a fresh child process; the figure is the frame loop alone (in-process: torch
imported and the weights loaded before the clock starts), and the whole child process's seconds
are printed beside it. The load average (``uptime``) before each run is printed too: other jobs
on the machine make the seconds longer, the ratios within one run are the figures.

    python -m benchmarks.bench_video                                # 640x360, 12 frames
    python -m benchmarks.bench_video --size 1280x720 --frames 48 --modes io,fast,exact
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_env import ROOT, WEIGHTS, load


def write_clip(path: Path, width: int, height: int, frames: int, fps: int = 24) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "18"}
        for t in range(frames):
            cx = width * (0.3 + 0.4 * t / max(1, frames - 1))
            subject = ((xx - cx) ** 2 + (yy - height * 0.7) ** 2) < (min(height, width) * 0.3) ** 2
            sky = 0.9 - 0.3 * yy / height
            img = np.where(subject, 0.08, sky)[..., None] * np.array([1.0, 0.9, 0.8], np.float32)
            img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
            f = av.VideoFrame.from_ndarray((img * 255).astype(np.uint8), format="rgb24")
            f.pts = t
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))


def io_only(src: Path, dst: Path) -> int:
    """What ``video.enhance_video`` does without the network: decode to RGB, encode (h264, CRF 18)."""
    import av

    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate or 25)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.time_base = vin.time_base
        vout.options = {"crf": "18"}
        for packet in inp.demux(vin):
            for frame in packet.decode():
                f = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                f.pts, f.time_base = frame.pts, frame.time_base
                out.mux(vout.encode(f))
                n += 1
        out.mux(vout.encode(None))
    return n


def child(mode: str, src: Path, dst: Path, weights: Path, device: str = "cpu") -> None:
    t0 = time.perf_counter()
    if mode == "io":
        t1 = time.perf_counter()
        n = io_only(src, dst)
    else:
        from cliplit_core.weights.checkpoint import load_network
        from cliplit_core.engine.options import EnhanceOptions
        from cliplit_core.engine.run_context import RunContext
        from cliplit_core.files.video import enhance_video

        net = load_network(weights)
        t1 = time.perf_counter()
        n = enhance_video(net, src, dst, options=EnhanceOptions(mode="preview" if mode == "fast" else "exact"),
                          run=RunContext(device=device))
    t2 = time.perf_counter()
    print("RESULT " + json.dumps({"frames": n, "loop_s": t2 - t1, "setup_s": t1 - t0}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="640x360",
                    help="WIDTHxHEIGHT of the clip (default 640x360; below about 0.07 MP --fast is the exact path)")
    ap.add_argument("--frames", type=int, default=12, help="frames in the clip (default 12)")
    ap.add_argument("--modes", default="io,fast,exact", help="comma-separated: io, fast, exact (default all)")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--device", default="cpu", help="device of the enhance runs (default cpu)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "DST"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.weights, args.device)
        return 0
    if not args.weights.exists():
        print(f"error: {args.weights} not found (the test data lives in ../shared/data)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cliplit-bench-video-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, width, height, args.frames)
        print(f"# {args.frames} frames of {width}x{height} ({width * height / 1e6:.2f} MP), h264 CRF 18, "
              f"--device {args.device}, {os.cpu_count()} CPUs\n")
        print("| variant | frames/s (frame loop, in-process) | s/frame | whole child process, s | x I/O alone | "
              "load before |\n|---|---|---|---|---|---|")
        io_fps = None
        for mode in modes:
            before = load()
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", __spec__.name, "--weights", str(args.weights), "--device", args.device,
                                "--child", mode, str(clip), str(Path(tmp) / f"out_{mode}.mp4")],
                               capture_output=True, text=True, cwd=ROOT)
            whole = time.perf_counter() - t
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not line:
                print(f"error: {mode} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(line[0][7:])
            fps = r["frames"] / r["loop_s"]
            io_fps = fps if mode == "io" else io_fps
            rows.append({"mode": mode, "fps": fps, "whole_s": whole, "load": before, **r})
            ratio = f"{fps / io_fps:.3f}x" if io_fps else "-"
            name = {"io": "decode + encode alone (I/O baseline)", "fast": "enhance --fast",
                    "exact": "enhance (exact)"}[mode]
            print(f"| {name} | {fps:.2f} | {1 / fps:.3f} | {whole:.1f} | {ratio} | {before} |", flush=True)
    by = {r["mode"]: r["fps"] for r in rows}
    parts = [f"{m} {by[m]:.2f} frames/s" for m in ("io", "fast", "exact") if m in by]
    extra = f"; --fast {by['fast'] / by['exact']:.1f}x exact" if "fast" in by and "exact" in by else ""
    print(f"\nsummary: {width}x{height}, {args.frames} frames: " + ", ".join(parts) + extra)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
