#!/usr/bin/env python
"""Whole-process peak memory and speed of ``python -m cliplit_core enhance`` on one huge photo.

A real backlit photo from ../shared/data/backlit is upscaled (bicubic) to the wanted size and
saved as a JPEG; each run is a child process that runs the command in-process with automatic
settings (exact result) and reports its peak resident memory (VmHWM, whole process: Python,
torch, the model, the image) and seconds per megapixel. A whole-image run of the original
3 MP photo is the speed reference. With ``--baseline-repo`` the same photo also goes through
another checkout, in the same run, and the two results are compared pixel by pixel::

    git worktree add /tmp/cliplit_before 022b383          # e.g. the commit before a change
    python -m benchmarks.bench_huge_photo --megapixels 24 --baseline-repo /tmp/cliplit_before

The last lines judge the goals for huge photos: peak <= 3 GB, s/MP within 20 % of the whole-image
run (``python -m benchmarks.bench_huge_photo --megapixels 100``, about 10 minutes on an idle CPU).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.procmem import rss_kib

ROOT = Path(__file__).resolve().parents[1]
from tests.support.data import SHARED_DATA as DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)
PHOTO = DATA / "backlit" / "110_51093502029_o.jpg"
WEIGHTS = DATA / "official_weights" / "enhancement_model.pth"
PEAK_GOAL_GB = 3.0  # whole-process peak of a 100 MP photo with automatic settings
SPEED_GOAL = 1.2    # s/MP of the huge photo, at most this times the whole-image run's


def child(args) -> None:
    sys.path.insert(0, args.repo)
    from cliplit_core.cli.app import main

    cmd = ["enhance", args.photo, "-o", args.out, "--weights", args.weights, "--device", "cpu"] + args.extra
    t = time.perf_counter()
    rc = main(cmd)
    dt = time.perf_counter() - t
    print("RESULT " + json.dumps({"rc": rc, "seconds": dt, "peak_kib": rss_kib("VmHWM")}))


def run(repo: str, photo: Path, out: Path, args, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", __spec__.name, "--child", "--repo", repo, "--photo", str(photo), "--out", str(out),
           "--weights", str(args.weights), "--extra", json.dumps(extra)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        raise SystemExit(f"child failed ({repo}):\n{p.stderr[-2000:]}")
    r = json.loads(line[0][7:])
    if r["rc"]:
        raise SystemExit(f"enhance failed ({repo}):\n{p.stderr[-2000:]}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, default=24.0, help="size of the upscaled photo (default 24)")
    ap.add_argument("--source", default=str(PHOTO), help="photo to upscale (default: a 3 MP backlit JPEG)")
    ap.add_argument("--weights", default=str(WEIGHTS))
    ap.add_argument("--baseline-repo", default=None, help="another checkout to compare with (same run)")
    ap.add_argument("--no-reference", action="store_true", help="skip the whole-image run of the source photo")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--repo", default=str(ROOT), help=argparse.SUPPRESS)
    ap.add_argument("--photo", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--extra", type=json.loads, default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with Image.open(args.source) as im:
            src = im.convert("RGB")
        scale = (args.megapixels * 1e6 / (src.width * src.height)) ** 0.5
        big = src.resize((round(src.width * scale), round(src.height * scale)), Image.BICUBIC)
        photo = tmp / "huge.jpg"
        big.save(photo, quality=95)
        mp = big.width * big.height / 1e6
        del big
        print(f"# enhance, automatic settings, CPU: {photo.name} {mp:.1f} MP upscaled from {Path(args.source).name} "
              f"({src.width * src.height / 1e6:.1f} MP)\n")
        print("| code | photo | peak RSS (whole process), MiB | seconds | s/MP |\n|---|---|---|---|---|")
        rows = []
        if not args.no_reference:
            r = run(str(ROOT), Path(args.source), tmp / "ref", args, ["--tile", "none"])
            rows.append(("this checkout, whole image", src.width * src.height / 1e6, r))
            print(f"| this checkout | {Path(args.source).name}, whole image | {r['peak_kib'] / 1024:.0f} | "
                  f"{r['seconds']:.1f} | {r['seconds'] / rows[-1][1]:.2f} |", flush=True)
        repos = [("this checkout", str(ROOT), tmp / "new")]
        if args.baseline_repo:
            repos.append(("baseline", args.baseline_repo, tmp / "old"))
        for name, repo, out in repos:
            r = run(repo, photo, out, args, [])
            rows.append((name, mp, r))
            print(f"| {name} | {photo.name} | {r['peak_kib'] / 1024:.0f} | {r['seconds']:.1f} | "
                  f"{r['seconds'] / mp:.2f} |", flush=True)
        if args.baseline_repo:
            a = np.asarray(Image.open(tmp / "new" / "huge.png")).astype(np.int16)
            b = np.asarray(Image.open(tmp / "old" / "huge.png")).astype(np.int16)
            d = np.abs(a - b)
            print(f"\nresults: max difference {d.max()} levels, {100 * (d > 0).mean():.4f} % of values differ "
                  "(automatic tile sizes differ; tiling is exact to float rounding)")
            new, old = rows[-2][2], rows[-1][2]
            print(f"peak RSS {new['peak_kib'] / old['peak_kib']:.2f}x the baseline's, "
                  f"time {new['seconds'] / old['seconds']:.2f}x")
        new = rows[1 if not args.no_reference else 0][2]
        peak_gb = new["peak_kib"] * 1024 / 1e9
        print(f"\npeak RSS {peak_gb:.2f} GB (whole process; goal <= {PEAK_GOAL_GB:g} GB): "
              + ("met" if peak_gb <= PEAK_GOAL_GB else "NOT MET"))
        if not args.no_reference:
            ratio = rows[1][2]['seconds'] / rows[1][1] / (rows[0][2]['seconds'] / rows[0][1])
            print(f"s/MP vs the whole-image reference: {ratio:.2f}x (goal <= {SPEED_GOAL:g}x): "
                  + ("met" if ratio <= SPEED_GOAL else "NOT MET"))
            print(f"summary: {mp:.0f} MP, automatic settings (exact): peak {peak_gb:.2f} GB, "
                  f"{rows[1][2]['seconds'] / mp:.2f} s/MP = {ratio:.2f}x the {rows[0][1]:.1f} MP whole-image run's "
                  f"{rows[0][2]['seconds'] / rows[0][1]:.2f} s/MP")


if __name__ == "__main__":
    main()
