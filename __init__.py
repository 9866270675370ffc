"""ComfyUI entry point of the CLIP-LIT node pack (V3: ``comfy_entrypoint``).

ComfyUI imports this file as a package named after the pack's folder (which may
contain dashes, e.g. ``ComfyUI-CLIP-LIT``); everything below is a relative
import, so nothing is added to ``sys.path`` and ComfyUI's own top-level
``nodes`` / ``comfy`` modules are never shadowed by the pack's ``nodes/`` folder.

On a ComfyUI too old for V3 nodes the pack logs one line saying why and which
version it needs, and registers nothing (an empty ``NODE_CLASS_MAPPINGS``, so
ComfyUI's startup goes on without further warnings).
"""
import logging

from .nodes import comfy_env

if comfy_env.V3_API_PROBLEM:
    logging.getLogger("CLIP-LIT").warning(comfy_env.V3_API_PROBLEM)
    NODE_CLASS_MAPPINGS = {}
    __all__ = ["NODE_CLASS_MAPPINGS"]
else:
    from .nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint"]
