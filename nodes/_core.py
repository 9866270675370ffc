"""The shared core (``cliplit_core``), imported so that it works in both settings:

* inside ComfyUI the pack is loaded as a package (named after its folder, e.g.
  ``ComfyUI-CLIP-LIT``; ComfyUI uses the folder's full path as module name), so
  ``nodes`` is ``<pack>.nodes`` and the core is the sibling ``<pack>.cliplit_core``:
  a purely relative import, nothing on ``sys.path`` changes (ComfyUI's own
  top-level ``nodes`` and ``comfy`` modules are never shadowed);
* in tests and tools ``nodes`` is a top-level package (the repo root is on
  ``sys.path``) and so is ``cliplit_core``.

The pack never does ``import nodes`` absolutely (inside ComfyUI that is ComfyUI's nodes.py).
"""
from __future__ import annotations

import importlib

if __name__.count(".") >= 2:  # "<pack>.nodes._core"
    from ..cliplit_core.weights import checkpoint
    from ..cliplit_core import errors
    from ..cliplit_core.engine import inference
    from ..cliplit_core.engine import memory
    from ..cliplit_core.light import network
    from ..cliplit_core.light import tiling
    from ..cliplit_core import validation
    from ..cliplit_core.weights import sources as weights
else:  # "nodes._core"
    from cliplit_core.weights import checkpoint
    from cliplit_core import errors
    from cliplit_core.engine import inference
    from cliplit_core.engine import memory
    from cliplit_core.light import network
    from cliplit_core.light import tiling
    from cliplit_core import validation
    from cliplit_core.weights import sources as weights

CORE_PACKAGE = errors.__name__.rpartition(".")[0]


def core_module(name: str):
    """Import ``cliplit_core.<name>`` lazily (modules that pull in open_clip or are only needed by one option)."""
    return importlib.import_module(f"{CORE_PACKAGE}.{name}")


__all__ = ["checkpoint", "errors", "inference", "memory", "network", "tiling", "validation", "weights", "core_module",
           "CORE_PACKAGE"]
