"""Frozen CLIP backbones through open_clip (docs/design.md, "The CLIP side").

A backbone is chosen by

* ``model``: an open_clip model name (``"ViT-B-32"``, ``"RN101"``, ...) or the
  path of an open_clip model-config JSON (``{"embed_dim", "vision_cfg",
  "text_cfg"}``, optionally wrapped as ``{"model_cfg": {...}}`` like the
  ``open_clip_config.json`` files on the Hugging Face hub);
* ``pretrained``: an open_clip pretrained tag (``"openai"``; taken from the local
  caches or downloaded on first use, see :mod:`.clip_weights`), the path of a local weights file (open_clip /
  Hugging Face ``.bin`` / ``.pth`` / ``.safetensors`` state dicts, or OpenAI's
  original TorchScript ``ViT-B-32.pt``), or ``"none"`` for random weights
  (tests and timing only -- a loud warning is emitted).

The OpenAI weights were trained with QuickGELU: ``quick_gelu=None`` (auto) uses
the tag's setting, so ``("ViT-B-32", "openai")`` builds the right architecture.
A local file given with a built-in name that has an ``openai`` tag is assumed to
be those OpenAI weights (what CLIP-LIT uses); pass ``quick_gelu=False`` for
other weights of such a model.

Use :func:`load_backbone`; it caches one frozen (eval, ``requires_grad=False``)
backbone per (model, pretrained, device, precision, quick_gelu) for the whole
process. Nothing here assumes ViT-B/32 sizes: read ``image_size``,
``context_length``, ``text_width`` and ``embed_dim`` from the backbone.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import weights as clip_weights
from .preprocess import clip_preprocess
from ..errors import CLIPBackboneError
from ..wording import Advice

log = logging.getLogger(__name__)

DEFAULT_SCORE_MODEL = "ViT-B-32"
DEFAULT_IDENTITY_MODEL = "RN101"
DEFAULT_PRETRAINED = "openai"
RANDOM_WEIGHTS = clip_weights.RANDOM_WEIGHTS
PRECISIONS = ("fp32", "fp16", "bf16")


class RandomWeightsWarning(UserWarning):
    """A CLIP backbone was built with random weights (``pretrained='none'``)."""


@dataclass(eq=False)
class CLIPBackbone:
    """A frozen open_clip model plus what the CLIP-LIT code needs to know about it.

    Not an ``nn.Module`` on purpose: holding one inside a trainable module never
    registers the CLIP weights as sub-modules (no ``.train()`` flips, nothing in
    state dicts or optimisers).
    """

    model: nn.Module
    name: str  # model name or config path as given
    pretrained: str  # tag, file path or "none"
    device: torch.device
    dtype: torch.dtype  # dtype the towers compute in
    image_size: tuple[int, int]
    context_length: int
    text_width: int
    embed_dim: int
    quick_gelu: bool
    config: dict = field(repr=False, default_factory=dict)

    # ------------------------------------------------------------------ towers
    @property
    def visual(self) -> nn.Module:
        return self.model.visual

    @property
    def text_tower(self) -> nn.Module:
        """The module holding ``token_embedding``, ``positional_embedding``,
        ``transformer``, ``attn_mask``, ``ln_final`` and ``text_projection``
        (the CLIP itself, or ``.text`` of an open_clip ``CustomTextCLIP``)."""
        return getattr(self.model, "text", self.model)

    @property
    def is_resnet(self) -> bool:
        from open_clip.modified_resnet import ModifiedResNet

        return isinstance(self.model.visual, ModifiedResNet)

    @property
    def metadata_name(self) -> str:
        """How this backbone is recorded in a weights file's metadata."""
        return self.name

    # ------------------------------------------------------------------ images
    def preprocess(self, images, *, antialias: bool = False) -> torch.Tensor:
        """The authors' preprocessing (docs/design.md) to this model's image size, on its device and dtype.

        ``images``: float RGB in [0, 1], ``[B, 3, H, W]`` (or a list of ``[3, H, W]``
        / ``[1, 3, H, W]`` tensors of different sizes). Differentiable.
        """
        return clip_preprocess(images, self.image_size, antialias=antialias,
                               device=self.device, dtype=self.dtype)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image features (float32, ``[B, embed_dim]``) of already preprocessed pixels."""
        feats = self.model.visual(pixels.to(device=self.device, dtype=self.dtype)).float()
        return F.normalize(feats, dim=-1) if normalize else feats

    def image_features(self, images, *, normalize: bool = True, antialias: bool = False) -> torch.Tensor:
        """Preprocess + encode, batched: ``[B, embed_dim]`` float32, L2-normalised by default.

        Gradients flow back to ``images`` when autograd is on; wrap in
        ``torch.no_grad()`` when only the values are needed.
        """
        return self.encode_image(self.preprocess(images, antialias=antialias), normalize=normalize)

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids ``[len(texts), context_length]`` (CLIP BPE tokenizer, on this device)."""
        from open_clip.tokenizer import SimpleTokenizer

        tok = SimpleTokenizer(context_length=self.context_length)
        ids = tok(texts)
        vocab = self.text_tower.token_embedding.num_embeddings
        if int(ids.max()) >= vocab:
            raise CLIPBackboneError(
                f"{self.name}: text tower vocabulary has {vocab} entries but the CLIP tokenizer "
                f"needs ids up to {int(ids.max())}; use vocab_size 49408 in the model config"
            )
        return ids.to(self.device)

    def token_embeddings(self, token_ids: torch.Tensor) -> torch.Tensor:
        """``token_embedding(ids)`` as float32 (what a prompt pair is initialised from)."""
        with torch.no_grad():
            return self.text_tower.token_embedding(token_ids.to(self.device)).float()

    def encode_embeddings(self, embeddings: torch.Tensor, eot_index: int | torch.Tensor,
                          normalize: bool = True) -> torch.Tensor:
        """Text features from token *embeddings* (open_clip's ``encode_text`` minus the lookup).

        ``embeddings``: ``[K, context_length, text_width]``; the feature is read at
        position ``eot_index`` (an int, or one index per row). Returns float32
        ``[K, embed_dim]``, L2-normalised by default. Differentiable w.r.t. ``embeddings``.
        """
        t = self.text_tower
        cast = t.transformer.get_cast_dtype()
        if embeddings.dim() != 3 or tuple(embeddings.shape[1:]) != (self.context_length, self.text_width):
            raise CLIPBackboneError(
                f"prompt embeddings of shape {tuple(embeddings.shape)} do not fit the text tower of "
                f"{self.name} (expects [K, {self.context_length}, {self.text_width}])"
            )
        x = embeddings.to(device=self.device, dtype=cast) + t.positional_embedding.to(cast)
        x = t.transformer(x, attn_mask=t.attn_mask)
        x = t.ln_final(x)
        rows = torch.arange(x.shape[0], device=x.device)
        if not torch.is_tensor(eot_index):
            eot_index = torch.full_like(rows, int(eot_index))
        x = x[rows, eot_index.to(x.device)]
        proj = t.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        x = x.float()
        return F.normalize(x, dim=-1) if normalize else x


