"""Backlit Enhance (``CLIPLITBacklitEnhance``): IMAGE -> enhanced IMAGE + light-map MASK.

The work is the core's ``cliplit_core.engine.api.enhance``; this module turns the node's inputs into
its options and ComfyUI's device, memory manners, progress bar and Cancel button into its
run context (comfy_env.run_context): ComfyUI is asked to free memory first, the image is
tiled (exactly) when it does not fit, the tile halves on out-of-memory, Cancel stops a run
within one tile, the model stays on the offload device.
"""
from __future__ import annotations

import torch

from . import comfy_env
from cliplit_core import validation
from cliplit_core.docs_links import docs_url
from cliplit_core.engine import api, run_plan
from cliplit_core.light import tiling
from cliplit_core.model import CLIPLITModel
from .comfy_env import io
from .errors import node_errors, require_model
from .sockets import CLIPLIT_MODEL

CATEGORY = "image/enhance/CLIP-LIT"
PRECISIONS = api.Precision.choices()  # the precision widget's choices: fp32, auto, fp16, bf16


# --------------------------------------------------------------------------- the work
def enhance_batch(model: CLIPLITModel, images: torch.Tensor, *, strength: float = 1.0,
                  mask: torch.Tensor | None = None, mask_feather: float = 0.0, temporal_smoothing: float = 0.0,
                  fast_preview: bool = False, precision: str = "fp32", tile_size: int = 0,
                  progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """ComfyUI IMAGE [B, H, W, C] -> (enhanced IMAGE [B, H, W, C], light MASK [B, H, W]).

    ``progress(done, total)`` (steps over the whole batch) is called after every tile and may
    raise to abort; ComfyUI's Cancel button is checked there too.
    """
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"IMAGE must have shape [B, H, W, C], got {tuple(images.shape)}")
    options = api.EnhanceOptions(
        strength=strength, mask=mask, mask_feather=mask_feather, temporal_smoothing=temporal_smoothing,
        mode=api.Mode.PREVIEW if fast_preview else api.Mode.EXACT, precision=precision,
        tile=api.TileSetting.parse(tile_size, validation.TILE_SIZE))
    out, light = api.enhance(model, images.movedim(-1, 1), options, comfy_env.run_context(progress))
    return out.movedim(1, -1), light[:, 0].clamp_(0, 1)


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
                         f"options, measured: {docs_url('performance.md')}"),
            inputs=[
                CLIPLIT_MODEL.Input("cliplit_model", tooltip="The model from Load CLIP-LIT."),
                io.Image.Input("image", tooltip="Backlit image(s) or video frames to enhance."),
                io.Float.Input("strength", default=1.0, **_limits(validation.STRENGTH), step=0.05, tooltip=(
                    "How strongly to lift the shadows, in exposure space (result = I / L^strength): 1 = the "
                    "authors' result, 0 = unchanged, above 1 stronger.")),
                io.Mask.Input("mask", optional=True, tooltip=(
                    "Enhance only where the mask is white (soft masks blend smoothly). Load Image's MASK is "
                    "1 - alpha, so the areas painted in the mask editor (or transparent in the PNG) are the ones "
                    "enhanced. One mask for all images, or exactly one per image.")),
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
                    "small images gain less. Measured speed and quality: "
                    f"{docs_url('performance.md', 'Fast preview (`--fast`, `enhance_preview`)')}")),
                io.Combo.Input("precision", options=list(PRECISIONS), default="fp32", optional=True, tooltip=(
                    "Compute precision. fp32 reproduces the authors' results; 'auto' picks the fastest one that "
                    "stays close (fp16 on NVIDIA GPUs; on CPU fp32, or bf16 for the fast preview where the CPU "
                    "computes it natively); fp16/bf16 are faster on GPUs, bf16 also on "
                    "CPUs with AVX-512 BF16 or AMX, at a small cost in accuracy. Measured: "
                    f"{docs_url('performance.md', 'Half precision on the CPU')}")),
                io.Int.Input("tile_size", default=0, **_limits(validation.TILE_SIZE), step=64, optional=True,
                             tooltip=(
                                 "0 = automatic from free memory (whole image when it fits, halved on out-of-"
                                 "memory). Otherwise the tile edge in pixels; tiling is exact (no seams). Small "
                                 f"tiles are slow (every tile is two network calls with a {tiling.TOTAL_HALO}-pixel "
                                 f"border); tiles under {run_plan.SMALL_TILE} px are warned about in the log. "
                                 f"Measured: {docs_url('performance.md', 'Tile size in Backlit Enhance')}")),
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
