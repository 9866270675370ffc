"""How well a CLIP tells backlit from well-lit zero-shot, with our default prompts.

The score is the one our code shows users (``cliplit_core.clip.scores``: the light score
``1 - S(I)`` under ``zero_shot_text_features``); the separation is the ROC AUC of
``S(I)`` with backlit as the positive class: the probability that a random backlit image
looks more backlit than a random well-lit one (ties count half).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cliplit_core.clip.prompts import zero_shot_text_features
from cliplit_core.clip.scores import score_images

from .dataset import LabelledImages
from .lighting import CONDITIONS


def roc_auc(positives: torch.Tensor, negatives: torch.Tensor) -> float:
    """P(a positive's value > a negative's), ties counted half (the Mann-Whitney U statistic / (n m))."""
    p = positives.double().flatten()[:, None]
    n = negatives.double().flatten()[None, :]
    if p.numel() == 0 or n.numel() == 0:
        raise ValueError("the ROC AUC needs at least one positive and one negative")
    return float(((p > n).double() + 0.5 * (p == n).double()).mean())


@dataclass(frozen=True)
class Separation:
    auc: float  # backlit vs well-lit, from S(I)
    mean_light_score: dict[str, float]  # per condition

    def __str__(self) -> str:
        means = ", ".join(f"{c} {v:.3f}" for c, v in self.mean_light_score.items())
        return f"ROC AUC backlit vs well-lit {self.auc:.4f}; mean light score: {means}"


def zero_shot_light_scores(backbone, images) -> torch.Tensor:
    """Light scores (probability well-lit) of images in 0..1 under the zero-shot prompts: ``[N]``."""
    return score_images(images, zero_shot_text_features(backbone), backbone)


def separation(backbone, data: LabelledImages) -> Separation:
    """The zero-shot separation of ``data``'s backlit and well-lit images (and every condition's mean)."""
    scores = {c: zero_shot_light_scores(backbone, data.of(c)) for c in CONDITIONS if len(data.of(c))}
    auc = roc_auc(1 - scores["backlit"], 1 - scores["well-lit"])
    return Separation(auc, {c: float(s.mean()) for c, s in scores.items()})


def mask_correlation(heatmap: torch.Tensor, mask: torch.Tensor) -> float:
    """Pearson correlation of a heatmap's pixels with a mask's (both [H, W]); 0 when either is flat."""
    a = heatmap.double().flatten() - heatmap.double().mean()
    b = mask.double().flatten() - mask.double().mean()
    norm = float(a.norm() * b.norm())
    return float(a @ b) / norm if norm > 0 else 0.0
