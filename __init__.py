"""ComfyUI entry point of the CLIP-LIT node pack (V3: ``comfy_entrypoint``).

ComfyUI imports this file as a package named after the pack's folder (which may contain
dashes, e.g. ``ComfyUI-CLIP-LIT``). Nothing is added to ``sys.path``, so ComfyUI's own
top-level ``nodes`` / ``comfy`` modules are never shadowed by the pack's ``nodes/`` folder.
The pack's core is made importable under its own name, ``cliplit_core`` (the name the nodes,
the command line and the tests use), by registering this pack's copy in ``sys.modules``: the
nodes then import it directly (``from cliplit_core.engine import api``).

On a ComfyUI too old for V3 nodes the pack logs one line saying why and which version it
needs, and registers nothing (an empty ``NODE_CLASS_MAPPINGS``, so ComfyUI's startup goes
on without further warnings).
"""
import importlib.util
import logging
import sys
from pathlib import Path

_log = logging.getLogger("CLIP-LIT")


def _register_core() -> None:
    """``import cliplit_core`` gives this pack's core (loaded once, from this folder)."""
    here = Path(__file__).resolve().parent / "cliplit_core"
    loaded = sys.modules.get("cliplit_core")
    if loaded is not None:
        where = Path(getattr(loaded, "__file__", "") or "").resolve().parent
        if where != here:
            _log.warning("CLIP-LIT: another copy of cliplit_core is already loaded from %s; the nodes use it "
                         "instead of %s", where, here)
        return
    spec = importlib.util.spec_from_file_location("cliplit_core", here / "__init__.py",
                                                  submodule_search_locations=[str(here)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["cliplit_core"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["cliplit_core"]
        raise


_register_core()

from .nodes import comfy_env  # noqa: E402  (the core first: the nodes import it)

if comfy_env.V3_API_PROBLEM:
    _log.warning(comfy_env.V3_API_PROBLEM)
    NODE_CLASS_MAPPINGS = {}
    __all__ = ["NODE_CLASS_MAPPINGS"]
else:
    from .nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint"]
