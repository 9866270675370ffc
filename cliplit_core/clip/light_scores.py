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
from ..engine import inference
from . import scores as scores_mod

Progress = Callable[[int, int], None]


@dataclass
class LightScores:
    scores: list[float]         # per image, 0..1, higher = better lit
    backlit_heatmap: torch.Tensor  # [B, H, W] float32 on the CPU (all zero without a heatmap)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)


@dataclass(frozen=True)
class ScorePlan:
    """The CLIP passes of a batch: each image whole, then the windows of ``grid`` (the same for
    every image; None without a heatmap). The grid is computed once, by :func:`plan`."""
    batch: int
    height: int
    width: int
    grid: heatmap_mod.HeatmapGrid | None

    @property
    def per_image(self) -> int:
        return 1 + (len(self.grid) if self.grid is not None else 0)

    @property
    def passes(self) -> int:
        """What ``progress`` counts to."""
        return self.batch * self.per_image

    def __str__(self) -> str:
        size = f"{self.batch} image(s) {self.width}x{self.height}"
        if self.grid is None:
            return f"{size}, no heatmap"
        return f"{size}, heatmap of {len(self.grid)} windows of {self.grid.win_w}x{self.grid.win_h} px per image"


def plan(images: torch.Tensor, *, heatmap: bool = True, window: float = 0.5) -> ScorePlan:
    """The plan :func:`score_batch` follows for ``images`` [B, C, H, W] (``window``: the heatmap
    window side as a fraction, see heatmap.heatmap_grid)."""
    b, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    return ScorePlan(b, h, w, heatmap_mod.heatmap_grid(h, w, float(window)) if heatmap else None)


def score_batch(images: torch.Tensor, text: torch.Tensor, backbone, run: ScorePlan | None = None, *,
                progress: Progress | None = None, batch_size: int = heatmap_mod.BATCH_WINDOWS) -> LightScores:
    """``images`` [B, C, H, W] in 0..1 (1-4 channels; alpha is ignored) -> :class:`LightScores`.
    ``text``: the prompt pair's ``[2, D]`` text features; ``backbone``: a CLIP backbone on the
    device to run on (each image moves there on its own); ``run``: :func:`plan` of these images
    (default: with a heatmap of windows of half the shorter side); ``batch_size``: heatmap windows
    per CLIP call. The node and the ``score`` command both score through here."""
    color, _ = inference.split_channels(inference.sanitize(images))
    rgb = inference.network_input(color)
    b, _, h, w = rgb.shape
    run = plan(rgb) if run is None else run
    if (run.batch, run.height, run.width) != (b, h, w):
        raise ValueError(f"the score plan is for {run.batch} image(s) {run.width}x{run.height}, "
                         f"got {b} image(s) {w}x{h}")
    total = run.passes
    found: list[float] = []
    heat = torch.zeros(b, h, w, dtype=torch.float32)
    for i in range(b):
        img = rgb[i:i + 1].to(backbone.device)
        found.append(float(scores_mod.score_images(img, text, backbone)[0]))
        start = i * run.per_image + 1
        if progress is not None:
            progress(start, total)
        if run.grid is not None:
            on_batch = None if progress is None else (lambda done, _n, _s=start: progress(_s + done, total))
            lit = heatmap_mod.heatmap_on_grid(img, text, backbone, run.grid, on_batch=on_batch, batch_size=batch_size)
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
