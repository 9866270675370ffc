"""ComfyUI nodes of the CLIP-LIT pack: Load CLIP-LIT, Backlit Enhance, CLIP Light Score (V3 nodes).

Imported by the pack's root ``__init__.py`` (ComfyUI: ``comfy_entrypoint``) or as a
top-level package (tests, benchmarks). All imports here are relative; see ``_core.py``.
"""
from . import comfy_env
from .enhance import CLIPLITBacklitEnhance
from .light_score import CLIPLITLightScore
from .loader import CLIPLITLoader
from .model import CLIPLITModel

comfy_env.register_model_folder()

NODES = (CLIPLITLoader, CLIPLITBacklitEnhance, CLIPLITLightScore)


class CLIPLITExtension(comfy_env.ComfyExtension):
    """The pack as ComfyUI's V3 extension: its three nodes."""

    async def get_node_list(self):
        return list(NODES)


async def comfy_entrypoint() -> CLIPLITExtension:
    return CLIPLITExtension()


# The V1 view by node id (tests, tools); ComfyUI registers the pack through comfy_entrypoint.
_SCHEMAS = [(cls, cls.GET_SCHEMA()) for cls in NODES]
NODE_CLASS_MAPPINGS = {schema.node_id: cls for cls, schema in _SCHEMAS}
NODE_DISPLAY_NAME_MAPPINGS = {schema.node_id: schema.display_name for _, schema in _SCHEMAS}

__all__ = ["comfy_entrypoint", "CLIPLITExtension", "NODES", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS",
           "CLIPLITLoader", "CLIPLITBacklitEnhance", "CLIPLITLightScore", "CLIPLITModel"]
