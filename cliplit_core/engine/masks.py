"""Masks that limit where an image is enhanced, and applying a light map through one."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .inference import LIGHT_FLOOR, apply_light


def check_mask_shape(mask: torch.Tensor) -> None:
    """ValueError unless ``mask`` is [H, W], [B, H, W] or [B, 1, H, W]."""
    ok = mask.dim() in (2, 3) or (mask.dim() == 4 and mask.shape[1] == 1)
    if not ok:
        raise ValueError(f"mask must have shape [H, W] or [B, H, W], got {tuple(mask.shape)}")


def mask_count(mask: torch.Tensor) -> int:
    """How many masks ``mask`` holds: 1 for [H, W], else its batch size."""
    return 1 if mask.dim() == 2 else int(mask.shape[0])


def check_mask_batch(mask: torch.Tensor, batch: int) -> None:
    """ValueError unless ``mask`` holds one mask for all ``batch`` images or one mask per image.

    Any other count is refused: repeating a shorter batch would give image 3 the mask of
    image 1, cutting a longer one would drop masks, both without a word."""
    check_mask_shape(mask)
    n = mask_count(mask)
    if n not in (1, batch):
        raise ValueError(f"mask batch has {n} masks for {batch} images: give one mask for all images "
                         f"or exactly one mask per image")


def gaussian_blur(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W] (reflect borders)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=torch.float32, device=m.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = (k / k.sum()).to(m.dtype)
    h, w = m.shape[-2:]
    ry, rx = min(radius, h - 1), min(radius, w - 1)
    if ry > 0:
        m = F.conv2d(F.pad(m, (0, 0, ry, ry), mode="reflect"), k[radius - ry: radius + ry + 1].view(1, 1, -1, 1))
    if rx > 0:
        m = F.conv2d(F.pad(m, (rx, rx, 0, 0), mode="reflect"), k[radius - rx: radius + rx + 1].view(1, 1, 1, -1))
    return m


def prepare_mask(mask: torch.Tensor, batch: int, height: int, width: int, feather: float) -> torch.Tensor:
    """A mask ([H, W], [B, H, W] or [B, 1, H, W]) -> [batch, 1, H, W] in 0..1: NaN -> 0, resized to
    the image (bilinear), one mask repeated over the whole batch, edges feathered (Gaussian,
    ``feather`` = sigma in pixels). The mask batch must hold 1 or ``batch`` masks
    (:func:`check_mask_batch`)."""
    check_mask_batch(mask, batch)
    m = mask.float()
    if m.dim() == 2:
        m = m[None]
    if m.dim() == 4:
        m = m[:, 0]
    m = torch.nan_to_num(m, nan=0.0).clamp(0, 1)[:, None]
    if m.shape[-2:] != (height, width):
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
    if feather > 0:
        m = gaussian_blur(m, float(feather))
    m = m.clamp(0, 1)
    return m if m.shape[0] == batch else m.expand(batch, -1, -1, -1)  # one mask for all images: a view


def apply_light_map(color: torch.Tensor, light: torch.Tensor, strength: float,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """``color / L ** (strength * mask)``, clamped to 0..1; :func:`inference.apply_light` without a mask."""
    if mask is None:
        return apply_light(color, light, strength)
    log_l = light.to(color.dtype).clamp_min(LIGHT_FLOOR).log()
    out = color * torch.exp(-float(strength) * mask.to(color.device, color.dtype) * log_l)
    return torch.nan_to_num(out, nan=0.0, posinf=1.0).clamp_(0.0, 1.0)