# --------------------------------------------------------------------------- building
_CACHE: dict[tuple, CLIPBackbone] = {}
_LOCK = threading.Lock()


def _read_config(model: str) -> tuple[dict, str]:
    """(model config dict, canonical key) for a name or a config-JSON path."""
    import open_clip

    if clip_weights.is_config_path(model):
        path = Path(model)
        if not path.is_file():
            raise CLIPBackboneError(f"{model}: CLIP model config file not found")
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CLIPBackboneError(f"{model}: not a readable open_clip model config JSON ({e})") from None
        if isinstance(cfg, dict) and "model_cfg" in cfg:
            cfg = cfg["model_cfg"]
        if not isinstance(cfg, dict) or not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
            raise CLIPBackboneError(
                f"{model}: not an open_clip model config (needs 'embed_dim', 'vision_cfg' and 'text_cfg')"
            )
        return cfg, str(path.resolve())
    cfg = open_clip.get_model_config(model.replace("/", "-"))
    if cfg is None:
        raise CLIPBackboneError(
            f"unknown CLIP model {model!r}: give an open_clip model name (e.g. ViT-B-32, RN101) "
            f"or the path of an open_clip model-config .json file"
        )
    return cfg, model.replace("/", "-")


def _auto_quick_gelu(model: str, pretrained: str, cfg: dict) -> bool:
    if cfg.get("quick_gelu", False):
        return True
    low = pretrained.lower()
    if low == RANDOM_WEIGHTS:
        return False
    tag = clip_weights.tag_config(model, pretrained)
    if tag is not None:
        return bool(tag.get("quick_gelu", False))
    # a local file given with a built-in name: assume the OpenAI weights if that model has them
    openai = clip_weights.tag_config(model, "openai")
    return bool(openai and openai.get("quick_gelu", False))


