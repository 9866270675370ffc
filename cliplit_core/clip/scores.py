"""CLIP scores of images against a prompt pair (docs/design.md, "The CLIP side"), batched.

With ``c_i = cos(phi_image(I), phi_text(T_i))`` and the authors' logit scale 100:

* ``S(I) = softmax(100 * [c_0, c_1])[0]`` -- probability "backlit"
  (:func:`backlit_probability`; what ``L_clip`` and the margin losses use);
* the CLIP Light Score ``1 - S(I)`` -- probability "well-lit" (:func:`light_score`).

``text`` arguments accept a :class:`~cliplit_core.clip.prompts.PromptPair` or its
``[2, embed_dim]`` L2-normalised text features. The ``*_from_features``
functions work on precomputed (normalised) image features, as the prompt
training does. The spatial score (a map of the image's size) is in
:mod:`cliplit_core.clip.heatmap`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .backbone import CLIPBackbone

LOGIT_SCALE = 100.0


def as_text_features(text, backbone: CLIPBackbone) -> torch.Tensor:
    """``[2, embed_dim]`` float32 text features of a PromptPair (or the features themselves, checked)."""
    if hasattr(text, "text_features"):
        return text.text_features(backbone)
    if not torch.is_tensor(text) or text.dim() != 2 or text.shape[0] != 2:
        raise ValueError("text must be a PromptPair or [2, embed_dim] text features")
    return text.to(backbone.device, torch.float32)


def clip_logits(image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: float = LOGIT_SCALE) -> torch.Tensor:
    """``logit_scale * [c_0, c_1]`` for L2-normalised features: ``[B, 2]``."""
    return logit_scale * image_features @ text_features.to(image_features.device, image_features.dtype).T


def backlit_probability_from_features(image_features: torch.Tensor, text_features: torch.Tensor,
                                      logit_scale: float = LOGIT_SCALE) -> torch.Tensor:
    """``S(I)`` (``[B]``) from L2-normalised image and text features."""
    return clip_logits(image_features, text_features, logit_scale).softmax(dim=-1)[:, 0]


def backlit_probability(images, text, backbone: CLIPBackbone, *, antialias: bool = False,
                        logit_scale: float = LOGIT_SCALE) -> torch.Tensor:
    """``S(I)`` for images in [0, 1] (``[B, 3, H, W]`` or a list of ``[3, H, W]``): ``[B]`` float32.

    Differentiable w.r.t. the images (and the prompt pair if it requires grad).
    """
    feats = backbone.image_features(images, antialias=antialias)
    return backlit_probability_from_features(feats, as_text_features(text, backbone), logit_scale)


def light_score(images, text, backbone: CLIPBackbone, *, antialias: bool = False) -> torch.Tensor:
    """The CLIP Light Score ``1 - S(I)`` (``[B]``, probability "well-lit")."""
    return 1.0 - backlit_probability(images, text, backbone, antialias=antialias)


def score_images(images: torch.Tensor | Sequence[torch.Tensor], text, backbone: CLIPBackbone, *,
                 batch_size: int = 32, antialias: bool = False) -> torch.Tensor:
    """Light scores for many images without autograd, ``batch_size`` at a time: ``[B]`` on the CPU."""
    n = len(images)
    out = []
    with torch.no_grad():
        tf = as_text_features(text, backbone)
        for i in range(0, n, batch_size):
            chunk = images[i:i + batch_size]
            feats = backbone.image_features(chunk, antialias=antialias)
            out.append(1.0 - backlit_probability_from_features(feats, tf))
    return torch.cat(out).cpu() if out else torch.empty(0)
