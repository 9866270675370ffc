"""Backlit Enhance (``CLIPLITBacklitEnhance``): IMAGE -> enhanced IMAGE + light-map MASK.

Memory manners of ComfyUI's own model nodes (ImageUpscaleWithModel): ask ComfyUI
to free memory first, run on its torch device, tile when the image does not fit
(our tiling is exact, so tiles never change the result), halve the tile on
out-of-memory, drive a ProgressBar, leave the model on the offload device.
Cancel stops a run within one tile: the progress callback checks it after
every tile (on CPU tiles are capped at 1024 pixels so that a tile takes seconds).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import comfy_env
from ._core import core_module, inference, tiling, validation
from .comfy_env import io
from .errors import node_errors, require_model
from .model import CLIPLITModel
from .sockets import CLIPLIT_MODEL

log = logging.getLogger("CLIP-LIT")

CATEGORY = "image/enhance/CLIP-LIT"
PRECISIONS = {"fp32": torch.float32, "auto": None, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_FREE_REQUEST = 8 << 30  # never ask ComfyUI to unload more than this: tiling is exact anyway
MAX_CHUNK = 8               # images per network call when several fit
CPU_MAX_TILE = 1024         # on CPU a tile of ~1 MP takes seconds: Cancel and the progress bar stay
                            # responsive (costs ~15 % over one whole-image pass, measured on 2048x1536)
GPU_FRACTION, CPU_FRACTION, LOWVRAM_FRACTION = 0.8, 0.5, 0.5
SMALL_TILE = 256            # a tile_size below this gets a warning: every tile is two network calls,
                            # each with a border of network.TOTAL_HALO pixels (benchmarks/bench_tile_size.py)


# --------------------------------------------------------------------------- masks
def _gaussian_blur(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W] (reflect borders)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=torch.float32, device=m.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = (k / k.sum()).to(m.dtype)
    h, w = m.shape[-2:]
    ry, rx = min(radius, h - 1), min(radius, w - 1)
    if ry > 0:
        m = F.conv2d(F.pad(m, (0, 0, ry, ry), mode="reflect"), k[radius - ry: radius + ry + 1].view(1, 1, -1, 1))
    if rx > 0:
        m = F.conv2d(F.pad(m, (rx, rx, 0, 0), mode="reflect"), k[radius - rx: radius + rx + 1].view(1, 1, 1, -1))
    return m


def prepare_mask(mask: torch.Tensor, batch: int, height: int, width: int, feather: float) -> torch.Tensor:
    """ComfyUI MASK ([H, W] or [B, H, W]) -> [batch, 1, H, W] in 0..1: resized to the image
    (bilinear), repeated over the batch like ComfyUI's own nodes, edges feathered (Gaussian,
    ``feather`` = sigma in pixels)."""
    m = mask.float()
    if m.dim() == 2:
        m = m[None]
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() != 3:
        raise ValueError(f"mask must have shape [H, W] or [B, H, W], got {tuple(mask.shape)}")
    m = torch.nan_to_num(m, nan=0.0).clamp(0, 1)[:, None]
    if m.shape[-2:] != (height, width):
        m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
    if m.shape[0] != batch:
        reps = -(-batch // m.shape[0])
        m = m.repeat(reps, 1, 1, 1)[:batch]
    if feather > 0:
        m = _gaussian_blur(m, float(feather))
    return m.clamp(0, 1)


def apply_light_map(color: torch.Tensor, light: torch.Tensor, strength: float,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """``color / L ** (strength * mask)``, clamped; equals the core's apply_light without a mask."""
    if mask is None:
        return inference.apply_light(color, light, strength)
    log_l = light.to(color.dtype).clamp_min(inference.LIGHT_FLOOR).log()
    out = color * torch.exp(-float(strength) * mask.to(color.device, color.dtype) * log_l)
    return torch.nan_to_num(out, nan=0.0, posinf=1.0).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------- memory plan
@dataclass
class Plan:
    device: torch.device
    dtype: torch.dtype
    budget: int | None  # bytes the network may use on device (None: unknown)
    chunk: int          # images per call
    tile: int | None    # None: whole image


