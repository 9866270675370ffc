"""One photo's pixels in, the result's pixels out: whole image, exact tiles, or the fast preview.

Tiled runs keep the image in its file's own 8/16-bit form (``tiled_pixels``);
whole-image and preview runs need the float image anyway (their activations
are far larger than it) and go through the core's entry point, :func:`api.enhance`.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .api import enhance
from ..files.images import to_float32
from .inference import resolve_tile, with_tile_backoff
from .options import EnhanceOptions, Mode
from .run_context import RunContext
from .tile_setting import TileMode, TileSetting
from ..light.tiling import Progress
from .tiled_pixels import enhance_pixels

# Largest automatic tile on a CPU. Bigger tiles only cost host memory: a 1058-pixel window (tiles
# of 1024) needs 976 MiB above the process's resident size, an 802-pixel one (768) 567 MiB, for
# 2 % more halo work on big photos; tiles sized to half the free RAM made a 100 MP photo peak at
# 9.9 GB (benchmarks/bench_huge_photo.py).
CPU_AUTO_MAX_TILE = 768


def runs_tiled(h: int, w: int, tile: int | None) -> bool:
    """Whether ``predict_light`` would tile an h x w image with this tile size."""
    return tile is not None and h >= 2 and w >= 2 and not (tile >= h and tile >= w)


def enhance_photo(net, pixels: np.ndarray, options: EnhanceOptions = EnhanceOptions(), *, device=None,
                  memory_budget: int | None = None, bits: int = 8, with_light: bool = False,
                  progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(result H x W x C, light map H x W or None) of H x W x C pixels (uint8, uint16 or float32)
    enhanced as ``options`` say (strength, mode, precision, tile; a photo has no mask or frames).
    Float arrays in 0..1 come back from whole-image and preview runs, uint8 / uint16 (``bits``)
    from tiled ones: :func:`imageio.write_image` writes either to the same bytes."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    h, w = pixels.shape[:2]
    strength, fast = options.strength, options.mode is Mode.PREVIEW
    dtype = options.precision.resolve(device)

    def whole_or_preview(_tile=None):
        """The float path, through the core's entry point (api.enhance). A preview keeps the tile
        setting: its low-resolution pass tiles by it when that does not fit the budget."""
        x = torch.from_numpy(to_float32(pixels)).permute(2, 0, 1)[None]
        run = RunContext(device=device, memory_budget=memory_budget, progress=progress, output_device="cpu")
        image, light = enhance(net, x, options if fast else replace(options, tile=TileSetting.WHOLE), run)
        light = light[0, 0].clamp(0, 1).numpy() if with_light else None
        return image[0].permute(1, 2, 0).numpy(), light

    if fast:
        return whole_or_preview()
    tile = resolve_tile(options.tile, h, w, 1, dtype, memory_budget)
    if tile is not None and options.tile.mode is TileMode.AUTO and device.type == "cpu":
        tile = min(tile, CPU_AUTO_MAX_TILE)

    def run(t):
        if not runs_tiled(h, w, t):
            return whole_or_preview(t)
        return enhance_pixels(net, pixels, tile=t, strength=strength, device=device, dtype=dtype, bits=bits,
                              with_light=with_light, progress=progress)
    return with_tile_backoff(run, tile, h, w)
