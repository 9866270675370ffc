"""Exact tiled prediction of the light map (docs/design.md, "Exact tiling").

The network is local except for its pyramid pooling, whose bin-1 branch sees
the whole image. Two passes make tiling exact:

1. the stem (layers before the pooling, radius 5) runs tile by tile with a
   halo of 5 pixels; each tile's exact core adds its feature sums into the
   adaptive-pool regions of every bin (PyTorch's bin ``i`` of ``b`` covers rows
   ``floor(i*H/b) .. ceil((i+1)*H/b)``);
2. the whole network runs tile by tile with a halo of 17 pixels and the
   global pooling context (the fuse conv's context term for exactly the tile's
   window, see ``fastnet.context_map``) injected into the pooling fusion.

Reflect / zero padding at real image borders is then the network's own, and the
wrong padding at inner tile borders only corrupts the discarded halo. Peak
memory depends on the tile size, not the image size: the full image and light
map stay where they are (e.g. CPU) and only tiles visit the compute device.

All windows of one pass have the same shape (windows at the image border are
shifted inwards instead of being cut), so convolution autotuning and caches
see one shape per image.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Protocol, Union

import torch

from . import fastnet
from .network import STEM_HALO, TOTAL_HALO, CLIPLITNet

Progress = Callable[[int, int], None]
Window = fastnet.Window


class WindowSource(Protocol):
    """An RGB batch read window by window (e.g. converted from 8-bit pixels on demand)."""

    shape: tuple[int, int, int, int]  # N, 3, H, W

    def window(self, win: Window) -> torch.Tensor:
        """RGB [N, 3, y1 - y0, x1 - x0] in 0..1 of the window ``(y0, y1, x0, x1)``."""


Source = Union[torch.Tensor, WindowSource]


def read_window(x: Source, win: Window) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x[:, :, win[0]:win[1], win[2]:win[3]]
    return x.window(win)


def tile_grid(H: int, W: int, tile: int) -> list[Window]:
    """Core windows ``(y0, y1, x0, x1)`` covering the image with tiles of at most ``tile``."""
    ny, nx = math.ceil(H / tile), math.ceil(W / tile)
    ys = [round(i * H / ny) for i in range(ny + 1)]  # balanced tiles, no thin remainders
    xs = [round(j * W / nx) for j in range(nx + 1)]
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(ny) for j in range(nx)]


def _axis_window(c0: int, c1: int, halo: int, n: int, size: int) -> tuple[int, int]:
    if size >= n:
        return 0, n
    start = min(max(c0 - halo, 0), n - size)
    return start, start + size


def tile_windows(cores: list[Window], halo: int, H: int, W: int) -> list[Window]:
    """For each core, a window holding it with ``halo`` pixels on every side that is not an
    image border; all windows have the same size (the largest core plus two halos, capped
    by the image size)."""
    sh = min(H, max(c[1] - c[0] for c in cores) + 2 * halo)
    sw = min(W, max(c[3] - c[2] for c in cores) + 2 * halo)
    return [(*_axis_window(c[0], c[1], halo, H, sh), *_axis_window(c[2], c[3], halo, W, sw)) for c in cores]


def window_sides(win: Window, H: int, W: int) -> fastnet.Sides:
    y0, y1, x0, x1 = win
    return (y0 == 0, y1 == H, x0 == 0, x1 == W)


def _run_tiles(windows, total: int, done: int, progress: Progress | None) -> Iterator[tuple[int, tuple]]:
    for k, win in enumerate(windows):
        yield k, win
        if progress is not None:
            progress(done + k + 1, total)


def _weights(net, device, dtype) -> fastnet.FastWeights:
    return fastnet.weights_for(net, device, dtype)


def pooling_sums(fw: fastnet.FastWeights, x: Source, tile: int, progress: Progress | None = None,
                 total: int | None = None) -> torch.Tensor:
    """Pass 1: bin sums [N, C, 12, 12] (float64, float32 on MPS; on the compute device) of the stem features."""
    N, _, H, W = x.shape
    cores = tile_grid(H, W, tile)
    windows = tile_windows(cores, STEM_HALO, H, W)
    total = total or 2 * len(cores)
    sums = None
    for k, core in _run_tiles(cores, total, 0, progress):
        win = windows[k]
        feats = fastnet.stem(fw, fw.prepare_input(read_window(x, win)), window_sides(win, H, W))
        part = fastnet.partial_bin_sums(feats, core, (win[0], win[2]), (H, W))
        del feats
        sums = part if sums is None else sums.add_(part)
    return sums


@torch.inference_mode()
def pooling_context(net: CLIPLITNet, x: torch.Tensor, tile: int, device, dtype,
                    progress: Progress | None = None, total: int | None = None) -> list[torch.Tensor]:
    """Pass 1: the pyramid pooling's branch outputs ([N, 8, b, b] per bin) of the whole image."""
    fw = _weights(net, device, dtype)
    H, W = x.shape[-2:]
    sums = pooling_sums(fw, x, tile, progress, total)
    return [b.to(dtype) for b in fastnet.pooling_branches(fw, sums, (H, W))]


@torch.inference_mode()
def light_tiles(net: CLIPLITNet, x: Source, tile: int, device, dtype: torch.dtype = torch.float32,
                progress: Progress | None = None) -> Iterator[tuple[Window, torch.Tensor]]:
    """(core window, light map of the core [N, 1, h, w] on the compute device) for every tile of
    ``x`` (an RGB batch or a :class:`WindowSource`), after the pooling pass over the whole image.

    ``net`` may also be a prepared :class:`fastnet.FastWeights`."""
    if tile < 1:
        raise ValueError(f"tile size must be >= 1, got {tile}")
    fw = _weights(net, device, dtype)
    H, W = x.shape[-2:]
    cores = tile_grid(H, W, tile)
    total = 2 * len(cores)
    sums = pooling_sums(fw, x, tile, progress, total)
    branches = fastnet.pooling_branches(fw, sums, (H, W))
    windows = tile_windows(cores, TOTAL_HALO, H, W)
    for k, core in _run_tiles(cores, total, len(cores), progress):
        win = windows[k]
        out, _ = fastnet.light_map(fw, read_window(x, win), branches, (H, W), [win], window_sides(win, H, W))
        cy0, cx0 = core[0] - win[0], core[2] - win[2]
        yield core, out[:, :, cy0:cy0 + core[1] - core[0], cx0:cx0 + core[3] - core[2]]


@torch.inference_mode()
def predict_light_tiled(net: CLIPLITNet, x: torch.Tensor, tile: int, device=None,
                        dtype: torch.dtype = torch.float32, progress: Progress | None = None,
                        out_device=None) -> torch.Tensor:
    """Light map [N, 1, H, W] (float32, on ``out_device``, default x's device) of RGB batch ``x``.

    ``net`` may also be a prepared :class:`fastnet.FastWeights`."""
    device = torch.device(device) if device is not None else x.device
    out_device = out_device if out_device is not None else x.device
    N, _, H, W = x.shape
    light = torch.empty(N, 1, H, W, dtype=torch.float32, device=out_device)
    for core, part in light_tiles(net, x, tile, device, dtype, progress):
        light[:, :, core[0]:core[1], core[2]:core[3]] = part.to(out_device, torch.float32)
    return light
