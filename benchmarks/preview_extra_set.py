#!/usr/bin/env python
"""Write the extra photo set used to check the fast preview beyond ``../shared/data/backlit``.

Twenty images from the shared test data, none of them in the set the preview was tuned on:

* ``welllit_*``: the 5 well-lit photos as they are (0.14-0.37 MP);
* ``dark_*``: the same, underexposed (``0.6 * x ** 2.2``: strong corrections, small errors amplified);
* ``synthbacklit_*``: the same, underexposed with a bright sky gradient over the top (synthetic backlight);
* ``half_*``: the backlit photos above 1 MP at half size (Lanczos): the same scenes with twice the
  texture per pixel, which is what the reduced-resolution network finds hardest.

Then::

    python -m benchmarks.preview_extra_set /tmp/preview_extra
    python -m benchmarks.bench_preview --photos /tmp/preview_extra --rounds 0 --scales 4,2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.data import SHARED_DATA as DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)


def to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--data", default=str(DATA), help="the shared test data folder (default ../shared/data)")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.outdir)
    if not (data / "welllit").is_dir() or not (data / "backlit").is_dir():
        raise SystemExit(f"error: test data not found at {data} (welllit/ and backlit/ needed)")
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted((data / "welllit").iterdir()):
        im = Image.open(p).convert("RGB")
        a = np.asarray(im, dtype=np.float32) / 255
        dark = 0.6 * a ** 2.2
        sky = np.linspace(1, 0, a.shape[0], dtype=np.float32)[:, None, None] ** 2
        im.save(out / f"welllit_{p.stem}.png")
        to_image(dark).save(out / f"dark_{p.stem}.png")
        to_image(dark * (1 - sky) + (0.85 + 0.15 * a) * sky).save(out / f"synthbacklit_{p.stem}.png")
    for p in sorted((data / "backlit").iterdir()):
        im = Image.open(p).convert("RGB")
        if im.width * im.height > 1e6:
            im.resize((im.width // 2, im.height // 2), Image.LANCZOS).save(out / f"half_{p.stem}.png")
    print(f"wrote {len(list(out.glob('*.png')))} images to {out}")


if __name__ == "__main__":
    main()
