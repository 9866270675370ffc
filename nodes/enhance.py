"""Backlit Enhance (``CLIPLITBacklitEnhance``): IMAGE -> enhanced IMAGE + light-map MASK.

The work is the core's ``cliplit_core.api.enhance``; this module turns the node's inputs into
its options and ComfyUI's device, memory manners, progress bar and Cancel button into its
run context (comfy_env.run_context): ComfyUI is asked to free memory first, the image is
tiled (exactly) when it does not fit, the tile halves on out-of-memory, Cancel stops a run
within one tile, the model stays on the offload device.
"""
from __future__ import annotations

import torch

from . import comfy_env
from ._core import core_module, validation
from .errors import node_errors
from .model import CLIPLITModel

api = core_module("api")

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


class CLIPLITBacklitEnhance:
    """Backlit Enhance: brightens the dark subject of backlit photos (CLIP-LIT, ICCV 2023)."""

    CATEGORY = CATEGORY
    DESCRIPTION = ("Enhances backlit photos with CLIP-LIT: predicts an illumination map L and returns I / L. "
                   "Default settings reproduce the authors' results. Works on batches and video frames; big "
                   "images are tiled exactly (no seams) when memory is short.")
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "light_map")
    OUTPUT_TOOLTIPS = ("The enhanced images.",
                       "The illumination map L the image was divided by (0 = dark, 1 = fully lit), one per image.")
    FUNCTION = "enhance"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "cliplit_model": ("CLIPLIT_MODEL", {"tooltip": "The model from Load CLIP-LIT."}),
                "image": ("IMAGE", {"tooltip": "Backlit image(s) or video frames to enhance."}),
                "strength": ("FLOAT", {
                    "default": 1.0, **_limits(validation.STRENGTH), "step": 0.05,
                    "tooltip": ("How strongly to lift the shadows, in exposure space (result = I / L^strength): "
                                "1 = the authors' result, 0 = unchanged, above 1 stronger."),
                }),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": ("Enhance only where the mask is white (soft masks blend smoothly). "
                                              "Load Image's MASK is 1 - alpha, so the areas painted in the mask "
                                              "editor (or transparent in the PNG) are the ones enhanced.")}),
                "mask_feather": ("FLOAT", {
                    "default": 8.0, **_limits(validation.MASK_FEATHER), "step": 1.0,
                    "tooltip": "Softens the mask edges (Gaussian blur sigma in pixels); only used with a mask.",
                }),
                "temporal_smoothing": ("FLOAT", {
                    "default": 0.0, **_limits(validation.TEMPORAL_SMOOTHING), "step": 0.5,
                    "tooltip": ("For video frames (the batch is a sequence): smooths the light correction "
                                "over time to remove flicker (Gaussian sigma in frames; 0 = off, 2 is a good "
                                "start). Never blends across scene cuts."),
                }),
                "fast_preview": ("BOOLEAN", {
                    "default": False,
                    "tooltip": ("Fast preview: predicts the light map at reduced resolution (1/4 per side on "
                                "big images) and calibrates it on a few exact windows. About 9x faster on a "
                                "3 MP photo on a CPU, about 40 dB from the full result; small images gain less."),
                }),
                "precision": (list(PRECISIONS), {
                    "default": "fp32",
                    "tooltip": ("Compute precision. fp32 reproduces the authors' results; 'auto' picks the fastest "
                                "one that stays close (fp16 on NVIDIA GPUs, fp32 on CPU); fp16/bf16 are faster on GPUs, "
                                "bf16 also on CPUs with AVX-512 BF16 or AMX (about 2x, within one level on 99.9 % "
                                "of pixels)."),
                }),
                "tile_size": ("INT", {
                    "default": 0, **_limits(validation.TILE_SIZE), "step": 64,
                    "tooltip": ("0 = automatic from free memory (whole image when it fits, halved on out-of-"
                                "memory). Otherwise the tile edge in pixels; tiling is exact (no seams). Small "
                                "tiles are slow (every tile is two network calls with a 17-pixel border): on a "
                                "512x512 image on a CPU, 64 px took 11x as long as automatic, 128 px 4x, 256 px "
                                "2.3x. Tiles under 256 px are warned about in the log."),
                }),
            },
        }

    @node_errors("Backlit Enhance")
    def enhance(self, cliplit_model, image, strength=1.0, mask=None, mask_feather=8.0, temporal_smoothing=0.0,
                fast_preview=False, precision="fp32", tile_size=0):
        if not isinstance(cliplit_model, CLIPLITModel):
            raise TypeError("cliplit_model must come from a Load CLIP-LIT node")
        return enhance_batch(cliplit_model, image, strength=strength, mask=mask, mask_feather=mask_feather,
                             temporal_smoothing=temporal_smoothing, fast_preview=fast_preview,
                             precision=precision, tile_size=tile_size)
