"""ComfyUI nodes of the CLIP-LIT pack: Load CLIP-LIT, Backlit Enhance, CLIP Light Score (V3 nodes).

Imported by the pack's root ``__init__.py`` (ComfyUI: ``comfy_entrypoint``) or as a top-level
package (tests, benchmarks). The pack's own modules are imported relatively; the core is
imported as ``cliplit_core`` (the root ``__init__.py`` makes the pack's copy importable by that
name inside ComfyUI). Where ComfyUI has no V3 node API, nothing is defined and
``comfy_env.V3_API_PROBLEM`` says why.
"""
from . import comfy_env

if comfy_env.V3_API_PROBLEM:
    NODES = ()
else:
    from cliplit_core.model import CLIPLITModel

    from .enhance import CLIPLITBacklitEnhance
    from .light_score import CLIPLITLightScore
    from .loader import CLIPLITLoader

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
