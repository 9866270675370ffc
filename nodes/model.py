"""The ``CLIPLIT_MODEL`` object that flows from Load CLIP-LIT to the other nodes: the core's
:class:`cliplit_core.model.CLIPLITModel`, re-exported for the node modules."""
from __future__ import annotations

from ._core import core_module

_model = core_module("model")
CLIPLITModel = _model.CLIPLITModel
AUTO = _model.AUTO
DEFAULT_CLIP_MODEL = _model.DEFAULT_CLIP_MODEL
DEFAULT_CLIP_PRETRAINED = _model.DEFAULT_CLIP_PRETRAINED
RANDOM_WEIGHTS = _model.RANDOM_WEIGHTS

__all__ = ["CLIPLITModel", "AUTO", "DEFAULT_CLIP_MODEL", "DEFAULT_CLIP_PRETRAINED", "RANDOM_WEIGHTS"]
