#!/usr/bin/env python
"""Seconds and bytes of writing one enhanced 3 MP photo as a PNG with every ``--png-compression``
setting (``auto``, the default, and the zlib levels 0-9), in-process (``imageio.write_image``, one
thread: zlib), against level 4 (ComfyUI's SaveImage level) in the same run. The image is the enhanced result of a real backlit photo
(../shared/data/reference_full, 2048x1536, 8-bit), or any image given with ``--image``;
``--bits 16`` writes it as a 16-bit PNG. Best of ``--rounds`` per level; the pixels read back
are checked to be the same with every setting. ``--images`` runs ``auto`` against level 4 on
several images (all the backlit photos' enhanced results and the well-lit images by default).

    python -m benchmarks.bench_png_levels
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from tests.support.data import SHARED_DATA as DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)
IMAGE = DATA / "reference_full" / "110_51093502029_o.png"


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from cliplit_core.files.images import PNG_COMPRESS_LEVEL, PNG_LEVELS, read_image_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=IMAGE)
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", action="store_true",
                    help="also compare auto with level 4 on every image of reference_full and welllit")
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
    print("| setting | seconds | MiB | x level 4 time | x level 4 size |\n|---|---|---|---|---|")
    settings = ["auto", *PNG_LEVELS]
    with tempfile.TemporaryDirectory() as tmp:
        res = _measure(arr, settings, args.bits, args.rounds, Path(tmp))
    if res is None:
        return 1
    t4, s4 = res[PNG_COMPRESS_LEVEL]
    for setting, (t, size) in res.items():
        note = " (default)" if setting == "auto" else " (ComfyUI)" if setting == PNG_COMPRESS_LEVEL else ""
        print(f"| {setting}{note} | {t:.3f} | {size / 2 ** 20:.2f} | {t / t4:.2f}x | {size / s4:.3f}x |")
    print(f"\nsummary: auto {res['auto'][0] / t4:.2f}x the time, {res['auto'][1] / s4:.3f}x the size of level 4; "
          f"level 1 {res[1][0] / t4:.2f}x the time, {res[1][1] / s4:.2f}x the size; "
          f"level 9 {res[9][0] / t4:.2f}x the time, {res[9][1] / s4:.2f}x the size (same pixels)")
    if args.images:
        _many(args.bits, args.rounds)
    return 0


def _measure(arr, settings, bits: int, rounds: int, tmp: Path) -> dict | None:
    """{setting: (best seconds, bytes)}; None (and a message) when a setting changed the pixels."""
    import numpy as np

    from cliplit_core.files.images import read_image_info, write_image
    res, first = {}, None
    for setting in settings:
        path = tmp / f"{setting}.png"
        best = min(_timed(lambda: write_image(path, arr, bits=bits, png_compression=setting))
                   for _ in range(rounds))
        back, _ = read_image_info(path, native=True)
        first = back if first is None else first
        if not np.array_equal(back, first):
            print(f"error: --png-compression {setting} changed the pixels", file=sys.stderr)
            return None
        res[setting] = (best, path.stat().st_size)
    return res


def _many(bits: int, rounds: int) -> None:
    """``auto`` against level 4 on every image of reference_full and welllit."""
    import numpy as np

    from cliplit_core.files.images import PNG_COMPRESS_LEVEL, read_image_info
    files = sorted((DATA / "reference_full").glob("*.png")) + sorted((DATA / "welllit").glob("*.png"))
    print("\n| image | pixels | auto time vs level 4 | auto size vs level 4 |\n|---|---|---|---|")
    times, sizes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            arr, _ = read_image_info(f, native=True)
            if bits == 16:
                arr = arr.astype(np.uint16) * 257 if arr.dtype == np.uint8 else arr
            res = _measure(arr, ["auto", PNG_COMPRESS_LEVEL], bits, rounds, Path(tmp))
            if res is None:
                return
            (ta, sa), (t4, s4) = res["auto"], res[PNG_COMPRESS_LEVEL]
            times.append(ta / t4)
            sizes.append(sa / s4)
            print(f"| {f.name[:28]} | {arr.shape[1]}x{arr.shape[0]} | {ta / t4:.2f}x | {sa / s4:.3f}x |")
    print(f"\nsummary over {len(files)} images: auto takes {min(times):.2f}x-{max(times):.2f}x the time of "
          f"level 4 for {min(sizes):.3f}x-{max(sizes):.3f}x its size")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
