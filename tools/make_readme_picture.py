#!/usr/bin/env python
"""Makes README's before/after picture, docs/images/before_after.jpg.

The backlit photo (Photo: Daniel Torobekov, Pexels; Pexels license) is downscaled,
enhanced by the command line with the authors' released weights, and the input and
the result are put side by side in one JPEG::

    python tools/make_readme_picture.py                 # reads ../shared/data
    python tools/make_readme_picture.py --data /path/to/data --width 1200

Re-running it rewrites the picture (atomically).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = "backlit/pexels-daniel-torobekov-5320051.jpg"
WEIGHTS = "official_weights/enhancement_model.pth"
GAP = 8  # white pixels between the two halves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CLIPLIT_SHARED_DATA", ROOT.parent / "shared" / "data")),
                    help="test-data folder holding backlit/ and official_weights/ (default ../shared/data)")
    ap.add_argument("--width", type=int, default=1200, help="width of the whole picture in pixels (default 1200)")
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "before_after.jpg")
    args = ap.parse_args()

    photo, weights = args.data / PHOTO, args.data / WEIGHTS
    for f in (photo, weights):
        if not f.is_file():
            print(f"make_readme_picture: {f} not found (pass --data)", file=sys.stderr)
            return 1

    half = (args.width - GAP) // 2
    with Image.open(photo) as im:
        src = im.convert("RGB")
    small = src.resize((half, round(src.height * half / src.width)), Image.LANCZOS)

    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before.png"
        small.save(before)
        subprocess.run([sys.executable, "-m", "cliplit_core", "enhance", str(before), "-o", str(Path(tmp) / "out"),
                        "--weights", str(weights), "--device", "cpu", "--dtype", "float32"],
                       cwd=ROOT, check=True)
        with Image.open(Path(tmp) / "out" / "before.png") as im:
            after = im.convert("RGB")

    pair = Image.new("RGB", (2 * half + GAP, small.height), "white")
    pair.paste(small, (0, 0))
    pair.paste(after, (half + GAP, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}.jpg")
    try:
        pair.save(tmp_out, "JPEG", quality=args.quality, optimize=True, progressive=True)
        os.replace(tmp_out, args.out)
    finally:
        tmp_out.unlink(missing_ok=True)
    print(f"wrote {args.out} ({pair.width}x{pair.height}, {args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
