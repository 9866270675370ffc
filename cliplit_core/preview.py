"""Fast preview: the light map predicted at reduced resolution, brought back edge-aware.

The image is area-downsampled by ``scale`` (per side), the network predicts the light
map there, and a fast guided filter (He & Sun 2015) carries it back to full size:
local linear models ``log L ~ a . I + b`` are fitted at low resolution with the
low-resolution colour image as guide (box filters by cumulative sums, float64 at the
low resolution; float32 on Apple MPS), their coefficients are upsampled bilinearly and
applied to the full-resolution image. The light map is smooth, so the filter mostly keeps edges of
the image crisp in ``L``; the preview's deviation from the exact result comes from the
network itself, whose convolutions respond differently to a smaller image (measured
in benchmarks/bench_preview.py and README.md, Performance).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .inference import (LIGHT_FLOOR, EnhanceResult, apply_light, choose_tile, enhance, network_input,
                        predict_light, resolve_dtype, sanitize, split_channels)
from .network import CLIPLITNet
from .tiling import Progress

DEFAULT_SCALE = 4.0   # downsampling factor per side (measured trade-off: README.md, Performance)
DEFAULT_RADIUS = 4    # guided-filter radius, in low-resolution pixels
DEFAULT_EPS = 1e-4    # guided-filter regularisation (guide in 0..1)
MIN_LOW_SIDE = 32     # never predict on fewer pixels per side than this


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel, windows clipped at the borders
    (two cumulative sums; [B, C, H, W])."""
    for dim in (2, 3):
        n = x.shape[dim]
        c = torch.cumsum(x, dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim)
        idx = torch.arange(n, device=x.device)
        hi, lo = (idx + r + 1).clamp(max=n), (idx - r).clamp(min=0)
        shape = [1] * x.dim()
        shape[dim] = n
        x = (c.index_select(dim, hi) - c.index_select(dim, lo)) / (hi - lo).to(x.dtype).view(shape)
    return x


def _solve3(s: list[list[torch.Tensor]], v: torch.Tensor) -> torch.Tensor:
    """Per-pixel solution of the symmetric 3x3 systems ``s @ a = v`` (Cramer / adjugate)."""
    (a, b, c), (_, d, e), (_, _, f) = s
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    v0, v1, v2 = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    return torch.cat([c00 * v0 + c01 * v1 + c02 * v2,
                      c01 * v0 + c11 * v1 + c12 * v2,
                      c02 * v0 + c12 * v1 + c22 * v2], 1) / det


def guided_upsample(guide_lo: torch.Tensor, p_lo: torch.Tensor, guide_hi: torch.Tensor,
                    radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Fast guided filter with a colour guide: ``p_lo`` [B, 1, h, w] -> [B, 1, H, W] following
    ``guide_hi`` [B, 3, H, W] (``guide_lo`` is its low-resolution version)."""
    acc = torch.float32 if guide_lo.device.type == "mps" else torch.float64  # MPS has no float64
    g = guide_lo.to(acc)
    p = p_lo.to(acc)
    mg, mp = box_mean(g, radius), box_mean(p, radius)
    cov = box_mean(g * p, radius) - mg * mp
    s = [[None] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(i, 3):
            s[i][j] = box_mean(g[:, i:i + 1] * g[:, j:j + 1], radius) - mg[:, i:i + 1] * mg[:, j:j + 1]
            if i == j:
                s[i][j] = s[i][j] + eps
    a = _solve3(s, cov)
    b = mp - (a * mg).sum(1, keepdim=True)
    coef = torch.cat([box_mean(a, radius), box_mean(b, radius)], 1).float()
    coef = F.interpolate(coef, size=guide_hi.shape[-2:], mode="bilinear", align_corners=False)
    return (coef[:, :3] * guide_hi).sum(1, keepdim=True).add_(coef[:, 3:])


def effective_scale(h: int, w: int, scale: float) -> float:
    """The downsampling factor actually used: at most ``scale``, keeping >= MIN_LOW_SIDE pixels."""
    return max(1.0, min(float(scale), min(h, w) / MIN_LOW_SIDE))


@torch.inference_mode()
def preview_light(net: CLIPLITNet, rgb: torch.Tensor, *, scale: float = DEFAULT_SCALE,
                  radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS, device=None, dtype=None,
                  tile: int | None = None, progress: Progress | None = None) -> torch.Tensor:
    """Approximate light map [B, 1, H, W] (float32, on rgb's device) of an RGB batch in 0..1."""
    H, W = rgb.shape[-2:]
    f = effective_scale(H, W, scale)
    if f <= 1.0:
        return predict_light(net, rgb, tile=tile, device=device, dtype=dtype, progress=progress)
    size = (max(2, round(H / f)), max(2, round(W / f)))
    low = F.interpolate(rgb, size=size, mode="area")
    light_lo = predict_light(net, low, tile=tile, device=device, dtype=dtype, progress=progress)
    log_lo = light_lo.to(low.device).clamp_min(LIGHT_FLOOR).log()
    log_hi = guided_upsample(low, log_lo, rgb, radius, eps)
    return log_hi.exp_()


def enhance_preview(net: CLIPLITNet, images: torch.Tensor, *, strength: float = 1.0, device=None,
                    dtype: torch.dtype | None = None, scale: float = DEFAULT_SCALE, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS, tile: int | str | None = "auto", memory_budget: int | None = None,
                    progress: Progress | None = None) -> EnhanceResult:
    """Like :func:`cliplit_core.inference.enhance` (same inputs, outputs, channels, alpha and
    strength handling) but with the light map from :func:`preview_light`. ``scale`` <= 1 gives
    the exact result."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    x = sanitize(images)
    color, alpha = split_channels(x)
    H, W = x.shape[-2:]
    f = effective_scale(H, W, scale)
    if f <= 1.0:
        return enhance(net, images, strength=strength, tile=tile, device=device, dtype=dtype,
                       memory_budget=memory_budget, progress=progress)
    rgb = network_input(color)
    dev = torch.device(device) if device is not None else x.device
    dt = resolve_dtype(dtype, dev)
    low_hw = (max(2, round(H / f)), max(2, round(W / f)))
    if tile == "auto":
        tile = choose_tile(low_hw[0], low_hw[1], x.shape[0], dt, memory_budget)
    elif tile is not None and (not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be 'auto', None or a positive int, got {tile!r}")
    light = preview_light(net, rgb, scale=f, radius=radius, eps=eps, device=dev, dtype=dt, tile=tile,
                          progress=progress)
    out = apply_light(color, light, strength)
    if alpha is not None:
        out = torch.cat([out, alpha], 1)
    return EnhanceResult(out, light)
