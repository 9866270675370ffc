"""The error a node raises for bad inputs: ComfyUI shows it as
``CLIP-LIT.CLIPLITNodeError: <node>: <clear message>`` and keeps running."""
from __future__ import annotations

import functools

from cliplit_core import errors as core_errors
from cliplit_core.model import CLIPLITModel
from .wording import node_words


class CLIPLITNodeError(Exception):
    """A bad model file, missing weights, wrong input ... (never an interrupt or out-of-memory)."""


CLIPLITNodeError.__module__ = "CLIP-LIT"  # what ComfyUI prints before the message, instead of a file path


def require_model(value: object) -> None:
    """The ``cliplit_model`` input must be what Load CLIP-LIT outputs."""
    if not isinstance(value, CLIPLITModel):
        raise TypeError("cliplit_model must come from a Load CLIP-LIT node")


def node_errors(title: str):
    """Turn the core's and the pack's own input errors into a CLIPLITNodeError naming the node, its
    advice in the nodes' words (nodes/wording.py)."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CLIPLITNodeError:
                raise
            except (core_errors.CLIPLITError, ValueError, TypeError) as e:
                raise CLIPLITNodeError(f"{title}: {node_words(e)}") from e
        return inner
    return wrap
