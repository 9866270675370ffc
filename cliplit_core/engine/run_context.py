"""What the host of an enhancement run provides: :class:`RunContext`.

The command line and scripts use the defaults (plain torch, this machine's free memory);
ComfyUI's nodes fill in ComfyUI's device, memory accounting, cache, progress bar and Cancel
button (nodes/comfy_env.py). The core never imports a host.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch

from . import memory

log = logging.getLogger(__name__)


def _log_warning(message: str) -> None:
    log.warning("%s", message)


@dataclass(frozen=True)
class RunContext:
    """Hooks and resources of the host, all optional.

    * ``device``: where the network runs (None: :func:`memory.default_device`).
    * ``memory_budget``: bytes the network may use there; None: ``memory_fraction`` of ``free_bytes(device)``.
    * ``free_bytes(device)``: free memory in bytes, or None when unknown (then nothing is tiled
      unless asked for).
    * ``memory_fraction``: share of the free memory to use; None: memory.CPU_FRACTION on a CPU,
      memory.GPU_FRACTION elsewhere.
    * ``free_memory(bytes, device)``: asked before the run to make that much room (unload other models).
    * ``empty_cache()``: called after an out-of-memory error and after a run on an accelerator.
    * ``progress(done, total)``: steps over the whole batch (a tile pass, a chunk of images); may raise to stop.
    * ``raise_if_cancelled()``: called after every step; raises the host's exception to stop the run.
    * ``output_device``: where the results are returned (None: the input's device).
    * ``warn(message)``: a warning for the user (default: the ``cliplit_core.engine.run_context`` logger).
    """

    device: torch.device | str | None = None
    memory_budget: int | None = None
    free_bytes: Callable[[torch.device], int | None] | None = memory.available_bytes
    memory_fraction: float | None = None
    free_memory: Callable[[int, torch.device], None] | None = None
    empty_cache: Callable[[], None] | None = None
    progress: Callable[[int, int], None] | None = None
    raise_if_cancelled: Callable[[], None] | None = None
    output_device: torch.device | str | None = None
    warn: Callable[[str], None] = _log_warning

    def compute_device(self) -> torch.device:
        return torch.device(self.device) if self.device is not None else memory.default_device()

    def budget(self, device: torch.device) -> int | None:
        """Bytes the network may use on ``device`` (None: unknown)."""
        if self.memory_budget is not None:
            return max(0, int(self.memory_budget))
        free = self.free_bytes(device) if self.free_bytes is not None else None
        if free is None:
            return None
        frac = self.memory_fraction
        if frac is None:
            frac = memory.CPU_FRACTION if device.type == "cpu" else memory.GPU_FRACTION
        return max(0, int(free * frac))

    def step(self, done: int, total: int) -> None:
        """One step of the run is done: report it, then let the host stop the run."""
        if self.progress is not None:
            self.progress(done, total)
        if self.raise_if_cancelled is not None:
            self.raise_if_cancelled()
