#!/usr/bin/env python
"""Half precision vs float32, photo by photo: share of pixels within 1/255, worst level, light-map
error and time, whole image and tiled (all on one device, default the CPU)::

    python -m benchmarks.bench_dtype_fidelity                       # bfloat16, ../shared/data/backlit
    python -m benchmarks.bench_dtype_fidelity --dtype float16 --device cuda
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from cliplit_core.weights.checkpoint import load_network  # noqa: E402
from cliplit_core.files.images import IMAGE_EXTENSIONS, read_image  # noqa: E402
from cliplit_core.engine.inference import enhance  # noqa: E402
from cliplit_core.engine.precision import compute_dtype  # noqa: E402

from tests.support.data import SHARED_DATA as DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)


def within(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(% of pixels whose channels are all within 1/255, worst difference in 8-bit levels)."""
    d = (a - b).abs().amax(1)
    return 100.0 * (d <= 1 / 255 + 1e-6).float().mean().item(), 255.0 * d.max().item()


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DATA / "official_weights" / "enhancement_model.pth"))
    ap.add_argument("--photos", default=str(DATA / "backlit"))
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile", type=int, default=256, help="tile size of the tiled run")
    args = ap.parse_args()
    net = load_network(args.weights)
    dt = compute_dtype(args.dtype, args.device)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    print(f"# {dt} vs float32 on {args.device}, torch {torch.__version__}\n")
    print(f"| photo | MP | float32 s | {args.dtype} s | <=1/255 | worst (levels) | max dL | "
          f"tiled {args.tile}: <=1/255 | worst |\n|---|---|---|---|---|---|---|---|---|")
    worst = 100.0
    for p in photos:
        x = torch.from_numpy(read_image(p)[..., :3].copy()).permute(2, 0, 1)[None].contiguous()
        ref, t32 = timed(lambda: enhance(net, x, tile=None, dtype=torch.float32, device=args.device))
        half, th = timed(lambda: enhance(net, x, tile=None, dtype=dt, device=args.device))
        tiled = enhance(net, x, tile=args.tile, dtype=dt, device=args.device)
        w, lv = within(half.image, ref.image)
        wt, lvt = within(tiled.image, ref.image)
        worst = min(worst, w, wt)
        dl = (half.light - ref.light).abs().max().item()
        print(f"| {p.name} | {x.shape[-2] * x.shape[-1] / 1e6:.2f} | {t32:.1f} | {th:.1f} | {w:.3f}% | {lv:.2f} | "
              f"{dl:.1e} | {wt:.3f}% | {lvt:.2f} |", flush=True)
    print(f"\nworst share within 1/255: {worst:.3f}% (bar: 99.9%)")


if __name__ == "__main__":
    main()
