"""CLIP image preprocessing exactly as the CLIP-LIT authors do it (docs/design.md, "The CLIP side").

float RGB in [0, 1] -> resize to the model's image size (bilinear, no crop,
aspect ratio not kept) -> normalise with the OpenAI CLIP mean / std.

The authors call ``torchvision.transforms.Resize((224, 224))`` on tensors with
torchvision 0.14, i.e. ``F.interpolate(mode='bilinear', align_corners=False)``
*without* antialiasing; that is the default here (``antialias=False``).
Everything is batched, runs on the given device and is differentiable, so
gradients reach the enhancement network's output.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_STATS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _stats(device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(device), dtype)
    s = _STATS.get(key)
    if s is None:
        mean = torch.tensor(CLIP_MEAN, dtype=dtype, device=device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=dtype, device=device).view(1, 3, 1, 1)
        s = _STATS[key] = (mean, std)
    return s


def _size2(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def resize_for_clip(images: torch.Tensor, size, *, antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of ``[B, 3, H, W]`` to ``size`` (int or (h, w)); a no-op at that size."""
    h, w = _size2(size)
    if tuple(images.shape[-2:]) == (h, w):
        return images
    return F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)


def clip_preprocess(images: torch.Tensor | Sequence[torch.Tensor], size=224, *, antialias: bool = False,
                    device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Resize + normalise images for a CLIP image tower.

    ``images``: float RGB in [0, 1], ``[B, 3, H, W]``; or a sequence of ``[3, H, W]``
    / ``[1, 3, H, W]`` tensors of different sizes (each resized, then stacked).
    ``size``: the model's image size (``backbone.image_size``), int or (h, w).
    Returns ``[B, 3, h, w]`` on ``device`` (default: the images' device) in ``dtype``
    (default float32); differentiable. The resize is done in float32.
    """
    if not torch.is_tensor(images):
        parts = [im if im.dim() == 4 else im.unsqueeze(0) for im in images]
        if not parts:
            raise ValueError("no images to preprocess")
        images = torch.cat([resize_for_clip(p.to(device=device or p.device, dtype=torch.float32), size,
                                            antialias=antialias) for p in parts])
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {images.dtype}")
    x = images.to(device=device or images.device)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    x = resize_for_clip(x, size, antialias=antialias)
    mean, std = _stats(x.device, x.dtype)
    x = (x - mean) / std
    return x if dtype is None else x.to(dtype)
