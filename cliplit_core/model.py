"""A loaded CLIP-LIT model: the enhancement network, its prompt pair, its CLIP settings, its capabilities.

:class:`CLIPLITModel` is what a host application (the ComfyUI nodes, scripts) keeps
after :func:`load_model`. The network is float32, in eval mode, on the offload device
and never modified after loading: every run works on its own copy on the compute device
(:meth:`CLIPLITModel.working_net`), so a half-precision run can never degrade the shared
weights. The CLIP backbone is only built when a light score is asked for, on first use,
and shared afterwards. What the model can do is declared once, in :attr:`CLIPLITModel.capabilities`
(the idea of spandrel's model descriptors), so a host can check sizes, dtypes and tiling
before running anything. docs/design.md, "Model object".
"""
from __future__ import annotations

import copy
import dataclasses
import enum
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .weights import checkpoint
from .clip import weights as clip_weights
from .engine.memory import param_bytes
from .weights.model_files import ModelFiles
from .light.network import PADDING_VARIANTS, TOTAL_HALO

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "ViT-B-32"  # the authors' CLIP for prompts and scores
DEFAULT_CLIP_PRETRAINED = "openai"
AUTO = "auto"  # the CLIP the prompt pair was made for (its metadata), else the defaults above
RANDOM_WEIGHTS = clip_weights.RANDOM_WEIGHTS


class Tiling(enum.Enum):
    """How a model behaves when an image is processed in tiles."""

    EXACT = "exact"
    """Tiles give the whole-image result (equal up to float rounding): the global context is
    computed over the whole image first and each tile carries a halo covering the receptive field."""
    APPROXIMATE = "approximate"
    """Tiles work but seams or a different result are to be expected."""
    UNSUPPORTED = "unsupported"
    """The model must see the whole image at once."""


@dataclass(frozen=True)
class SizeRequirements:
    """Image sizes a model accepts (pixels per side)."""

    minimum: int = 1  # smallest height / width
    multiple_of: int = 1  # height and width must be multiples of this
    square: bool = False  # height must equal width

    def check(self, height: int, width: int) -> bool:
        return (height >= self.minimum and width >= self.minimum and height % self.multiple_of == 0
                and width % self.multiple_of == 0 and (not self.square or height == width))


@dataclass(frozen=True)
class Capabilities:
    """What a CLIP-LIT enhancement model accepts and how it may be run."""

    architecture: str = "CLIP-LIT"
    scale: int = 1  # output size / input size
    input_channels: tuple[int, ...] = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA (alpha passed through)
    output_channels: str = "same as input"  # the enhanced image keeps the input's channels
    network_channels: tuple[int, int] = (3, 1)  # the network maps RGB to a one-channel light map
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)  # compute dtypes
    # any size: a 1-pixel axis is duplicated before the network (its reflect padding needs 2 pixels)
    size: SizeRequirements = SizeRequirements(minimum=1)
    tiling: Tiling = Tiling.EXACT
    tile_minimum: int = 1  # smallest tile edge (pixels of the tile's core, without the halo)
    tile_halo: int = TOTAL_HALO  # context pixels a tile needs on each side that is not an image border
    padding: str = "reflect"  # the network's border padding, one of network.PADDING_VARIANTS

    def __post_init__(self):
        if self.padding not in PADDING_VARIANTS:
            raise ValueError(f"padding must be one of {PADDING_VARIANTS}, got {self.padding!r}")


