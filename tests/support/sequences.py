"""Synthetic frame sequences for the temporal-smoothing tests, and the flicker measure."""
from __future__ import annotations

import torch

FRAMES = 16


def mean_brightness_flicker(frames: torch.Tensor) -> float:
    """Mean absolute change of the frames' mean brightness between neighbours (the flicker measure)."""
    m = frames.float().mean(dim=(1, 2, 3))
    return float((m[1:] - m[:-1]).abs().mean()) if len(m) > 1 else 0.0


def flickering_sequence(scene: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Synthetic video of a static backlit scene with flicker: per-frame exposure jitter
    (+-6 %, like mains-powered light or auto-exposure hunting), sensor noise, and a small
    bright highlight that jumps around (a specular glint)."""
    g = torch.Generator().manual_seed(seed)
    frames = []
    for _ in range(FRAMES):
        f = scene[0].clone() * (1 + 0.06 * torch.randn(1, generator=g))
        f = f + 0.01 * torch.randn(f.shape, generator=g)
        y, x = (int(v) for v in torch.randint(0, 80, (2,), generator=g))
        f[y:y + 12, x:x + 12] = 1.0
        frames.append(f.clamp(0, 1))
    return torch.stack(frames)
