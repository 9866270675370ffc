#!/usr/bin/env python
"""What a small ``tile_size`` costs in Backlit Enhance: in-process time of the node's
``enhance_batch`` on one image per tile size, as a ratio to automatic tiling (0) in the
same run (random network weights: only the shapes matter for timing)::

    python -m benchmarks.bench_tile_size                      # 512 x 512, tiles 64 128 256
    python -m benchmarks.bench_tile_size --size 1024 --tiles 128 256 512
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from cliplit_core.light import tiling  # noqa: E402
from cliplit_core.light.network import CLIPLITNet  # noqa: E402
from nodes import enhance as enh  # noqa: E402
from cliplit_core.model import CLIPLITModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="square image side in pixels")
    ap.add_argument("--tiles", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = CLIPLITModel(net=CLIPLITNet().eval().requires_grad_(False), source="random")
    image = torch.rand(1, args.size, args.size, 3)
    enh.enhance_batch(model, image[:, :64, :64])  # warm-up: allocator, kernels

    def timed(tile: int) -> float:
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            enh.enhance_batch(model, image, tile_size=tile)
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    base = timed(0)
    print(f"Backlit Enhance, {args.size} x {args.size}, cpu, {torch.get_num_threads()} threads, in-process, "
          f"median of {args.repeats}")
    print(f"  tile_size    0 (automatic)              {base:7.2f} s   1.0x")
    for tile in args.tiles:
        t = timed(tile)
        n = len(tiling.tile_grid(args.size, args.size, tile))
        print(f"  tile_size {tile:4d} ({n:4d} tiles, 2 passes)   {t:7.2f} s  {t / base:4.1f}x")


if __name__ == "__main__":
    main()
