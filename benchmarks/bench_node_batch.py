#!/usr/bin/env python
"""Host memory of Backlit Enhance on a long batch (video frames): peak resident memory above the
input batch, in units of the batch's size, for this checkout and optionally another one.

Each run is a child process that builds the batch, then calls the node's ``enhance_batch``
(plain, and with temporal smoothing) and reports its peak RSS above the RSS it had with the
input in memory. The output batch itself (1 unit) and its light maps (1/3) cannot be avoided::

    python -m benchmarks.bench_node_batch
    git worktree add /tmp/cliplit_before 430c7b2          # e.g. the commit before a change
    python -m benchmarks.bench_node_batch --baseline-repo /tmp/cliplit_before
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procmem import rss_kib

ROOT = Path(__file__).resolve().parents[1]




def child(args) -> None:
    sys.path.insert(0, args.repo)
    import torch

    from cliplit_core.light.network import CLIPLITNet
    from nodes import enhance as enh
    from cliplit_core.model import CLIPLITModel

    torch.manual_seed(0)
    net = CLIPLITNet().eval().requires_grad_(False)
    model = CLIPLITModel(net=net, source="random")
    frames = torch.rand(args.frames, args.height, args.width, 3)
    enh.enhance_batch(model, frames[:1, :64, :64], tile_size=args.tile)  # warm-up: allocator, kernels
    base = rss_kib("VmRSS")
    t = time.perf_counter()
    out, light = enh.enhance_batch(model, frames, tile_size=args.tile, temporal_smoothing=args.temporal)
    dt = time.perf_counter() - t
    print("RESULT " + json.dumps({"peak_above_input_kib": rss_kib("VmHWM") - base, "seconds": dt,
                                  "input_kib": frames.numel() * 4 // 1024}))


def run(repo: str, args, temporal: float) -> dict:
    cmd = [sys.executable, "-m", __spec__.name, "--child", "--repo", repo, "--frames", str(args.frames), "--height",
           str(args.height), "--width", str(args.width), "--tile", str(args.tile), "--temporal", str(temporal)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        raise SystemExit(f"child failed ({repo}):\n{p.stderr[-2000:]}")
    return json.loads(line[0][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--tile", type=int, default=128, help="tile size (keeps the network's own memory small)")
    ap.add_argument("--baseline-repo", default=None, help="another checkout to compare with (same run)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--repo", default=str(ROOT), help=argparse.SUPPRESS)
    ap.add_argument("--temporal", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    repos = [("this checkout", str(ROOT))] + ([("baseline", args.baseline_repo)] if args.baseline_repo else [])
    mb = args.frames * args.height * args.width * 3 * 4 / 2 ** 20
    print(f"# Backlit Enhance on {args.frames} frames of {args.width}x{args.height} (input {mb:.0f} MiB), "
          f"tiles of {args.tile}, CPU\n")
    print("| code | path | peak RSS above the input, MiB | in input sizes | seconds |\n|---|---|---|---|---|")
    for name, repo in repos:
        for label, temporal in (("plain", 0.0), ("temporal smoothing 2", 2.0)):
            r = run(repo, args, temporal)
            above = r["peak_above_input_kib"] / 1024
            print(f"| {name} | {label} | {above:.0f} | {above / (r['input_kib'] / 1024):.2f} | {r['seconds']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
