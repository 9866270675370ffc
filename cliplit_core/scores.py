"""CLIP scores of images against a prompt pair (SPEC section 2), batched.

With ``c_i = cos(phi_image(I), phi_text(T_i))`` and the authors' logit scale 100:

* ``S(I) = softmax(100 * [c_0, c_1])[0]`` -- probability "backlit"
  (:func:`backlit_probability`; what ``L_clip`` and the margin losses use);
* the CLIP Light Score ``1 - S(I)`` -- probability "well-lit" (:func:`light_score`).

``text`` arguments accept a :class:`~cliplit_core.prompts.PromptPair` or its
``[2, embed_dim]`` L2-normalised text features. The ``*_from_features``
functions work on precomputed (normalised) image features, as the prompt
training does. :func:`light_score_heatmap` scores overlapping windows and
blends them into a map of the image's size (a node's MASK output).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .clip_backbone import CLIPBackbone

LOGIT_SCALE = 100.0


def _text(text, backbone: CLIPBackbone) -> torch.Tensor:
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
    return backlit_probability_from_features(feats, _text(text, backbone), logit_scale)


def light_score(images, text, backbone: CLIPBackbone, *, antialias: bool = False) -> torch.Tensor:
    """The CLIP Light Score ``1 - S(I)`` (``[B]``, probability "well-lit")."""
    return 1.0 - backlit_probability(images, text, backbone, antialias=antialias)


def score_images(images: torch.Tensor | Sequence[torch.Tensor], text, backbone: CLIPBackbone, *,
                 batch_size: int = 32, antialias: bool = False) -> torch.Tensor:
    """Light scores for many images without autograd, ``batch_size`` at a time: ``[B]`` on the CPU."""
    n = len(images)
    out = []
    with torch.no_grad():
        tf = _text(text, backbone)
        for i in range(0, n, batch_size):
            chunk = images[i:i + batch_size]
            feats = backbone.image_features(chunk, antialias=antialias)
            out.append(1.0 - backlit_probability_from_features(feats, tf))
    return torch.cat(out).cpu() if out else torch.empty(0)


# --------------------------------------------------------------------------- heatmap
def _positions(length: int, win: int, stride: int) -> list[int]:
    pos = list(range(0, length - win + 1, stride))
    if pos[-1] != length - win:
        pos.append(length - win)
    return pos


def _tent(n: int, device) -> torch.Tensor:
    i = torch.arange(n, device=device, dtype=torch.float32)
    return 1.0 - (2.0 * (i + 0.5) / n - 1.0).abs()  # in (0, 1], peak at the centre


def heatmap_windows(height: int, width: int, window: float | int = 0.5,
                    stride: float | int = 0.5) -> tuple[int, list[int], list[int]]:
    """Window side and top/left positions used by :func:`light_score_heatmap`.

    ``window``: side in pixels (int) or a fraction of the shorter image side (float);
    ``stride``: in pixels (int) or a fraction of the window (float). The last window
    of each row / column touches the image border, so every pixel is covered.
    """
    short = min(height, width)
    win = int(window) if isinstance(window, int) else int(round(float(window) * short))
    win = max(1, min(win, short))
    step = int(stride) if isinstance(stride, int) else int(round(float(stride) * win))
    step = max(1, min(step, win))
    return win, _positions(height, win, step), _positions(width, win, step)


HEATMAP_CHUNK_PIXELS = 1 << 25  # window pixels cropped at once (x3 channels x 4 bytes = 384 MiB)


def light_score_heatmap(images: torch.Tensor, text, backbone: CLIPBackbone, *, window: float | int = 0.5,
                        stride: float | int = 0.5, batch_size: int = 64,
                        antialias: bool = False) -> torch.Tensor:
    """Spatial light score: ``[B, H, W]`` float32 in [0, 1] on the images' device.

    Square windows (see :func:`heatmap_windows`; default half the shorter side,
    50 % overlap) are scored like whole images (resized to the model's size), and
    each pixel gets the average of the windows covering it, weighted by a tent
    that peaks at each window's centre (so the map has no block edges). No autograd.
    At most ``batch_size`` windows (and about 32 M window pixels) go through the
    model at once, so large photos need little extra memory.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    b, _, h, w = images.shape
    win, ys, xs = heatmap_windows(h, w, window, stride)
    boxes = [(y, x) for y in ys for x in xs]
    dev = images.device
    tent = _tent(win, dev)
    weight = tent[:, None] * tent[None, :]
    heat = torch.zeros(b, h, w, device=dev)
    norm = torch.zeros(h, w, device=dev)
    per_chunk = max(1, min(batch_size // max(1, b), HEATMAP_CHUNK_PIXELS // (win * win * b)))
    with torch.no_grad():
        tf = _text(text, backbone)
        for i in range(0, len(boxes), per_chunk):
            chunk = boxes[i:i + per_chunk]
            crops = torch.cat([images[:, :, y:y + win, x:x + win] for y, x in chunk])  # [len(chunk)*B, 3, win, win]
            feats = backbone.image_features(crops, antialias=antialias)
            light = (1.0 - backlit_probability_from_features(feats, tf)).to(dev).view(len(chunk), b)
            for (y, x), s in zip(chunk, light):
                heat[:, y:y + win, x:x + win] += s[:, None, None] * weight
                norm[y:y + win, x:x + win] += weight
    return heat / norm