def plan_run(model: CLIPLITModel, batch: int, height: int, width: int, dtype: torch.dtype,
             tile_size: int = 0) -> Plan:
    """Free memory like ComfyUI's nodes do, then pick images per call and tile size."""
    device = comfy_env.compute_device()
    per_image = inference.whole_image_bytes(height, width, 1, dtype)
    comfy_env.free_memory(min(per_image, MAX_FREE_REQUEST) + model.net_bytes(), device)
    free = comfy_env.free_bytes(device)
    if free is None:
        budget = None
    else:
        frac = CPU_FRACTION if device.type == "cpu" else (LOWVRAM_FRACTION if comfy_env.low_vram() else GPU_FRACTION)
        budget = max(0, int(free * frac))
    chunk = 1 if budget is None else int(max(1, min(MAX_CHUNK, batch, budget // max(per_image, 1))))
    if tile_size and tile_size > 0:
        tile = int(tile_size)
    else:
        tile = inference.choose_tile(height, width, chunk, dtype, budget)
    if device.type == "cpu" and max(height, width) > CPU_MAX_TILE:
        tile = min(tile or CPU_MAX_TILE, CPU_MAX_TILE)
    if tile is not None and tile >= max(height, width):
        tile = None
    return Plan(device, dtype, budget, chunk, tile)


def small_tile_warning(tile_size: int, height: int, width: int) -> str | None:
    """What a user-chosen tile under SMALL_TILE pixels costs on this image (None when it is not small)."""
    if not tile_size or tile_size <= 0 or tile_size >= SMALL_TILE or tile_size >= max(height, width):
        return None
    n = len(tiling.tile_grid(height, width, int(tile_size)))
    return (f"Backlit Enhance: tile_size {tile_size} splits each {width}x{height} image into {n} tiles, each run "
            f"twice with a {tiling.TOTAL_HALO}-pixel border; tiles under {SMALL_TILE} px are slow (on a 512x512 "
            f"image on a CPU, 64 px tiles took 11x as long as automatic tiling, 128 px 4x). Use 0 (automatic) "
            f"unless memory is short: tiling is exact at any size.")


def _units(h: int, w: int, tile: int | None) -> int:
    return 1 if tile is None else 2 * len(tiling.tile_grid(h, w, tile))


class _Progress:
    """Maps the core's per-call (done, total) onto one ComfyUI ProgressBar for the whole batch,
    checking the Cancel button on every step."""

    def __init__(self, n_chunks: int, units_per_chunk: int, extra=None):
        self.remaining = n_chunks
        self.units = units_per_chunk
        self.done_before = 0
        self.bar = comfy_env.progress_bar(n_chunks * units_per_chunk)
        self.extra = extra

    def __call__(self, done: int, total: int) -> None:
        later = (self.remaining - 1) * self.units
        self.bar.update_absolute(self.done_before + done, self.done_before + total + later)
        if self.extra is not None:
            self.extra(done, total)
        comfy_env.throw_if_interrupted()

    def chunk_finished(self, total: int) -> None:
        self.done_before += total
        self.remaining -= 1


# --------------------------------------------------------------------------- the work
def enhance_batch(model: CLIPLITModel, images: torch.Tensor, *, strength: float = 1.0,
                  mask: torch.Tensor | None = None, mask_feather: float = 0.0, temporal_smoothing: float = 0.0,
                  fast_preview: bool = False, precision: str = "fp32", tile_size: int = 0,
                  progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """ComfyUI IMAGE [B, H, W, C] -> (enhanced IMAGE [B, H, W, C], light MASK [B, H, W]).

    ``progress(done, total)`` is called after every tile (per network call) and may raise to
    abort; ComfyUI's Cancel button is checked there and between layers.
    """
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"IMAGE must have shape [B, H, W, C], got {tuple(images.shape)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    strength = validation.check_number(validation.STRENGTH, strength)
    mask_feather = validation.check_number(validation.MASK_FEATHER, mask_feather)
    temporal_smoothing = validation.check_number(validation.TEMPORAL_SMOOTHING, temporal_smoothing)
    tile_size = validation.check_number(validation.TILE_SIZE, tile_size)
    b, h, w, c = images.shape
    inference.split_channels(images[:1, :1, :1].movedim(-1, 1))  # channel count / empty batch: clear errors
    dtype = PRECISIONS[precision]
    if dtype is None:  # the core's choice: float16 on CUDA, float32 elsewhere
        dtype = inference.resolve_dtype(None, comfy_env.compute_device())
    plan = plan_run(model, b, h, w, dtype, tile_size)
    small = small_tile_warning(tile_size, h, w) if plan.tile is not None else None
    if small:
        log.warning(small)
    simple = mask is None and temporal_smoothing <= 0
    preview = core_module("preview") if fast_preview else None

    n_chunks = -(-b // plan.chunk)
    tracker = _Progress(n_chunks, 1 if preview else _units(h, w, plan.tile), progress)
    net = model.working_net(plan.device, dtype)

    def on_oom(next_tile):
        log.warning("CLIP-LIT: out of memory; retrying with %s-pixel tiles", next_tile)
        comfy_env.soft_empty_cache()
        tracker.units = _units(h, w, next_tile)

    # Results go straight into their place, chunk by chunk: for a long video batch the memory
    # beyond the input and the output is one chunk's work, not extra copies of the whole batch.
    home = images.device
    out = torch.empty(b, h, w, c, dtype=torch.float32, device=home)
    light = torch.empty(b, 1, h, w, dtype=torch.float32, device=home)
    log.info("CLIP-LIT: %d image(s) %dx%d on %s (%s), %d per call, %s", b, w, h, plan.device,
             str(dtype).replace("torch.", ""), plan.chunk,
             f"tiles of {plan.tile} px" if plan.tile else "whole image")
    try:
        for i in range(0, b, plan.chunk):
            xb = inference.sanitize(images[i:i + plan.chunk].movedim(-1, 1))
            if plan.tile is None and preview is None:
                xb = xb.to(plan.device, non_blocking=True)  # also divide on the device, not the CPU
            if preview is not None:
                res = preview.enhance_preview(net, xb, strength=strength if simple else 1.0, device=plan.device,
                                              dtype=None if precision == "auto" else dtype)
                tracker(1, 1)
                tracker.chunk_finished(1)
            else:
                seen = {"total": tracker.units}

                def cb(done, total, _seen=seen):
                    _seen["total"] = total
                    tracker(done, total)

                res = inference.enhance_with_backoff(
                    net, xb, strength=strength if simple else 1.0, tile=plan.tile, device=plan.device,
                    dtype=dtype, memory_budget=plan.budget, on_oom=on_oom, progress=cb)
                tracker.chunk_finished(seen["total"])
            light[i:i + plan.chunk] = res.light
            if simple:
                out[i:i + plan.chunk] = res.image.movedim(1, -1)
            del res, xb
    finally:
        del net
        if plan.device.type != "cpu":
            comfy_env.soft_empty_cache()

    if not simple:
        if temporal_smoothing > 0:
            light = core_module("temporal").smooth_light(light, images.movedim(-1, 1), float(temporal_smoothing))
        m = prepare_mask(mask, b, h, w, mask_feather).to(home) if mask is not None else None
        for i in range(0, b, plan.chunk):
            color, alpha = inference.split_channels(inference.sanitize(images[i:i + plan.chunk].movedim(-1, 1)))
            part = apply_light_map(color, light[i:i + plan.chunk], strength,
                                   None if m is None else m[i:i + plan.chunk])
            out[i:i + plan.chunk] = (part if alpha is None else torch.cat([part, alpha], 1)).movedim(1, -1)
    dev = comfy_env.intermediate_device()
    return out.to(dev), light[:, 0].clamp_(0, 1).to(dev)


def _limits(rule) -> dict:
    """A widget's min / max: the range the core checks (validation.py)."""
    cast = int if rule.integer else float
    return {"min": cast(rule.low), "max": cast(rule.high)}


class CLIPLITBacklitEnhance(io.ComfyNode):
    """Backlit Enhance: brightens the dark subject of backlit photos (CLIP-LIT, ICCV 2023)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CLIPLITBacklitEnhance",
            display_name="Backlit Enhance",
            category=CATEGORY,
            description=("Enhances backlit photos with CLIP-LIT: predicts an illumination map L and returns I / L. "
                         "Default settings reproduce the authors' results. Works on batches and video frames; big "
                         "images are tiled exactly (no seams) when memory is short. Speed and accuracy of the "
                         "options: docs/performance.md."),
            inputs=[
                CLIPLIT_MODEL.Input("cliplit_model", tooltip="The model from Load CLIP-LIT."),
                io.Image.Input("image", tooltip="Backlit image(s) or video frames to enhance."),
                io.Float.Input("strength", default=1.0, **_limits(validation.STRENGTH), step=0.05, tooltip=(
                    "How strongly to lift the shadows, in exposure space (result = I / L^strength): 1 = the "
                    "authors' result, 0 = unchanged, above 1 stronger.")),
                io.Mask.Input("mask", optional=True, tooltip=(
                    "Enhance only where the mask is white (soft masks blend smoothly). Load Image's MASK is "
                    "1 - alpha, so the areas painted in the mask editor (or transparent in the PNG) are the ones "
                    "enhanced.")),
                io.Float.Input("mask_feather", default=8.0, **_limits(validation.MASK_FEATHER), step=1.0,
                               optional=True, tooltip=("Softens the mask edges (Gaussian blur sigma in pixels); "
                                                       "only used with a mask.")),
                io.Float.Input("temporal_smoothing", default=0.0, **_limits(validation.TEMPORAL_SMOOTHING),
                               step=0.5, optional=True, tooltip=(
                                   "For video frames (the batch is a sequence): smooths the light correction over "
                                   "time to remove flicker (Gaussian sigma in frames; 0 = off, 2 is a good start). "
                                   "Never blends across scene cuts.")),
                io.Boolean.Input("fast_preview", default=False, optional=True, tooltip=(
                    "Fast preview: predicts the light map at reduced resolution (1/4 per side on big images) and "
                    "calibrates it on a few exact windows. Much faster on big photos, close to the full result; "
                    "small images gain less (figures: docs/performance.md).")),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32", optional=True, tooltip=(
                    "Compute precision. fp32 reproduces the authors' results; 'auto' picks the fastest one that "
                    "stays close (fp16 on NVIDIA GPUs, fp32 on CPU); fp16/bf16 are faster on GPUs, bf16 also on "
                    "CPUs with AVX-512 BF16 or AMX, at a small cost in accuracy (figures: docs/performance.md).")),
                io.Int.Input("tile_size", default=0, **_limits(validation.TILE_SIZE), step=64, optional=True,
                             tooltip=(
                                 "0 = automatic from free memory (whole image when it fits, halved on out-of-"
                                 "memory). Otherwise the tile edge in pixels; tiling is exact (no seams). Small "
                                 f"tiles are slow (every tile is two network calls with a {tiling.TOTAL_HALO}-pixel "
                                 f"border); tiles under {SMALL_TILE} px are warned about in the log (figures: "
                                 "docs/performance.md).")),
            ],
            outputs=[
                io.Image.Output("enhanced_image", display_name="image", tooltip="The enhanced images."),
                io.Mask.Output("light_map", display_name="light_map", tooltip=(
                    "The illumination map L the image was divided by (0 = dark, 1 = fully lit), one per image.")),
            ],
        )

    @classmethod
    @node_errors("Backlit Enhance")
    def execute(cls, cliplit_model, image, strength=1.0, mask=None, mask_feather=8.0, temporal_smoothing=0.0,
                fast_preview=False, precision="fp32", tile_size=0):
        require_model(cliplit_model)
        enhanced, light_map = enhance_batch(cliplit_model, image, strength=strength, mask=mask,
                                            mask_feather=mask_feather, temporal_smoothing=temporal_smoothing,
                                            fast_preview=fast_preview, precision=precision, tile_size=tile_size)
        return io.NodeOutput(enhanced, light_map)
