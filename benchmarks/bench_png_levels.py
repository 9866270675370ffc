#!/usr/bin/env python
"""Seconds and bytes of writing one enhanced 3 MP photo as a PNG at every ``--png-compression``
level (0-9), in-process (``imageio.write_image``, one thread: zlib), against the default level 4
in the same run. The image is the enhanced result of a real backlit photo
(../shared/data/reference_full, 2048x1536, 8-bit), or any image given with ``--image``;
``--bits 16`` writes it as a 16-bit PNG. Best of ``--rounds`` per level; the pixels read back
are checked to be the same at every level.

    python benchmarks/bench_png_levels.py
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CLIPLIT_SHARED_DATA") or ROOT.parent / "shared" / "data")
IMAGE = DATA / "reference_full" / "110_51093502029_o.png"


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from cliplit_core.imageio import PNG_COMPRESS_LEVEL, PNG_LEVELS, read_image_info, write_image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=IMAGE)
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    if not args.image.exists():
        print(f"error: {args.image} not found (the test data lives in ../shared/data)", file=sys.stderr)
        return 2
    arr, _ = read_image_info(args.image, native=True)
    if args.bits == 16:
        arr = arr.astype(np.uint16) * 257 if arr.dtype == np.uint8 else arr
    h, w, c = arr.shape
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    print(f"# {args.image.name}: {w}x{h} ({w * h / 1e6:.1f} MP), {args.bits}-bit PNG, best of {args.rounds}, "
          f"in-process, load average {load}\n")
    print("| level | seconds | MiB | x level 4 time | x level 4 size |\n|---|---|---|---|---|")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for level in PNG_LEVELS:
            path = Path(tmp) / f"l{level}.png"
            best = min(_timed(lambda: write_image(path, arr, bits=args.bits, png_level=level))
                       for _ in range(args.rounds))
            back, _ = read_image_info(path, native=True)
            first = back if first is None else first
            if not np.array_equal(back, first):
                print(f"error: level {level} changed the pixels", file=sys.stderr)
                return 1
            res[level] = (best, path.stat().st_size)
    t4, s4 = res[PNG_COMPRESS_LEVEL]
    for level, (t, size) in res.items():
        print(f"| {level}{' (default)' if level == PNG_COMPRESS_LEVEL else ''} | {t:.3f} | {size / 2 ** 20:.2f} | "
              f"{t / t4:.2f}x | {size / s4:.3f}x |")
    print(f"\nsummary: level 1 {res[1][0] / t4:.2f}x the time, {res[1][1] / s4:.2f}x the size of level 4; "
          f"level 9 {res[9][0] / t4:.2f}x the time, {res[9][1] / s4:.2f}x the size (same pixels)")
    return 0


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
