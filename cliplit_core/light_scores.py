"""Light scores of an image batch with an optional backlit heatmap, as one call.

The score of an image is the probability that it looks well-lit under the prompt pair
(``1 - S(I)``, docs/design.md, "The CLIP side"); the heatmap scores overlapping windows
(docs/heatmap.md) and is returned as *backlit*-ness (1 = backlit, 0 = well-lit), the way a
mask of the areas to fix reads. Progress counts CLIP passes: per image the whole image, then
its heatmap windows batch by batch; ``progress(done, total)`` may raise to stop the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import heatmap as heatmap_mod
from . import inference, scores as scores_mod

Progress = Callable[[int, int], None]


@dataclass
class LightScores:
    scores: list[float]         # per image, 0..1, higher = better lit
    backlit_heatmap: torch.Tensor  # [B, H, W] float32 on the CPU (all zero without a heatmap)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)


def passes(batch: int, height: int, width: int, heatmap: bool, window: float) -> int:
    """CLIP passes of a run: what ``progress`` counts to."""
    per_image = 1 + (len(heatmap_mod.heatmap_grid(height, width, window)) if heatmap else 0)
    return batch * per_image


def score_batch(images: torch.Tensor, text: torch.Tensor, backbone, *, heatmap: bool = True, window: float = 0.5,
                progress: Progress | None = None) -> LightScores:
    """``images`` [B, C, H, W] in 0..1 (1-4 channels; alpha is ignored) -> :class:`LightScores`.
    ``text``: the prompt pair's ``[2, D]`` text features; ``backbone``: a CLIP backbone on the
    device to run on (each image moves there on its own)."""
    color, _ = inference.split_channels(inference.sanitize(images))
    rgb = inference.network_input(color)
    b, _, h, w = rgb.shape
    window = float(window)
    per_image = passes(1, h, w, heatmap, window)
    total = b * per_image
    found: list[float] = []
    heat = torch.zeros(b, h, w, dtype=torch.float32)
    for i in range(b):
        img = rgb[i:i + 1].to(backbone.device)
        found.append(float(scores_mod.score_images(img, text, backbone)[0]))
        start = i * per_image + 1
        if progress is not None:
            progress(start, total)
        if heatmap:
            on_batch = None if progress is None else (lambda done, _n, _s=start: progress(_s + done, total))
            lit = heatmap_mod.light_score_heatmap(img, text, backbone, window=window, on_batch=on_batch)
            heat[i] = (1.0 - lit[0]).clamp(0, 1).float().cpu()
    return LightScores(found, heat)


def format_scores(scores: list[float], random_weights: bool = False) -> str:
    """One line per image (and the mean of a batch), as the node shows them."""
    lines = [f"image {i + 1}: {s:.4f}" for i, s in enumerate(scores)]
    if len(scores) > 1:
        lines.append(f"mean: {sum(scores) / len(scores):.4f}")
    if random_weights:
        lines.append("WARNING: CLIP has random weights (clip_pretrained = none): these scores are meaningless")
    return "\n".join(lines)