def _instantiate(cfg: dict, quick_gelu: bool, precision: str, label: str) -> nn.Module:
    from open_clip.model import CLIP, CustomTextCLIP, get_cast_dtype

    cfg = copy.deepcopy(cfg)
    if "multimodal_cfg" in cfg:
        raise CLIPBackboneError(f"{label}: CoCa models are not supported (no plain CLIP text tower)")
    if "hf_model_name" in cfg.get("text_cfg", {}):
        raise CLIPBackboneError(f"{label}: Hugging Face text towers are not supported; use a CLIP text transformer")
    if cfg.get("text_cfg", {}).get("embed_cls"):
        raise CLIPBackboneError(f"{label}: text towers with a class token (embed_cls) are not supported")
    vcfg = cfg.get("vision_cfg", {})
    if vcfg.get("timm_model_name"):
        vcfg["timm_model_pretrained"] = False  # never download anything for the architecture
    custom = cfg.pop("custom_text", False)
    cfg.pop("quick_gelu", None)
    cls = CustomTextCLIP if custom else CLIP
    try:
        return cls(**cfg, quick_gelu=quick_gelu, cast_dtype=get_cast_dtype(precision))
    except (TypeError, ValueError, AssertionError, KeyError) as e:
        raise CLIPBackboneError(f"{label}: cannot build the model from its config ({type(e).__name__}: {e})") from None


def _is_torchscript_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _load_file(model: nn.Module, path: Path, label: str) -> None:
    import open_clip

    if not path.is_file():
        raise CLIPBackboneError(f"{path}: CLIP weights file not found")
    try:
        if _is_torchscript_archive(path):
            # OpenAI's original release (e.g. ~/.cache/clip/ViT-B-32.pt): read the tensors only
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the format
                sd = torch.jit.load(str(path), map_location="cpu").state_dict()
            persistent = set(model.state_dict())
            extra = {n for n, _ in model.named_buffers()} - persistent  # e.g. attn_mask
            for k in ("input_resolution", "context_length", "vocab_size", *extra):
                sd.pop(k, None)
            sd = {k: v.float() for k, v in sd.items()}
            model.load_state_dict(sd, strict=True)
        else:
            open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except RuntimeError as e:
        msg = str(e)
        first = msg.splitlines()[0] if msg else type(e).__name__
        if "size mismatch" in msg or "Missing key" in msg or "Unexpected key" in msg:
            detail = "; ".join(line.strip() for line in msg.splitlines()[1:4])
            raise CLIPBackboneError(f"{path}: weights do not fit CLIP model {label} ({detail[:400]})",
                                    advice=Advice("check_clip_model")) from None
        raise CLIPBackboneError(f"{path}: cannot read CLIP weights ({first[:300]})") from None
    except Exception as e:  # pickle errors, zip errors, safetensors errors, ...
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise CLIPBackboneError(f"{path}: cannot read CLIP weights ({type(e).__name__}: {first[:300]})") from None


def _set_precision(model: nn.Module, device: torch.device, precision: str) -> torch.dtype:
    from open_clip.model import convert_weights_to_lp

    model.to(device)
    if precision == "fp32":
        return torch.float32
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    convert_weights_to_lp(model, dtype=dtype)
    return dtype


