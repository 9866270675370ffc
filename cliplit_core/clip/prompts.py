"""The learnable prompt pair (docs/design.md, "The CLIP side").

A :class:`PromptPair` holds ``P``: ``[2, context, width]`` token embeddings, row 0
the negative (backlit) prompt, row 1 the positive (well-lit) one. Its text
features go through the backbone's text tower from the embeddings on
(positional embedding -> causal transformer -> ln_final -> the end-of-text
position ``N + 1`` for an ``N``-token prompt -> text projection), then are
L2-normalised.

Ways to make one:

* :meth:`PromptPair.from_text` -- token embeddings of ``"X X ... X"`` (``N`` X's,
  default 16; start/end tokens and padding included), the authors' start;
* :meth:`PromptPair.random` -- Xavier-normal like the authors' random start;
* :meth:`PromptPair.load` -- the authors' ``init_prompt_pair.pth`` / ``prompt_pair.pth``
  (``module.embedding_prompt``; every other key is ignored) or our ``.safetensors``
  (tensor ``prompt_pair`` beside the enhancer, with ``clip_model``,
  ``clip_pretrained`` and ``prompt_length`` in the metadata).

Without a learned pair, :func:`zero_shot_text_features` scores with two plain text
prompts (:data:`ZERO_SHOT_PROMPTS`).

:meth:`PromptPair.save` writes our format. While the pair is frozen
(``requires_grad=False`` or autograd off), :meth:`PromptPair.text_features`
caches its result until the embeddings change.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..weights import checkpoint
from .backbone import DEFAULT_PRETRAINED, DEFAULT_SCORE_MODEL, CLIPBackbone
from ..errors import CheckpointError, CLIPLITError
from ..wording import Advice

DEFAULT_PROMPT_LENGTH = 16
AUTHORS_PROMPT_KEY = "embedding_prompt"
NEGATIVE, POSITIVE = 0, 1  # row 0 = backlit, row 1 = well-lit
# Plain text prompts for scoring without a learned pair (rows as above).
ZERO_SHOT_PROMPTS = ("a backlit photo with a dark underexposed subject", "a well-lit photo")


def prompt_text(length: int = DEFAULT_PROMPT_LENGTH) -> str:
    """The initial prompt text: ``length`` space-separated X's."""
    return " ".join(["X"] * length)


def zero_shot_text_features(backbone: CLIPBackbone) -> torch.Tensor:
    """``[2, embed_dim]`` L2-normalised text features of :data:`ZERO_SHOT_PROMPTS` (what scores
    use when no learned prompt pair is at hand; weaker than a trained pair)."""
    with torch.no_grad():
        ids = backbone.tokenize(list(ZERO_SHOT_PROMPTS))
        eot = ids.argmax(dim=-1)  # the end-of-text token has the largest id
        return backbone.encode_embeddings(backbone.token_embeddings(ids), eot)


