"""The enhancement entry point: ``enhance(model, images, options, run) -> (images, light maps)``.

One function for every host (the nodes, the command line, scripts): exact or fast preview,
whole image or exact tiles, masks, temporal smoothing of video frames and strength, with the
memory plan (images per network call and tile size from the host's free memory), halving the
tile after an out-of-memory error, progress over the whole batch and cancelling between steps.
What the user asks is an :class:`EnhanceOptions`, what the host provides a :class:`RunContext`.
"""
from __future__ import annotations

import logging

import torch

from . import inference
from . import run_plan
from .masks import apply_light_map, check_mask_batch, prepare_mask
from .memory import param_bytes
from .options import EnhanceOptions, Mode
from .precision import Precision
from .run_context import RunContext
from .tile_setting import TileMode, TileSetting

log = logging.getLogger(__name__)

__all__ = ["enhance", "EnhanceOptions", "Mode", "Precision", "RunContext", "TileSetting", "TileMode"]


class _BareNet:
    """A plain network as an enhancement model (the weights are copied to the compute device and
    dtype by the forward pass, never modified)."""

    def __init__(self, net: torch.nn.Module):
        self.net = net

    def working_net(self, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        return self.net

    def net_bytes(self) -> int:
        return param_bytes(self.net)


def _as_model(model):
    """``model`` when it offers ``working_net(device, dtype)`` and ``net_bytes()``, else a plain network wrapped."""
    if hasattr(model, "working_net") and hasattr(model, "net_bytes"):
        return model
    if isinstance(model, torch.nn.Module):
        return _BareNet(model)
    raise TypeError(f"model must be an enhancement network or model, got {type(model).__name__}")


def enhance(model, images: torch.Tensor, options: EnhanceOptions = EnhanceOptions(),
            run: RunContext = RunContext()) -> tuple[torch.Tensor, torch.Tensor]:
    """Enhance a batch [B, C, H, W] (or one image [C, H, W]) in 0..1, C = 1..4 (alpha passes through).

    Returns ``(images, light_maps)``: the enhanced images [B, C, H, W] float32 and the light maps
    L [B, 1, H, W] float32 (>= 0; smoothed when ``options.temporal_smoothing`` > 0), both on
    ``run.output_device`` (default: the input's). The images are stored channels-last, so
    ``images.movedim(1, -1)`` ([B, H, W, C]) is contiguous without a copy. The input is never
    modified. ``model``: an object with ``working_net(device, dtype)`` and ``net_bytes()``, or a
    plain CLIPLITNet.
    """
    if not isinstance(options, EnhanceOptions):
        raise TypeError(f"options must be an EnhanceOptions, got {type(options).__name__}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"images must have shape [B, C, H, W], got {tuple(images.shape)}")
    inference.split_channels(images[:1, :, :1, :1])  # channel count / empty batch: clear errors before any work
    if options.mask is not None:
        check_mask_batch(options.mask, images.shape[0])
    model = _as_model(model)
    b, c, h, w = images.shape
    device = run.compute_device()
    dtype = options.precision.resolve(device, preview=options.mode is Mode.PREVIEW)
    plan = run_plan.plan_run(b, h, w, dtype, options.tile, net_bytes=model.net_bytes(), run=run)
    if plan.tile is not None and options.tile.mode is TileMode.FIXED:
        small = run_plan.small_tile_warning(options.tile.size, h, w)
        if small:
            run.warn(small)
    per_pixel = options.per_pixel
    strength = 1.0 if per_pixel else options.strength  # with a mask / smoothing: applied after the network
    preview = options.mode is Mode.PREVIEW

    n_calls = -(-b // plan.chunk)
    tracker = run_plan.BatchProgress(n_calls, 1 if preview else run_plan.steps_per_call(h, w, plan.tile), run.step)
    net = model.working_net(plan.device, dtype)

    def on_oom(next_tile):
        run.warn(f"out of memory; retrying with {next_tile}-pixel tiles")
        if run.empty_cache is not None:
            run.empty_cache()
        tracker.units = run_plan.steps_per_call(h, w, next_tile)

    # Results go straight into their place, call by call: for a long video batch the memory beyond
    # the input and the output is one call's work, not extra copies of the whole batch.
    home = images.device
    out = torch.empty(b, c, h, w, dtype=torch.float32, device=home, memory_format=torch.channels_last)
    light = torch.empty(b, 1, h, w, dtype=torch.float32, device=home)
    log.info("CLIP-LIT: %d image(s) %dx%d on %s (%s), %d per call, %s%s", b, w, h, plan.device,
             str(dtype).replace("torch.", ""), plan.chunk,
             f"tiles of {plan.tile} px" if plan.tile else "whole image", ", preview" if preview else "")
    try:
        for i in range(0, b, plan.chunk):
            xb = inference.sanitize(images[i:i + plan.chunk])
            if plan.tile is None and not preview:
                xb = xb.to(plan.device, non_blocking=True)  # also divide on the device, not the CPU
            if preview:
                from .preview import enhance_preview

                # its low-resolution pass tiles by the same setting and budget (a gigapixel photo's
                # quarter-size image does not fit whole either)
                res = enhance_preview(net, xb, strength=strength, device=plan.device, dtype=dtype,
                                      tile=options.tile, memory_budget=plan.budget)
                tracker(1, 1)
                tracker.call_finished(1)
            else:
                seen = {"total": tracker.units}

                def step(done, total, _seen=seen):
                    _seen["total"] = total
                    tracker(done, total)

                res = inference.enhance_with_backoff(
                    net, xb, strength=strength, tile=plan.tile,
                    device=plan.device, dtype=dtype, memory_budget=plan.budget, on_oom=on_oom, progress=step)
                tracker.call_finished(seen["total"])
            light[i:i + plan.chunk] = res.light
            if not per_pixel:
                out[i:i + plan.chunk] = res.image
            del res, xb
    finally:
        del net
        if plan.device.type != "cpu" and run.empty_cache is not None:
            run.empty_cache()

    if per_pixel:
        if options.temporal_smoothing > 0:
            from .temporal import smooth_light

            light = smooth_light(light, images, options.temporal_smoothing)
        m = None if options.mask is None else prepare_mask(options.mask, b, h, w, options.mask_feather).to(home)
        for i in range(0, b, plan.chunk):
            color, alpha = inference.split_channels(inference.sanitize(images[i:i + plan.chunk]))
            part = apply_light_map(color, light[i:i + plan.chunk], options.strength,
                                   None if m is None else m[i:i + plan.chunk])
            out[i:i + plan.chunk] = part if alpha is None else torch.cat([part, alpha], 1)
    if run.output_device is not None:
        out, light = out.to(run.output_device), light.to(run.output_device)
    return out, light
