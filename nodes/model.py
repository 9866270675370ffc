"""The ``CLIPLIT_MODEL`` object that flows from Load CLIP-LIT to the other nodes.

It holds the enhancement network (float32, on the offload device, never
modified after loading: each run works on its own copy on the compute device,
so a half-precision run can never degrade the shared weights), the optional
prompt pair and the CLIP settings. The CLIP backbone is only built when a
score is asked for, on first use, and shared afterwards.
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import comfy_env
from ._core import core_module, errors

log = logging.getLogger("CLIP-LIT")

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "openai"
AUTO = "auto"  # the CLIP the prompt pair was made for (its metadata), else the defaults above
RANDOM_WEIGHTS = "none"


class CLIPUnavailableError(errors.CLIPLITError):
    """The CLIP backbone cannot be obtained (no weights, no internet, bad config)."""


def resolve_clip_settings(clip_model: str, clip_pretrained: str) -> tuple[str, str, bool | None]:
    """(model name or config path, pretrained tag / file path / 'none', quick_gelu) ready for the core.

    Relative file names are looked up in the model folders (models/cliplit/).
    A pretrained tag whose weights are not cached is only downloaded when the
    download server answers within a few seconds; otherwise a clear error says
    where to put the file (no minute-long retry loop inside a node).
    """
    model = (clip_model or DEFAULT_CLIP_MODEL).strip()
    pretrained = (clip_pretrained or DEFAULT_CLIP_PRETRAINED).strip()
    if model.lower().endswith(".json"):
        found = comfy_env.find_model_file(model)
        if found is None and not Path(model).is_file():
            raise CLIPUnavailableError(
                f"CLIP model config {model!r} not found (looked in {', '.join(map(str, comfy_env.model_folders())) or 'no model folder'})"
            )
        model = str(found or model)
    if pretrained.lower() == RANDOM_WEIGHTS:
        return model, RANDOM_WEIGHTS, None
    local = comfy_env.find_model_file(pretrained)
    if local is not None:
        return model, str(local), None
    if Path(pretrained).suffix.lower() in (".pt", ".pth", ".bin", ".safetensors"):
        raise CLIPUnavailableError(
            f"CLIP weights file {pretrained!r} not found (looked in "
            f"{', '.join(map(str, comfy_env.model_folders())) or 'no model folder'} and as an absolute path)"
        )
    if model.lower().endswith(".json"):
        raise CLIPUnavailableError(
            f"CLIP model {model} is a config file: give its weights as a local file, or 'none' for random weights"
        )
    clip_weights = core_module("clip_weights")
    if clip_weights.tag_config(model, pretrained) is None:
        return model, pretrained, None  # the core raises a clear 'unknown tag' error listing the known tags
    found = clip_weights.tag_weights(model, pretrained, how_to_use=(
        f"put it into {comfy_env.download_folder()} and enter its file name as clip_pretrained in Load CLIP-LIT"))
    return model, found.file, found.quick_gelu


@dataclass(eq=False)
class CLIPLITModel:
    """What a ``CLIPLIT_MODEL`` socket carries."""

    net: torch.nn.Module  # CLIPLITNet, float32, eval, on the offload device; never mutated
    source: str
    padding: str = "reflect"
    metadata: dict = field(default_factory=dict)
    prompt_pair: object | None = None  # cliplit_core.prompts.PromptPair or None
    prompt_source: str = ""
    clip_model: str = AUTO
    clip_pretrained: str = AUTO
    _backbone: object | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ enhancement network
    def working_net(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """The network on ``device`` in ``dtype``: a private copy (the net is ~1 MB) unless it
        already lives there in float32, so nothing a run does can change the shared weights."""
        p = next(self.net.parameters())
        if p.device == torch.device(device) and p.dtype == dtype == torch.float32:
            return self.net
        return copy.deepcopy(self.net).to(device=device, dtype=dtype)

    def net_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.net.parameters())

    # ------------------------------------------------------------------ CLIP (lazy)
    def backbone(self):
        """The frozen CLIP backbone (built on first use, on the offload device, fp32)."""
        with self._lock:
            if self._backbone is None:
                cb = core_module("clip_backbone")
                model, pretrained, quick_gelu = resolve_clip_settings(*self.clip_settings())
                log.info("CLIP-LIT: loading CLIP %s (%s) for light scores", model, pretrained)
                self._backbone = cb.load_backbone(model, pretrained, device=comfy_env.offload_device(),
                                                  precision="fp32", quick_gelu=quick_gelu)
            return self._backbone

    def clip_settings(self) -> tuple[str, str]:
        """(model, pretrained) with 'auto' replaced: what the prompt pair records (a trained
        file knows its CLIP), else ViT-B-32 / openai as the authors. A recorded weights path
        from another computer falls back to the same file name in the model folders."""
        pair = self.prompt_pair
        model, pretrained = self.clip_model or AUTO, self.clip_pretrained or AUTO
        if model.lower() == AUTO:
            model = getattr(pair, "clip_model", None) or DEFAULT_CLIP_MODEL
        if pretrained.lower() == AUTO:
            pretrained = getattr(pair, "clip_pretrained", None) or DEFAULT_CLIP_PRETRAINED
            p = Path(pretrained)
            if p.is_absolute() and not p.is_file() and comfy_env.find_model_file(p.name) is not None:
                pretrained = p.name
        if model.lower().endswith(".json"):
            p = Path(model)
            if p.is_absolute() and not p.is_file() and comfy_env.find_model_file(p.name) is not None:
                model = p.name
        return model, pretrained

    def backbone_on(self, device: torch.device):
        """The backbone on ``device``: itself when it already lives there, else a temporary copy."""
        bb = self.backbone()
        if torch.device(device) == torch.device(bb.device):
            return bb
        import dataclasses

        return dataclasses.replace(bb, model=copy.deepcopy(bb.model).to(device), device=torch.device(device))

    def text_features(self, backbone) -> torch.Tensor:
        """``[2, embed_dim]`` normalised text features: the learned prompt pair, or zero-shot prompts."""
        if self.prompt_pair is not None:
            return self.prompt_pair.text_features(backbone).detach()
        return core_module("prompts").zero_shot_text_features(backbone)

    @property
    def prompt_description(self) -> str:
        if self.prompt_pair is not None:
            return f"learned prompt pair from {Path(self.prompt_source).name or 'the model file'}"
        return "zero-shot text prompts (no learned prompt pair loaded)"

    def __repr__(self) -> str:  # shown in ComfyUI's debug output
        return (f"CLIPLITModel({Path(self.source).name}, padding={self.padding}, "
                f"prompts={'learned' if self.prompt_pair is not None else 'zero-shot'}, "
                f"clip={'/'.join(self.clip_settings())})")
