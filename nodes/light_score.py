"""CLIP Light Score (``CLIPLITLightScore``): how well-lit images look to CLIP.

Score = ``1 - S(I)`` = probability "well-lit" under the prompt pair (docs/design.md,
"The CLIP side"); the heatmap scores overlapping windows and shows where the image
looks backlit (1 = backlit, 0 = well-lit). CLIP is loaded on first use only.
"""
from __future__ import annotations

import logging

import torch

from . import comfy_env
from cliplit_core.clip import light_scores
from cliplit_core.engine import memory
from cliplit_core.model import RANDOM_WEIGHTS, CLIPLITModel
from .comfy_env import io, ui
from .errors import node_errors, require_model
from .sockets import CLIPLIT_MODEL

log = logging.getLogger("CLIP-LIT")


CATEGORY = "image/enhance/CLIP-LIT"
CLIP_ACTIVATION_BYTES = 512 << 20  # generous for ViT-B/32 batches of windows


def format_scores(scores: list[float], model: CLIPLITModel) -> str:
    return light_scores.format_scores(scores, model.clip_pretrained.lower() == RANDOM_WEIGHTS)


def score_batch(model: CLIPLITModel, images: torch.Tensor, *, heatmap: bool = True, window: float = 0.5,
                progress=None) -> tuple[float, str, torch.Tensor, list[float]]:
    """ComfyUI IMAGE [B, H, W, C] -> (mean light score, per-image text, backlit heatmap [B, H, W], scores).

    The work is the core's ``light_scores.score_batch``; this adds ComfyUI's device, memory
    manners, progress bar and Cancel button (checked after every batch of heatmap windows).
    """
    if images.dim() == 3:
        images = images[None]
    x = images.movedim(-1, 1)
    run = light_scores.plan(x, heatmap=heatmap, window=window)  # the heatmap's windows, computed once
    log.info("CLIP Light Score: %s", run)
    bb = model.backbone()  # lazy; offline it fails within seconds, naming the file to download
    device = comfy_env.compute_device()
    comfy_env.free_memory(memory.param_bytes(bb.model) + CLIP_ACTIVATION_BYTES, device)
    bb = model.backbone_on(device)
    bar = comfy_env.progress_bar(run.passes)

    def step(done: int, total: int) -> None:
        bar.update_absolute(done, total)
        if progress is not None:
            progress(done, total)
        comfy_env.throw_if_interrupted()

    try:
        res = light_scores.score_batch(x, model.text_features(bb), bb, run, progress=step)
    finally:
        del bb
        if device.type != "cpu":
            comfy_env.soft_empty_cache()
    heat = res.backlit_heatmap.to(comfy_env.intermediate_device())
    return res.mean, format_scores(res.scores, model), heat, res.scores


class CLIPLITLightScore(io.ComfyNode):
    """CLIP Light Score: probability that each image looks well-lit, plus a backlit heatmap."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CLIPLITLightScore",
            display_name="CLIP Light Score",
            category=CATEGORY,
            description=("Scores how well-lit images look to CLIP with CLIP-LIT's prompt pair (probability "
                         "'well-lit', 0..1), shows the scores on the node and maps where an image looks backlit. "
                         "Loads the CLIP backbone on first use."),
            inputs=[
                CLIPLIT_MODEL.Input("cliplit_model", tooltip=("The model from Load CLIP-LIT (its prompt pair and "
                                                              "CLIP settings are used).")),
                io.Image.Input("image", tooltip="Image(s) to score, e.g. before and after Backlit Enhance."),
                io.Boolean.Input("heatmap", default=True, optional=True, tooltip=(
                    "Compute the backlit heatmap: one extra CLIP pass per window, at most 64 windows per image "
                    "whatever its shape (default window: 9 on a square photo, 15 on a 4:3 photo, 7 on a thin "
                    "strip, never more than 32). Off gives an all-zero mask.")),
                io.Float.Input("heatmap_window", default=0.5, min=0.1, max=1.0, step=0.05, optional=True, tooltip=(
                    "Heatmap window side as a fraction of the image's shorter side (of half the longer side on "
                    "images more than twice as long as high); windows overlap by half. Small values give finer "
                    "maps, up to the 64-window limit (reached below about 0.25).")),
            ],
            outputs=[
                io.Float.Output("score", display_name="score", tooltip=(
                    "Mean probability 'well-lit' over the batch (0..1, higher = better lit).")),
                io.String.Output("scores_text", display_name="scores_text",
                                 tooltip="One line per image with its score."),
                io.Mask.Output("backlit_heatmap", display_name="backlit_heatmap", tooltip=(
                    "Where each image looks backlit (1 = backlit, 0 = well-lit), from overlapping windows.")),
            ],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,  # runs and shows its scores even when nothing is connected
        )

    @classmethod
    @node_errors("CLIP Light Score")
    def execute(cls, cliplit_model, image, heatmap=True, heatmap_window=0.5):
        require_model(cliplit_model)
        mean, text, heat, _ = score_batch(cliplit_model, image, heatmap=heatmap, window=heatmap_window)
        comfy_env.show_text_on_node(getattr(cls.hidden, "unique_id", None), text)
        return io.NodeOutput(mean, text, heat, ui=ui.PreviewText(text))
