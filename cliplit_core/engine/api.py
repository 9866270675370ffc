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
from .core import Engine, describe
from .masks import apply_light_map, check_mask_batch, prepare_mask
from .options import EnhanceOptions, Mode
from .precision import Precision
from .run_context import RunContext
from .tile_setting import TileMode, TileSetting

log = logging.getLogger(__name__)

__all__ = ["enhance", "EnhanceOptions", "Mode", "Precision", "RunContext", "TileSetting", "TileMode"]


def enhance(model, images: torch.Tensor, options: EnhanceOptions = EnhanceOptions(),
            run: RunContext = RunContext()) -> tuple[torch.Tensor, torch.Tensor]:
    """Enhance a batch [B, C, H, W] (or one image [C, H, W]) in 0..1, C = 1..4 (alpha passes through).

    Returns ``(images, light_maps)``: the enhanced images [B, C, H, W] float32 and the light maps
    L [B, 1, H, W] float32 (>= 0; smoothed when ``options.temporal_smoothing`` > 0), both on
    ``run.output_device`` (default: the input's). The images are stored channels-last, so
    ``images.movedim(1, -1)`` ([B, H, W, C]) is contiguous without a copy. The input is never
    modified. ``model``: a :class:`~cliplit_core.model.CLIPLITModel` (``load_model``) or a plain
    CLIPLITNet. The network runs in the engine (engine/core.py): memory plan, back-off, progress
    and Cancel.
    """
    if not isinstance(options, EnhanceOptions):
        raise TypeError(f"options must be an EnhanceOptions, got {type(options).__name__}")
    images = check_images(images)
    if options.mask is not None:  # before any work
        check_mask_batch(options.mask, images.shape[0])
    b, c, h, w = images.shape
    engine = Engine(model, options, run, batch=b, height=h, width=w)
    chunk = engine.plan.chunk
    per_pixel = options.per_pixel
    strength = 1.0 if per_pixel else options.strength  # with a mask / smoothing: applied after the network
    # Results go straight into their place, call by call: for a long video batch the memory beyond
    # the input and the output is one call's work, not extra copies of the whole batch.
    home = images.device
    out = torch.empty(b, c, h, w, dtype=torch.float32, device=home, memory_format=torch.channels_last)
    light = torch.empty(b, 1, h, w, dtype=torch.float32, device=home)
    log.info("%s", describe(engine, b))
    try:
        for i in range(0, b, chunk):
            res = engine.enhance(images[i:i + chunk], strength)
            light[i:i + chunk] = res.light
            if not per_pixel:
                out[i:i + chunk] = res.image
            del res
    finally:
        engine.close()

    if per_pixel:
        if options.temporal_smoothing > 0:
            from .temporal import smooth_light

            light = smooth_light(light, images, options.temporal_smoothing)
        m = None if options.mask is None else prepare_mask(options.mask, b, h, w, options.mask_feather).to(home)
        for i in range(0, b, chunk):
            color, alpha = inference.split_channels(inference.sanitize(images[i:i + chunk]))
            part = apply_light_map(color, light[i:i + chunk], options.strength,
                                   None if m is None else m[i:i + chunk])
            out[i:i + chunk] = part if alpha is None else torch.cat([part, alpha], 1)
    if run.output_device is not None:
        out, light = out.to(run.output_device), light.to(run.output_device)
    return out, light


def check_images(images) -> torch.Tensor:
    """``images`` as a float [B, C, H, W] batch, or one clear error saying what is expected.

    A [C, H, W] image gets a batch axis. Integer tensors (uint8 0..255, uint16, ...) are refused
    rather than guessed at: the API takes floats in 0..1 (``x.float() / 255`` for 8-bit images)."""
    if not isinstance(images, torch.Tensor):
        kind = type(images).__module__.split(".")[0] + "." + type(images).__name__
        hint = " (torch.from_numpy(a).permute(2, 0, 1)[None] for an H x W x C array)" \
            if type(images).__module__.startswith("numpy") else ""
        raise TypeError(f"images must be a torch.Tensor [B, C, H, W] with floats in 0..1, got {kind}{hint}")
    if not (images.is_floating_point()):
        raise TypeError(f"images must hold floats in 0..1, got {str(images.dtype).replace('torch.', '')} "
                        f"(for 8-bit images pass x.float() / 255, for 16-bit x.float() / 65535)")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"images must have shape [B, C, H, W] (or [C, H, W]), got {tuple(images.shape)}")
    c = images.shape[1]
    if c not in (1, 2, 3, 4):
        layout = " (this looks like [B, H, W, C]: pass images.movedim(-1, 1))" if images.shape[-1] in (1, 2, 3, 4) \
            else ""
        raise ValueError(f"images must have shape [B, C, H, W] with C = 1, 2, 3 or 4 channels, got "
                         f"{tuple(images.shape)}{layout}")
    inference.split_channels(images[:1, :, :1, :1])  # empty batch: a clear error before any work
    return images