class PromptPair(nn.Module):
    """Learnable prompt pair ``[2, context, width]`` (parameter ``embeddings``).

    ``prompt_length`` (N) decides the end-of-text position (N + 1) where the text
    feature is read. ``clip_model`` / ``clip_pretrained`` record which backbone the
    pair belongs to (written into the metadata by :meth:`save`).
    """

    def __init__(self, embeddings: torch.Tensor, prompt_length: int = DEFAULT_PROMPT_LENGTH, *,
                 clip_model: str = DEFAULT_SCORE_MODEL, clip_pretrained: str = DEFAULT_PRETRAINED,
                 source: str = ""):
        super().__init__()
        if embeddings.dim() != 3 or embeddings.shape[0] != 2:
            raise CLIPLITError(f"prompt pair must have shape [2, context, width], got {tuple(embeddings.shape)}")
        prompt_length = int(prompt_length)
        if not 1 <= prompt_length <= embeddings.shape[1] - 2:
            raise CLIPLITError(
                f"prompt length {prompt_length} does not fit a context of {embeddings.shape[1]} tokens "
                f"(needs start + {prompt_length} + end tokens)"
            )
        self.embeddings = nn.Parameter(embeddings.detach().float().clone())
        self.prompt_length = prompt_length
        self.clip_model = str(clip_model)
        self.clip_pretrained = str(clip_pretrained)
        self.source = source
        self._cache: tuple | None = None

    # ------------------------------------------------------------------ shape
    @property
    def context_length(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def width(self) -> int:
        return int(self.embeddings.shape[2])

    @property
    def eot_index(self) -> int:
        """Position of the end-of-text token: N + 1."""
        return self.prompt_length + 1

    def check_fits(self, backbone: CLIPBackbone) -> None:
        """Raise a clear error if this pair does not fit ``backbone``'s text tower."""
        if (self.context_length, self.width) != (backbone.context_length, backbone.text_width):
            src = f"{self.source}: " if self.source else ""
            raise CLIPLITError(
                f"{src}prompt pair of shape [2, {self.context_length}, {self.width}] does not fit CLIP model "
                f"{backbone.name} (text context {backbone.context_length}, width {backbone.text_width}); "
                f"it was made for {self.clip_model!r}", advice=Advice("use_clip_model", {"model": self.clip_model}))

    # ------------------------------------------------------------------ init
    @classmethod
    def from_text(cls, backbone: CLIPBackbone, prompt_length: int = DEFAULT_PROMPT_LENGTH) -> "PromptPair":
        """Both rows = token embeddings of ``"X X ... X"`` (the authors' initialisation)."""
        if not 1 <= prompt_length <= backbone.context_length - 2:
            raise CLIPLITError(f"prompt length {prompt_length} does not fit the {backbone.context_length}-token "
                               f"context of {backbone.name}")
        ids = backbone.tokenize([prompt_text(prompt_length)] * 2)
        if int(ids[0, prompt_length + 1]) != int(ids[0].max()):
            raise CLIPLITError(f"prompt length {prompt_length} does not fit the context of {backbone.name}")
        return cls(backbone.token_embeddings(ids).cpu(), prompt_length,
                   clip_model=backbone.metadata_name, clip_pretrained=backbone.pretrained)

    @classmethod
    def random(cls, backbone: CLIPBackbone, prompt_length: int = DEFAULT_PROMPT_LENGTH, *,
               generator: torch.Generator | None = None) -> "PromptPair":
        """Xavier-normal random embeddings of the backbone's shape (the authors' random start)."""
        shape = (2, backbone.context_length, backbone.text_width)
        fan_in, fan_out = shape[1] * shape[2], shape[0] * shape[2]
        std = (2.0 / (fan_in + fan_out)) ** 0.5
        emb = torch.randn(shape, generator=generator) * std
        return cls(emb, prompt_length, clip_model=backbone.metadata_name, clip_pretrained=backbone.pretrained)

    # ------------------------------------------------------------------ load / save
    @classmethod
    def load(cls, path: str | os.PathLike, *, prompt_length: int | None = None, clip_model: str | None = None,
             clip_pretrained: str | None = None) -> "PromptPair":
        """Load our ``.safetensors`` or the authors' prompt ``.pth`` (decided by content).

        For our files the metadata gives the prompt length and backbone; the keyword
        arguments override it. The authors' files carry none: the defaults are theirs
        (N = 16, ``ViT-B-32`` / ``openai``). Raises :class:`CheckpointError`.
        """
        path = Path(path)
        kind = checkpoint._sniff(path)
        if kind == "safetensors":
            w = checkpoint.read_weights(path)
            if w.prompt_pair is None:
                what = "an enhancement network" if w.enhancer else "nothing usable"
                raise CheckpointError(
                    f"{path}: holds no prompt pair (only {what}); a prompt pair is needed for CLIP scores"
                )
            meta = w.metadata
            try:
                n = int(prompt_length or meta.get("prompt_length") or DEFAULT_PROMPT_LENGTH)
            except ValueError:
                raise CheckpointError(f"{path}: bad prompt_length {meta.get('prompt_length')!r} in metadata") from None
            emb = w.prompt_pair
            model = clip_model or meta.get("clip_model") or DEFAULT_SCORE_MODEL
            pre = clip_pretrained or meta.get("clip_pretrained") or DEFAULT_PRETRAINED
        else:
            emb = read_authors_prompt_file(path)
            n = int(prompt_length or DEFAULT_PROMPT_LENGTH)
            model = clip_model or DEFAULT_SCORE_MODEL
            pre = clip_pretrained or DEFAULT_PRETRAINED
        if emb.dim() != 3 or emb.shape[0] != 2:
            raise CheckpointError(f"{path}: prompt pair has shape {tuple(emb.shape)}, expected [2, context, width]")
        if not torch.isfinite(emb).all():
            raise CheckpointError(f"{path}: prompt pair contains NaN or Inf values")
        try:
            return cls(emb, n, clip_model=model, clip_pretrained=pre, source=str(path))
        except CLIPLITError as e:
            raise CheckpointError(f"{path}: {e}") from None

    def metadata(self) -> dict[str, str]:
        """The metadata keys our format stores for a prompt pair."""
        return {"clip_model": self.clip_model, "clip_pretrained": self.clip_pretrained,
                "prompt_length": str(self.prompt_length)}

    def save(self, path: str | os.PathLike, *, enhancer: dict[str, torch.Tensor] | None = None,
             padding: str = "reflect", metadata: dict[str, object] | None = None) -> None:
        """Write our ``.safetensors`` (atomically), optionally with the enhancer beside it."""
        meta = dict(metadata or {})
        meta.update(self.metadata())
        checkpoint.save_weights(path, enhancer=enhancer, prompt_pair=self.embeddings.detach(),
                                metadata=meta, padding=padding)

    # ------------------------------------------------------------------ features
    def text_features(self, backbone: CLIPBackbone) -> torch.Tensor:
        """``[2, embed_dim]`` L2-normalised text features (float32, on the backbone's device).

        Differentiable w.r.t. :attr:`embeddings` when they require grad and autograd
        is on; otherwise computed without a graph and cached until the embeddings
        change (in-place optimiser step, ``.to()``, load) or another backbone is used.
        """
        self.check_fits(backbone)
        emb = self.embeddings
        if emb.requires_grad and torch.is_grad_enabled():
            return backbone.encode_embeddings(emb, self.eot_index)
        key = (id(backbone), emb._version, emb.data_ptr(), emb.device, self.prompt_length)
        if self._cache is not None and self._cache[0] == key and self._cache[1] is backbone:
            return self._cache[2]
        with torch.no_grad():
            feats = backbone.encode_embeddings(emb, self.eot_index)
        self._cache = (key, backbone, feats)
        return feats

    def extra_repr(self) -> str:
        return (f"shape={tuple(self.embeddings.shape)}, prompt_length={self.prompt_length}, "
                f"clip_model={self.clip_model!r}, clip_pretrained={self.clip_pretrained!r}")


def read_authors_prompt_file(path: str | os.PathLike) -> torch.Tensor:
    """The ``[2, context, width]`` tensor of an authors' prompt ``.pth`` (safe load, tensors only)."""
    path = Path(path)
    obj = checkpoint.safe_torch_load(path)
    if isinstance(obj, dict):
        for k in (f"module.{AUTHORS_PROMPT_KEY}", AUTHORS_PROMPT_KEY):
            v = obj.get(k)
            if isinstance(v, torch.Tensor):
                return v.detach().float()
        keys = [k for k in obj if isinstance(k, str)]
        if any(k.removeprefix("module.").startswith(("cond1.", "PPM1.", "cond_add1.")) for k in keys):
            raise CheckpointError(f"{path}: is an enhancement network checkpoint, not a prompt pair")
        shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        raise CheckpointError(f"{path}: no prompt pair ('module.{AUTHORS_PROMPT_KEY}') in this file (keys: {shown})")
    raise CheckpointError(f"{path}: not a prompt pair file (found {type(obj).__name__})")
