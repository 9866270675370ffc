"""Do the light score and its heatmap mean what they say? Judged with the lighting CLIP on synthetic scenes.

Held-out scenes of ``tools.lightclip.pairs`` have a known subject mask and a well-lit truth.
Printed, for the lighting CLIP and for the same CLIP with random weights:

* **ranking**: on ``--pairs`` scenes, how many well-lit truths score above their backlit
  photo, and the mean gap of the light scores;
* **heatmap**: on ``--scenes`` backlit photos of 192 x 256 pixels, the mean Pearson
  correlation of the heatmap's backlit-ness with the subject mask, at each ``--windows``
  setting, next to two references that need no CLIP: the mirrored mask (the same heatmap
  against the subject's mirror image: what favouring the middle of the picture earns) and
  a perfect window scorer (each window scored by its share of subject pixels, blended like
  the heatmap: the best any scorer of these windows can do).

tests/clip/test_light_meaning.py asserts thresholds between these figures (docs/heatmap.md)::

    python -m benchmarks.bench_light_meaning --clip DIR     # DIR from tools.make_light_clip
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from cliplit_core.command_line import OneLineParser

SEED = 0


def perfect_window_heatmap(mask: torch.Tensor, window: float) -> torch.Tensor:
    """The heatmap a scorer that knew the mask would give: each window of the heatmap's grid scored by
    its share of subject pixels, blended with the heatmap's tent weights (cliplit_core.clip.heatmap)."""
    from cliplit_core.clip.heatmap import heatmap_grid

    h, w = mask.shape
    grid = heatmap_grid(h, w, window)

    def tent(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        return 1.0 - (2.0 * (i + 0.5) / n - 1.0).abs()

    weight = tent(grid.win_h)[:, None] * tent(grid.win_w)[None, :]
    heat, norm = torch.zeros(h, w), torch.zeros(h, w)
    for y, x in grid.boxes:
        rows, cols = slice(y, y + grid.win_h), slice(x, x + grid.win_w)
        heat[rows, cols] += mask[rows, cols].float().mean() * weight
        norm[rows, cols] += weight
    return heat / norm


def ranking(backbone, pairs) -> tuple[int, float]:
    """(pairs whose truth scores above the backlit photo, mean light-score gap truth - backlit)."""
    from tools.lightclip.evaluate import zero_shot_light_scores

    lit = zero_shot_light_scores(backbone, pairs.truth)
    backlit = zero_shot_light_scores(backbone, pairs.backlit)
    return int((lit > backlit).sum()), float((lit - backlit).mean())


def heatmap_correlations(backbone, scenes, window: float) -> tuple[list[float], list[float]]:
    """Per scene: (correlation with the mask, with the mirrored mask) of the backlit heatmap."""
    from cliplit_core.clip.heatmap import light_score_heatmap
    from cliplit_core.clip.prompts import zero_shot_text_features
    from tools.lightclip.evaluate import mask_correlation

    heat = 1 - light_score_heatmap(scenes.backlit, zero_shot_text_features(backbone), backbone, window=window)
    right = [mask_correlation(h, m) for h, m in zip(heat, scenes.subject)]
    mirrored = [mask_correlation(h, m.flip(0).flip(1)) for h, m in zip(heat, scenes.subject)]
    return right, mirrored


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m benchmarks.bench_light_meaning", description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", type=Path, required=True, metavar="DIR", help="a folder made by tools.make_light_clip")
    p.add_argument("--pairs", type=int, default=48, metavar="N", help="scenes for the ranking (default 48)")
    p.add_argument("--scenes", type=int, default=32, metavar="N", help="scenes for the heatmap (default 32)")
    p.add_argument("--windows", type=float, nargs="+", default=[0.5, 0.25], metavar="W",
                   help="heatmap window settings (default 0.5, the command line's, and 0.25)")
    args = p.parse_args(argv)
    from tools.lightclip.build import LightClip

    if not LightClip.in_folder(args.clip).exists():
        p.error(f"--clip {args.clip}: no light_clip.json and light_clip.safetensors in it")
    if min(args.pairs, args.scenes) < 1:
        p.error("--pairs and --scenes must be at least 1")
    if not all(0 < w <= 1 for w in args.windows):
        p.error("--windows must lie in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cliplit_core.clip.backbone import RandomWeightsWarning, build_backbone, load_backbone
    from tools.lightclip.build import LightClip
    from tools.lightclip.evaluate import mask_correlation
    from tools.lightclip.pairs import make_pairs

    clip = LightClip.in_folder(args.clip)
    backbones = {"lighting CLIP": load_backbone(str(clip.config), str(clip.weights))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        torch.manual_seed(SEED)
        backbones["random weights"] = build_backbone(str(clip.config), "none")
    pairs = make_pairs(SEED, "pairs", args.pairs, 96)
    scenes = make_pairs(SEED, "pairs", args.scenes, 192, 256)
    print(f"ranking, {args.pairs} held-out pairs at 96 x 96: well-lit truth above its backlit photo")
    for name, bb in backbones.items():
        right, gap = ranking(bb, pairs)
        print(f"  {name}: {right} of {args.pairs}, mean light-score gap {gap:+.3f}")
    print(f"heatmap, {args.scenes} held-out backlit scenes at 256 x 192: mean (min) correlation with the subject mask")
    for window in args.windows:
        print(f"  window {window:g}:")
        for name, bb in backbones.items():
            right, mirrored = heatmap_correlations(bb, scenes, window)
            print(f"    {name}: {np.mean(right):+.3f} ({np.min(right):+.3f}); against the mirrored mask "
                  f"{np.mean(mirrored):+.3f}")
        perfect = [mask_correlation(perfect_window_heatmap(m, window), m) for m in scenes.subject]
        print(f"    perfect window scorer: {np.mean(perfect):+.3f} ({np.min(perfect):+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
