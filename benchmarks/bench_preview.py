#!/usr/bin/env python
"""Fast preview (``--fast``) vs the exact result: PSNR per photo and CPU speed-up.

For every photo in ``../shared/data/backlit`` the exact enhancement (float32, whole
image) is the reference; the preview is computed at each ``--scales`` factor and its
PSNR (enhanced images in 0..1, all channels) printed. The speed-up is measured on
the 3.1 MP photo with interleaved rounds (medians)::

    python -m benchmarks.bench_preview                 # default scale + 2, 3, 4 for the trade-off
    python -m benchmarks.bench_preview --scales 4 --rounds 5
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from cliplit_core.engine import preview  # noqa: E402
from cliplit_core.weights.checkpoint import load_network  # noqa: E402
from cliplit_core.files.images import read_image  # noqa: E402
from cliplit_core.engine.inference import enhance  # noqa: E402
from cliplit_core.engine.precision import Precision  # noqa: E402

from tests.support.data import SHARED_DATA as DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 99.0 if mse == 0 else 10 * math.log10(1.0 / mse)


def load(path) -> torch.Tensor:
    return torch.from_numpy(read_image(path)[..., :3].copy()).permute(2, 0, 1)[None].contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DATA / "official_weights" / "enhancement_model.pth"))
    ap.add_argument("--photos", default=str(DATA / "backlit"))
    ap.add_argument("--speed-photo", default="110_51093502029_o.jpg")
    ap.add_argument("--scales", default=f"{preview.DEFAULT_SCALE:g},2,3",
                    help="comma-separated downsampling factors (the first is reported as the default)")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (0 = PSNR table only)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = sorted({float(s) for s in args.scales.split(",")})
    net = load_network(args.weights)
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    print(f"# preview vs exact (float32), CPU ({torch.get_num_threads()} threads), torch {torch.__version__}; "
          f"preview dtype {Precision.AUTO.resolve('cpu', preview=True)} (automatic); "
          f"calibration cores {preview.CAL_CORE} px on {preview.CAL_FRAC:.0%} of the image; uncalibrated: guided "
          f"filter radius {preview.DEFAULT_RADIUS}, eps {preview.DEFAULT_EPS:g}; default scale "
          f"1/{preview.DEFAULT_SCALE:g}")

    if args.rounds > 0:
        speed(net, Path(args.photos) / args.speed_photo, scales, args.rounds)
    fidelity(net, photos, scales)


def speed(net, path: Path, scales: list[float], rounds: int) -> None:
    """Interleaved timing rounds on one photo: exact vs every preview scale."""
    d = preview.DEFAULT_SCALE
    x = load(path)
    fns = {"exact": lambda: enhance(net, x, tile=None)}
    for s in scales:
        fns[f"preview 1/{s:g}"] = lambda s=s: preview.enhance_preview(net, x, scale=s)
    fns[f"preview 1/{d:g} float32"] = lambda: preview.enhance_preview(net, x, scale=d, dtype=torch.float32)
    fns[f"preview 1/{d:g} uncalibrated"] = lambda: preview.enhance_preview(net, x, scale=d, calibrate=False)
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times["exact"])
    mp = x.shape[-2] * x.shape[-1] / 1e6
    print(f"\n## speed on {path.name} ({mp:.2f} MP), median of {rounds} interleaved rounds\n")
    print("| method | seconds | speed-up vs exact | runs (s) |\n|---|---|---|---|")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"| {k} | {m:.2f} | {base / m:.1f}x | {', '.join(f'{t:.2f}' for t in v)} |")



def fidelity(net, photos: list[Path], scales: list[float]) -> None:
    """PSNR of every preview scale (and the uncalibrated default) against exact, per photo."""
    d = preview.DEFAULT_SCALE
    print("\n## PSNR of the preview against the exact result (dB, enhanced images in 0..1)\n")
    print("| photo | MP | " + " | ".join(f"1/{s:g}" for s in scales) + f" | 1/{d:g} uncalibrated |")
    print("|---|---|" + "---|" * (len(scales) + 1))
    worst = {s: 99.0 for s in scales + ["raw"]}
    for p in photos:
        x = load(p)
        exact = enhance(net, x, tile=None).image
        cells = []
        for s in scales:
            v = psnr(preview.enhance_preview(net, x, scale=s).image, exact)
            worst[s] = min(worst[s], v)
            cells.append(f"{v:.2f}")
        v = psnr(preview.enhance_preview(net, x, scale=d, calibrate=False).image, exact)
        worst["raw"] = min(worst["raw"], v)
        cells.append(f"{v:.2f}")
        print(f"| {p.name} | {x.shape[-2] * x.shape[-1] / 1e6:.2f} | " + " | ".join(cells) + " |", flush=True)
    print("| **worst** | | " + " | ".join(f"**{worst[s]:.2f}**" for s in scales + ["raw"]) + " |")


if __name__ == "__main__":
    main()
