"""Make the lighting-aware test CLIP (issue 20): a small open_clip model trained here on synthetic scenes.

Writes ``OUT/light_clip.json`` (open_clip model config) and ``OUT/light_clip.safetensors``
(weights, about 8 MB), loadable like any local CLIP::

    python -m cliplit_core score PHOTO --clip-model OUT/light_clip.json --clip-pretrained OUT/light_clip.safetensors
    python -m trainer ... --clip-model OUT/light_clip.json --clip-pretrained OUT/light_clip.safetensors

then prints the zero-shot separation of backlit and well-lit on held-out synthetic scenes
(ROC AUC) and, with ``--report-photos``, the zero-shot light scores of the shared test
photos (``backlit/`` and ``welllit/``). Same seed and size, same weights (sha256 printed)::

    python -m tools.make_light_clip --out runs/light_clip                  # full size, seed 0
    python -m tools.make_light_clip --out /tmp/lc --size ci --report-photos  # what the tests build
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from cliplit_core.command_line import OneLineParser

SIZES = ("ci", "full")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from tests.support.data import SHARED_DATA

    p = OneLineParser(prog="python -m tools.make_light_clip", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the model files")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the initial weights (default 0)")
    p.add_argument("--size", choices=SIZES, default="full",
                   help="ci: what the tests build (seconds); full: more scenes and steps (default)")
    p.add_argument("--heldout", type=int, default=200, metavar="N",
                   help="held-out scenes for the ROC AUC (each under every condition; default 200)")
    p.add_argument("--report-photos", nargs="?", const=SHARED_DATA, default=None, type=Path, metavar="DATA",
                   help=f"also print the light scores of DATA/backlit and DATA/welllit (default DATA: {SHARED_DATA})")
    args = p.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a folder")
    if args.seed < 0:
        p.error(f"--seed must be 0 or more, got {args.seed}")
    if args.heldout < 1:
        p.error(f"--heldout must be at least 1, got {args.heldout}")
    if args.report_photos is not None:
        missing = [str(args.report_photos / f) for f in ("backlit", "welllit") if not (args.report_photos / f).is_dir()]
        if missing:
            p.error(f"--report-photos: no folder {' or '.join(missing)}")
    return args


def report_photos(backbone, data: Path) -> None:
    """One line per photo of DATA/backlit and DATA/welllit: its zero-shot light score, then each folder's mean."""
    import numpy as np
    import torch

    from cliplit_core.files.images import list_images, read_image
    from tools.lightclip.evaluate import zero_shot_light_scores

    for folder in ("backlit", "welllit"):
        paths, _ = list_images([str(data / folder)])
        found = []
        for path in paths:
            arr = read_image(path)
            arr = np.repeat(arr[..., :1], 3, axis=2) if arr.shape[2] < 3 else arr[..., :3]  # gray, alpha
            image = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
            found.append(float(zero_shot_light_scores(backbone, [image])[0]))
            print(f"  {folder}/{path.name}: light score {found[-1]:.3f}")
        print(f"{folder}: mean light score {sum(found) / len(found):.3f} over {len(found)} photos")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cliplit_core.clip.backbone import load_backbone
    from tools.lightclip.build import IMAGE_SIZE, SIZES as BUILD_SIZES, build
    from tools.lightclip.dataset import make_split
    from tools.lightclip.evaluate import separation

    start = time.perf_counter()
    model = build(args.out, args.seed, BUILD_SIZES[args.size],
                  log=lambda step, loss, s: print(f"step {step}: loss {loss:.4f} ({s:.0f} s)", flush=True))
    built = time.perf_counter() - start
    digest = hashlib.sha256(model.weights.read_bytes()).hexdigest()
    mb = model.weights.stat().st_size / 1e6
    print(f"built {model.weights} ({mb:.1f} MB, sha256 {digest}) and {model.config.name} in {built:.0f} s")
    backbone = load_backbone(str(model.config), str(model.weights))
    print(f"held-out ({args.heldout} scenes): {separation(backbone, make_split(args.seed, 'heldout', args.heldout, IMAGE_SIZE))}")
    if args.report_photos is not None:
        report_photos(backbone, args.report_photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
