"""The engine: the one component that runs the enhancement network for every host.

A host (the nodes, the command line's photos and video frames, the Python API, benchmarks)
makes one :class:`Engine` per run from what the user asked (:class:`EnhanceOptions`), what the
host provides (:class:`RunContext`) and the size of the images. The engine decides, once:

* the device and the compute dtype (``Precision.resolve``; half precision the device cannot
  compute fast falls back to float32 with one warning: :func:`working_dtype`);
* the memory plan: images per network call and the tile size, with one CPU cap on automatic
  tiles (run_plan.plan_run);
* the network's weights, converted once for that device and dtype.

Then it runs the network on whole images, exact tiles, the fast preview, or an 8/16-bit photo
kept in its file's form, always through the same two mechanisms:

* one out-of-memory back-off (:meth:`Engine._backoff`): the tile is halved after each
  out-of-memory error, down to ``inference.MIN_TILE``, and the smaller tile is kept for the
  rest of the run (later images and video frames start from it);
* progress and Cancel: every step (an image of a batch, a tile pass, a preview's
  low-resolution tile or calibration chunk) is reported to ``run.step`` and, between steps,
  the host's ``raise_if_cancelled`` is also checked between the network's layers
  (light/cancel.py), so Cancel never waits for more than one layer.
"""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

import numpy as np
import torch

from ..light import cancel, fastnet
from . import inference, run_plan
from .memory import param_bytes
from .options import EnhanceOptions, Mode
from .precision import Precision
from .run_context import RunContext
from .tile_setting import TileMode

log = logging.getLogger(__name__)
T = TypeVar("T")


