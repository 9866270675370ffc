"""Exact tiled prediction of the light map (SPEC section 1, "Receptive field").

The network is local except for its pyramid pooling, whose bin-1 branch sees
the whole image. Two passes make tiling exact:

1. the stem (layers before the pooling, radius 5) runs tile by tile with a
   halo of 5 pixels; each tile's exact core adds its feature sums into the
   adaptive-pool regions of every bin (PyTorch's bin ``i`` of ``b`` covers rows
   ``floor(i*H/b) .. ceil((i+1)*H/b)``);
2. the whole network runs tile by tile with a halo of 17 pixels and the
   global pooling context (branch outputs, bilinearly upsampled for exactly the
   tile's window) injected into the pooling fusion.

Reflect / zero padding at real image borders is then the network's own, and the
wrong padding at inner tile borders only corrupts the discarded halo. Peak
memory depends on the tile size, not the image size: the full image and light
map stay where they are (e.g. CPU) and only tiles visit the compute device.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from .network import PPM_BINS, STEM_HALO, TOTAL_HALO, CLIPLITNet

Progress = Callable[[int, int], None]


def tile_grid(H: int, W: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Core windows ``(y0, y1, x0, x1)`` covering the image with tiles of at most ``tile``."""
    ny, nx = math.ceil(H / tile), math.ceil(W / tile)
    ys = [round(i * H / ny) for i in range(ny + 1)]  # balanced tiles, no thin remainders
    xs = [round(j * W / nx) for j in range(nx + 1)]
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(ny) for j in range(nx)]


def _grow(win: tuple[int, int, int, int], halo: int, H: int, W: int) -> tuple[int, int, int, int]:
    y0, y1, x0, x1 = win
    return max(0, y0 - halo), min(H, y1 + halo), max(0, x0 - halo), min(W, x1 + halo)


def _bin_membership(n: int, b: int, start: int, stop: int, dtype, device) -> torch.Tensor:
    """[b, stop-start] matrix: 1 where position belongs to adaptive-pool bin i."""
    pos = torch.arange(start, stop, device=device)
    lo = torch.tensor([(i * n) // b for i in range(b)], device=device)
    hi = torch.tensor([-((-(i + 1) * n) // b) for i in range(b)], device=device)
    return ((pos[None, :] >= lo[:, None]) & (pos[None, :] < hi[:, None])).to(dtype)


def _bin_sizes(n: int, b: int) -> torch.Tensor:
    return torch.tensor([-((-(i + 1) * n) // b) - (i * n) // b for i in range(b)], dtype=torch.float64)


def _run_tiles(windows, total: int, done: int, progress: Progress | None) -> Iterator[tuple[int, tuple]]:
    for k, win in enumerate(windows):
        yield k, win
        if progress is not None:
            progress(done + k + 1, total)


@torch.inference_mode()
def pooling_context(net: CLIPLITNet, x: torch.Tensor, tile: int, device, dtype,
                    progress: Progress | None = None, total: int | None = None) -> list[torch.Tensor]:
    """Pass 1: the pyramid pooling's branch outputs ([N, 8, b, b] per bin) of the whole image."""
    N, _, H, W = x.shape
    windows = tile_grid(H, W, tile)
    total = total or 2 * len(windows)
    sums = [torch.zeros(N, net.PPM1.features[0][1].in_channels, b, b, dtype=torch.float64, device=device)
            for b in PPM_BINS]
    for _, core in _run_tiles(windows, total, 0, progress):
        y0, y1, x0, x1 = _grow(core, STEM_HALO, H, W)
        feats = net.stem(x[:, :, y0:y1, x0:x1].to(device=device, dtype=dtype, non_blocking=True))
        cy0, cx0 = core[0] - y0, core[2] - x0
        feats = feats[:, :, cy0:cy0 + core[1] - core[0], cx0:cx0 + core[3] - core[2]].to(torch.float64)
        for s, b in zip(sums, PPM_BINS):
            my = _bin_membership(H, b, core[0], core[1], torch.float64, device)
            mx = _bin_membership(W, b, core[2], core[3], torch.float64, device)
            s += torch.einsum("iy,ncyx,jx->ncij", my, feats, mx)
    pooled = [(s / (_bin_sizes(H, b).to(device)[:, None] * _bin_sizes(W, b).to(device)[None, :])).to(dtype)
              for s, b in zip(sums, PPM_BINS)]
    return net.PPM1.branch_outputs(pooled)


@torch.inference_mode()
def predict_light_tiled(net: CLIPLITNet, x: torch.Tensor, tile: int, device=None,
                        dtype: torch.dtype = torch.float32, progress: Progress | None = None,
                        out_device=None) -> torch.Tensor:
    """Light map [N, 1, H, W] (float32, on ``out_device``, default x's device) of RGB batch ``x``."""
    if tile < 1:
        raise ValueError(f"tile size must be >= 1, got {tile}")
    device = torch.device(device) if device is not None else x.device
    out_device = out_device if out_device is not None else x.device
    N, _, H, W = x.shape
    windows = tile_grid(H, W, tile)
    total = 2 * len(windows)
    branches = pooling_context(net, x, tile, device, dtype, progress, total)
    light = torch.empty(N, 1, H, W, dtype=torch.float32, device=out_device)
    for _, core in _run_tiles(windows, total, len(windows), progress):
        win = _grow(core, TOTAL_HALO, H, W)
        y0, y1, x0, x1 = win
        crop = x[:, :, y0:y1, x0:x1].to(device=device, dtype=dtype, non_blocking=True)
        ctx = net.PPM1.context(branches, (H, W), win)
        out = net.head(net.stem(crop), ctx)
        cy0, cx0 = core[0] - y0, core[2] - x0
        light[:, :, core[0]:core[1], core[2]:core[3]] = \
            out[:, :, cy0:cy0 + core[1] - core[0], cx0:cx0 + core[3] - core[2]].to(out_device, torch.float32)
    return light