@dataclass(eq=False)
class CLIPLITModel:
    """A loaded model (built by :func:`load_model`; the constructor is for tests and tools)."""

    net: torch.nn.Module  # CLIPLITNet, float32, eval, on the offload device; never mutated
    source: str
    padding: str = "reflect"
    metadata: dict = field(default_factory=dict)
    prompt_pair: object | None = None  # cliplit_core.clip.prompts.PromptPair or None
    prompt_source: str = ""
    clip_model: str = AUTO
    clip_pretrained: str = AUTO
    files: ModelFiles = field(default_factory=ModelFiles)  # where CLIP configs / weights are looked up
    offload_device: torch.device | None = None  # where the CLIP backbone rests; None: the network's device
    _backbone: object | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(padding=self.padding)

    # ------------------------------------------------------------------ enhancement network
    def working_net(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """The network on ``device`` in ``dtype``: a private copy (the net is ~1 MB) unless it
        already lives there in float32, so nothing a run does can change the shared weights."""
        if dtype not in self.capabilities.dtypes:
            raise ValueError(f"dtype must be one of {self.capabilities.dtypes}, got {dtype}")
        p = next(self.net.parameters())
        if p.device == torch.device(device) and p.dtype == dtype == torch.float32:
            return self.net
        return copy.deepcopy(self.net).to(device=device, dtype=dtype)

    def net_bytes(self) -> int:
        return param_bytes(self.net)

    # ------------------------------------------------------------------ CLIP (lazy)
    def _offload(self) -> torch.device:
        return torch.device(self.offload_device) if self.offload_device is not None else \
            next(self.net.parameters()).device

    def backbone(self):
        """The frozen CLIP backbone (built on first use, on the offload device, fp32).

        Raises :class:`~cliplit_core.errors.CLIPBackboneError` (offline: within seconds,
        naming the file to download and the folder to put it in)."""
        from .clip import backbone as clip_backbone

        with self._lock:
            if self._backbone is None:
                choice = clip_weights.resolve_clip(*self.clip_settings(), self.files)
                log.info("loading CLIP %s (%s) for light scores", choice.model, choice.pretrained)
                self._backbone = clip_backbone.load_backbone(choice.model, choice.pretrained, device=self._offload(),
                                                             precision="fp32", quick_gelu=choice.quick_gelu)
            return self._backbone

    def clip_settings(self) -> tuple[str, str]:
        """(model, pretrained) with 'auto' replaced: what the prompt pair records (a trained
        file knows its CLIP), else ViT-B-32 / openai as the authors. A recorded file path
        from another computer falls back to the same file name in the model folders."""
        pair = self.prompt_pair
        model, pretrained = (self.clip_model or AUTO).strip(), (self.clip_pretrained or AUTO).strip()
        if model.lower() == AUTO:
            model = getattr(pair, "clip_model", None) or DEFAULT_CLIP_MODEL
        if pretrained.lower() == AUTO:
            pretrained = self._moved_file(getattr(pair, "clip_pretrained", None) or DEFAULT_CLIP_PRETRAINED)
        if model.lower().endswith(".json"):
            model = self._moved_file(model)
        return model, pretrained

    def _moved_file(self, name: str) -> str:
        p = Path(name)
        if p.is_absolute() and not p.is_file() and self.files.find(p.name) is not None:
            return p.name
        return name

    def backbone_on(self, device: torch.device):
        """The backbone on ``device``: itself when it already lives there, else a temporary copy."""
        bb = self.backbone()
        if torch.device(device) == torch.device(bb.device):
            return bb
        return dataclasses.replace(bb, model=copy.deepcopy(bb.model).to(device), device=torch.device(device))

    def text_features(self, backbone) -> torch.Tensor:
        """``[2, embed_dim]`` normalised text features: the learned prompt pair, or zero-shot prompts."""
        from .clip import prompts

        if self.prompt_pair is not None:
            return self.prompt_pair.text_features(backbone).detach()
        return prompts.zero_shot_text_features(backbone)

    @property
    def prompt_description(self) -> str:
        if self.prompt_pair is not None:
            return f"learned prompt pair from {Path(self.prompt_source).name or 'the model file'}"
        return "zero-shot text prompts (no learned prompt pair loaded)"

    def __repr__(self) -> str:  # shown in ComfyUI's debug output
        return (f"CLIPLITModel({Path(self.source).name}, padding={self.padding}, "
                f"prompts={'learned' if self.prompt_pair is not None else 'zero-shot'}, "
                f"clip={'/'.join(self.clip_settings())})")


def load_model(path: str | os.PathLike, *, prompt_pair: str | os.PathLike | None = None, clip_model: str = AUTO,
               clip_pretrained: str = AUTO, files: ModelFiles | None = None,
               offload_device: torch.device | str = "cpu") -> CLIPLITModel:
    """Load a model file (the authors' ``.pth`` or our ``.safetensors``) into a :class:`CLIPLITModel`.

    ``prompt_pair``: a prompt-pair file (a name is looked up in ``files``); None uses the model
    file's own pair, if it has one (else light scores use zero-shot prompts). ``clip_model`` /
    ``clip_pretrained``: the CLIP for light scores ('auto': what the prompt pair records, else
    ViT-B-32 / openai); nothing of CLIP is loaded here. The network is put on ``offload_device``.
    Raises a :class:`~cliplit_core.errors.CLIPLITError` with a clear message on any bad input.
    """
    from .clip.prompts import PromptPair

    files = files or ModelFiles()
    w = checkpoint.read_weights(path)
    net = checkpoint.build_network(w).to(offload_device)
    pair, pair_source = None, ""
    if prompt_pair is not None:
        ppath = files.require(str(prompt_pair), "prompt-pair file")
        pair, pair_source = PromptPair.load(ppath), str(ppath)
    elif w.prompt_pair is not None:
        pair, pair_source = PromptPair.load(path), str(path)
    if pair is not None:
        pair.requires_grad_(False)
    return CLIPLITModel(net=net, source=str(path), padding=w.padding, metadata=dict(w.metadata), prompt_pair=pair,
                        prompt_source=pair_source, clip_model=(clip_model or AUTO).strip(),
                        clip_pretrained=(clip_pretrained or AUTO).strip(), files=files,
                        offload_device=torch.device(offload_device))
