"""ComfyUI entry point of the CLIP-LIT node pack.

ComfyUI imports this file as a package named after the pack's folder (which may
contain dashes, e.g. ``ComfyUI-CLIP-LIT``); everything below is a relative
import, so nothing is added to ``sys.path`` and ComfyUI's own top-level
``nodes`` / ``comfy`` modules are never shadowed by the pack's ``nodes/`` folder.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
