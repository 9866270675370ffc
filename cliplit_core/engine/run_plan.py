"""How a batch is run: on which device, how many images per network call, which tile size;
and the progress of the whole batch over its calls."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .inference import resolve_tile, whole_image_bytes
from .run_context import RunContext
from .tile_setting import TileMode, TileSetting
from ..docs_links import docs_url
from ..light.tiling import TOTAL_HALO, tile_grid

MAX_FREE_REQUEST = 8 << 30  # never ask the host to unload more than this: tiling is exact anyway
MAX_CHUNK = 8               # images per network call when several fit
CPU_WHOLE_MAX_PIXELS = 4_000_000  # on a CPU, automatic tiling runs an image whole only up to this size
                            # (when it fits the budget): one layer of a whole 4 MP pass takes about
                            # a second on 2 cores, so Cancel (checked between layers) stays prompt
CPU_MAX_TILE = 768          # largest automatic tile on a CPU: progress stays regular and host memory
                            # bounded (a 1058-pixel window, tiles of 1024, needs 976 MiB above the
                            # process's resident size, an 802-pixel one 567 MiB, for 2 % more halo
                            # work on big photos; tiles sized to half the free RAM made a 100 MP photo
                            # peak at 9.9 GB: benchmarks/bench_huge_photo.py)
SMALL_TILE = 256            # a chosen tile below this gets a warning: every tile is two network calls,
                            # each with a border of network.TOTAL_HALO pixels (benchmarks/bench_tile_size.py)


@dataclass(frozen=True)
class Plan:
    device: torch.device
    dtype: torch.dtype
    budget: int | None  # bytes the network may use on device (None: unknown)
    chunk: int          # images per call
    tile: int | None    # None: whole image


def plan_run(batch: int, height: int, width: int, dtype: torch.dtype, tile: TileSetting, *,
             net_bytes: int, run: RunContext) -> Plan:
    """Ask the host to make room (like ComfyUI's own model nodes), then pick images per call
    and the tile size. On a CPU, automatic tiling runs an image whole when it fits the budget and has
    at most CPU_WHOLE_MAX_PIXELS pixels, else in tiles of at most CPU_MAX_TILE (the one CPU policy,
    for every host); a fixed tile is the user's choice and TileSetting.WHOLE is never tiled."""
    device = run.compute_device()
    per_image = whole_image_bytes(height, width, 1, dtype)
    if run.free_memory is not None:
        run.free_memory(min(per_image, MAX_FREE_REQUEST) + net_bytes, device)
    budget = run.budget(device)
    chunk = 1 if budget is None else int(max(1, min(MAX_CHUNK, batch, budget // max(per_image, 1))))
    size = resolve_tile(tile, height, width, chunk, dtype, budget)
    if tile.mode is TileMode.AUTO and device.type == "cpu" and (size is not None or
                                                                height * width > CPU_WHOLE_MAX_PIXELS):
        size = min(size or CPU_MAX_TILE, CPU_MAX_TILE)
    if size is not None and size >= max(height, width):
        size = None
    return Plan(device, dtype, budget, chunk, size)


def small_tile_warning(tile: int, height: int, width: int) -> str | None:
    """What a chosen tile under SMALL_TILE pixels costs on this image (None when it is not small)."""
    if tile >= SMALL_TILE or tile >= max(height, width):
        return None
    n = len(tile_grid(height, width, int(tile)))
    return (f"tile size {tile} splits each {width}x{height} image into {n} tiles, each run twice with a "
            f"{TOTAL_HALO}-pixel border; tiles under {SMALL_TILE} px are slow (measured: "
            f"{docs_url('performance.md', 'Tile size in Backlit Enhance')}). Use automatic tiling unless memory is short: tiling is "
            f"exact at any size.")


def tiles(height: int, width: int, tile: int | None) -> bool:
    """Whether an image of this size runs in tiles of ``tile`` pixels (else whole)."""
    return tile is not None and height >= 2 and width >= 2 and not (tile >= height and tile >= width)


def steps_per_call(height: int, width: int, tile: int | None, images: int = 1) -> int:
    """Progress steps of one network call: one per image when whole, two passes per tile when tiled."""
    return 2 * len(tile_grid(height, width, tile)) if tiles(height, width, tile) else images


class BatchProgress:
    """Maps each call's (done, total) onto one count for the whole batch, sent to ``report``.
    The calls still to come are counted at ``units`` steps each (updated after an out-of-memory
    back-off changes the tile size)."""

    def __init__(self, n_calls: int, units_per_call: int, report: Callable[[int, int], None]):
        self.remaining = n_calls
        self.units = units_per_call
        self.done_before = 0
        self.report = report

    def __call__(self, done: int, total: int) -> None:
        later = (self.remaining - 1) * self.units
        self.report(self.done_before + done, self.done_before + total + later)

    def call_finished(self, total: int) -> None:
        self.done_before += total
        self.remaining -= 1