class BareNet:
    """A plain network as an enhancement model (the weights are copied to the compute device and
    dtype by the forward pass, never modified), with the capabilities of any CLIP-LIT network."""

    def __init__(self, net: torch.nn.Module):
        from ..model import Capabilities

        self.net = net
        self.capabilities = Capabilities()

    def working_net(self, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        return self.net

    def net_bytes(self) -> int:
        return param_bytes(self.net)


def as_model(model):
    """``model`` when it offers ``working_net(device, dtype)`` and ``net_bytes()``, else a plain network wrapped."""
    if hasattr(model, "working_net") and hasattr(model, "net_bytes"):
        return model
    if isinstance(model, torch.nn.Module):
        return BareNet(model)
    raise TypeError(f"model must be a CLIP-LIT model (load_model) or an enhancement network, "
                    f"got {type(model).__name__}")


_WARNED: set = set()


def working_dtype(precision: Precision, device: torch.device, *, preview: bool,
                  warn: Callable[[str], None] | None = None) -> torch.dtype:
    """The dtype a run computes in: ``precision`` resolved for the device and kind of run, except that
    half precision on a CPU that cannot compute it natively (float16 on any CPU, bfloat16 without
    AVX-512 BF16 / AMX) runs in float32 instead -- emulated it is several times slower and no
    more exact. ``warn`` gets one line saying so (once per process and setting)."""
    dtype = precision.resolve(device, preview=preview)
    if device.type != "cpu" or dtype == torch.float32:
        return dtype
    from .precision import cpu_has_fast_bfloat16

    if dtype == torch.bfloat16 and cpu_has_fast_bfloat16():
        return dtype
    key = (str(dtype), device.type)
    if warn is not None and key not in _WARNED:
        _WARNED.add(key)
        name = str(dtype).replace("torch.", "")
        warn(f"{name} is emulated on this CPU (several times slower than float32); computing in float32")
    return torch.float32


class Engine:
    """One run of the network over images of one size (see the module docstring)."""

    def __init__(self, model, options: EnhanceOptions, run: RunContext, *, batch: int, height: int, width: int):
        self.model = as_model(model)
        self.options, self.run = options, run
        self.preview = options.mode is Mode.PREVIEW
        self.height, self.width = height, width
        self.device = run.compute_device()
        self.dtype = working_dtype(options.precision, self.device, preview=self.preview, warn=run.warn)
        if self.dtype not in self.model.capabilities.dtypes:  # the model declares what it computes in
            run.warn(f"this model does not compute in {str(self.dtype).replace('torch.', '')}; using float32")
            self.dtype = torch.float32
        self.plan = run_plan.plan_run(batch, height, width, self.dtype, options.tile,
                                      net_bytes=self.model.net_bytes(), run=run)
        if self.preview:  # the network runs on the downsampled image: its tile follows that size
            from .preview import low_resolution

            self.pass_hw = low_resolution(height, width)
            self.tile = inference.resolve_tile(options.tile, *self.pass_hw, self.plan.chunk, self.dtype,
                                               self.plan.budget)
        else:
            self.pass_hw = (height, width)
            self.tile = self.plan.tile
        if options.tile.mode is TileMode.FIXED and run_plan.tiles(height, width, options.tile.size):
            small = run_plan.small_tile_warning(options.tile.size, height, width)
            if small:
                run.warn(small)
        # converted from the float32 weights (fastnet keeps the pooling branches in float32)
        self.weights = fastnet.weights_for(self.model.working_net(self.device, torch.float32), self.device,
                                           self.dtype)
        n_calls = -(-batch // self.plan.chunk)
        self.progress = run_plan.BatchProgress(n_calls, self.steps(self.plan.chunk), run.step)

    # ------------------------------------------------------------------ steps and back-off
    def steps(self, images: int, tile: int | None = ...) -> int:
        """Progress steps of one call on ``images`` images with ``tile`` (default: the current one)."""
        tile = self.tile if tile is ... else tile
        if self.preview:
            from .preview import preview_steps

            return images * preview_steps(self.height, self.width, tile)
        return run_plan.steps_per_call(self.height, self.width, tile, images)

    def _backoff(self, attempt: Callable[[int | None], T], images: int) -> T:
        """``attempt(tile)``, halving the tile after each out-of-memory error (whole image -> half the
        longer side -> ... -> MIN_TILE, then re-raise). The tile that worked is kept for the run."""
        tile = self.tile
        while True:
            try:
                result = attempt(tile)
                self.tile = tile
                return result
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, others re-raised
                if not inference.is_oom(exc) or (tile is not None and tile <= inference.MIN_TILE):
                    raise
                tile = max(inference.MIN_TILE, (tile or max(self.pass_hw)) // 2)
                self.run.warn(f"out of memory; retrying with {tile}-pixel tiles")
                if self.run.empty_cache is not None:
                    self.run.empty_cache()
                self.progress.units = self.steps(self.plan.chunk, tile)

    def _call(self, images: int, attempt: Callable[[int | None, Callable[[int, int], None]], T]) -> T:
        """One network call on ``images`` images: back-off, progress over the batch, Cancel between layers."""
        seen = {"total": self.steps(images)}

        def step(done: int, total: int) -> None:
            seen["total"] = total
            self.progress(done, total)

        def once(tile):
            seen["total"] = self.steps(images, tile)
            return attempt(tile, step)

        with cancel.checks(self.run.raise_if_cancelled):
            result = self._backoff(once, images)
        self.progress.call_finished(seen["total"])
        return result

    # ------------------------------------------------------------------ what hosts call
    def light(self, rgb: torch.Tensor) -> torch.Tensor:
        """Light maps [n, 1, H, W] float32 (on rgb's device) of network inputs ``rgb`` [n, 3, H, W] in 0..1."""
        return self._call(rgb.shape[0], lambda tile, step: self._light_once(rgb, tile, step))

    def _light_once(self, rgb: torch.Tensor, tile: int | None, step) -> torch.Tensor:
        """One attempt at :meth:`light` with ``tile`` (the preview's or the exact network pass)."""
        if self.preview:
            from .preview import preview_light

            return preview_light(self.weights, rgb, device=self.device, dtype=self.dtype, tile=tile, progress=step)
        whole = not run_plan.tiles(*self.pass_hw, tile)
        x = rgb.to(self.device, non_blocking=True) if whole else rgb
        light = inference.predict_light(self.weights, x, tile=tile, device=self.device, dtype=self.dtype,
                                        progress=None if whole else step)
        if whole:  # one step per image of the call
            step(rgb.shape[0], rgb.shape[0])
        return light.to(rgb.device)

    def enhance(self, images: torch.Tensor, strength: float) -> inference.EnhanceResult:
        """Enhanced images (float32, alpha passed through) and light maps of a batch [n, C, H, W]."""
        x = inference.sanitize(images)
        color, alpha = inference.split_channels(x)
        return inference.compose(color, alpha, self.light(inference.network_input(color)), strength)

    def photo(self, pixels: np.ndarray, *, bits: int = 8, with_light: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """One photo's H x W x C pixels (uint8, uint16 or float32) enhanced: (result, light map or None).

        Tiled exact runs keep the photo in its file's 8/16-bit form (tiled_pixels) and return uint8 /
        uint16 (``bits``); whole-image and preview runs return float32 in 0..1. ``files.images``
        writes either to the same bytes."""
        from ..files.images import to_float32
        from .tiled_pixels import enhance_pixels

        strength = self.options.strength

        def float_path(tile, step):
            x = torch.from_numpy(to_float32(pixels)).permute(2, 0, 1)[None]
            color, alpha = inference.split_channels(inference.sanitize(x))
            light = self._light_once(inference.network_input(color), tile, step)  # whole or preview here
            res = inference.compose(color, alpha, light, strength)
            out_light = res.light[0, 0].clamp(0, 1).numpy() if with_light else None
            return res.image[0].permute(1, 2, 0).numpy(), out_light

        def attempt(tile, step):
            if self.preview or not run_plan.tiles(self.height, self.width, tile):
                return float_path(tile, step)
            return enhance_pixels(self.weights, pixels, tile=tile, strength=strength, device=self.device,
                                  dtype=self.dtype, bits=bits, with_light=with_light, progress=step)
        return self._call(1, attempt)

    def planned_reports(self, batch: int) -> int:
        """How many progress reports a run of ``batch`` images makes (one per call when whole images,
        one per step when tiled or previewed)."""
        n_calls = -(-batch // self.plan.chunk)
        whole = not self.preview and not run_plan.tiles(*self.pass_hw, self.tile)
        return n_calls if whole else n_calls * self.steps(self.plan.chunk)

    def close(self) -> None:
        """Release the converted weights (and the accelerator's cache)."""
        self.weights = None
        if self.device.type != "cpu" and self.run.empty_cache is not None:
            self.run.empty_cache()


def enhance_photo(model, pixels: np.ndarray, *, options: EnhanceOptions = EnhanceOptions(),
                  run: RunContext = RunContext(), bits: int = 8, with_light: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """One photo through its own engine: :meth:`Engine.photo` (the command line's photo step)."""
    engine = Engine(model, options, run, batch=1, height=pixels.shape[0], width=pixels.shape[1])
    try:
        return engine.photo(pixels, bits=bits, with_light=with_light)
    finally:
        engine.close()


def describe(engine: Engine, batch: int) -> str:
    """One log line: what runs where."""
    tile = f"tiles of {engine.tile} px" if engine.tile else "whole image"
    return (f"CLIP-LIT: {batch} image(s) {engine.width}x{engine.height} on {engine.device} "
            f"({str(engine.dtype).replace('torch.', '')}), {engine.plan.chunk} per call, {tile}"
            f"{', preview' if engine.preview else ''}")


__all__ = ["Engine", "BareNet", "as_model", "working_dtype", "enhance_photo", "describe"]