def build_backbone(model: str = DEFAULT_SCORE_MODEL, pretrained: str = DEFAULT_PRETRAINED, *,
                   device: str | torch.device = "cpu", precision: str = "fp32",
                   quick_gelu: bool | None = None) -> CLIPBackbone:
    """Build a new frozen backbone (uncached; prefer :func:`load_backbone`)."""
    if precision not in PRECISIONS:
        raise CLIPBackboneError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    pretrained = str(pretrained) if pretrained is not None else RANDOM_WEIGHTS
    device = torch.device(device)
    cfg, _ = _read_config(str(model))
    qg = _auto_quick_gelu(str(model), pretrained, cfg) if quick_gelu is None else bool(quick_gelu)
    log.info("building CLIP backbone %s (weights %s, %s, %s, quick_gelu=%s)", model, pretrained, device,
             precision, qg)
    # resolve the weights first: a bad tag or a missing file fails before building a big model
    if pretrained.lower() == RANDOM_WEIGHTS:
        weights = None
    elif clip_weights.names_weights_file(pretrained):
        weights = Path(pretrained)
        if not weights.is_file():
            raise CLIPBackboneError(f"{weights}: CLIP weights file not found")
    else:
        weights = Path(clip_weights.tag_weights(str(model), pretrained).file)
    net = _instantiate(cfg, qg, precision, str(model))
    if weights is None:
        msg = (f"CLIP backbone {model} has RANDOM WEIGHTS (pretrained='none'): its scores and losses are "
               f"meaningless -- use this only for tests and timing")
        warnings.warn(msg, RandomWeightsWarning, stacklevel=3)
    else:
        _load_file(net, weights, str(model))
    dtype = _set_precision(net, device, precision)
    net.eval().requires_grad_(False)

    vcfg = cfg["vision_cfg"]
    size = vcfg.get("image_size", 224)
    size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
    text = getattr(net, "text", net)
    return CLIPBackbone(
        model=net, name=str(model), pretrained=pretrained, device=device, dtype=dtype, image_size=size,
        context_length=int(text.positional_embedding.shape[0]),
        text_width=int(text.token_embedding.weight.shape[1]),
        embed_dim=int(cfg["embed_dim"]), quick_gelu=qg, config=cfg,
    )


def _pretrained_key(pretrained: str) -> str:
    p = Path(pretrained)
    if p.is_file():
        st = p.stat()
        return f"{p.resolve()}@{st.st_size}:{st.st_mtime_ns}"
    return pretrained


def load_backbone(model: str = DEFAULT_SCORE_MODEL, pretrained: str = DEFAULT_PRETRAINED, *,
                  device: str | torch.device = "cpu", precision: str = "fp32",
                  quick_gelu: bool | None = None) -> CLIPBackbone:
    """The process-wide shared frozen backbone for these settings (built on first use).

    ``model``: open_clip name or config-JSON path (defaults: ``ViT-B-32`` for
    prompts/scores, use ``DEFAULT_IDENTITY_MODEL`` = ``RN101`` for the identity loss).
    ``pretrained``: tag (``openai``), local file, or ``"none"`` (random, warns).
    ``precision``: ``fp32`` (default), ``fp16`` or ``bf16`` (open_clip mixed precision).
    Raises :class:`CLIPBackboneError` with a clear message on any failure.
    """
    pretrained = str(pretrained) if pretrained is not None else RANDOM_WEIGHTS
    _, model_key = _read_config(str(model))
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    key = (model_key, _pretrained_key(pretrained), str(dev), precision, quick_gelu)
    with _LOCK:
        bb = _CACHE.get(key)
        if bb is None:
            bb = build_backbone(model, pretrained, device=dev, precision=precision, quick_gelu=quick_gelu)
            _CACHE[key] = bb
        return bb


def clear_backbone_cache() -> None:
    """Forget all cached backbones (frees their memory once no one else holds them)."""
    with _LOCK:
        _CACHE.clear()
