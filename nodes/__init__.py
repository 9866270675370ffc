"""ComfyUI nodes of the CLIP-LIT pack: Load CLIP-LIT, Backlit Enhance, CLIP Light Score.

Imported by the pack's root ``__init__.py`` (ComfyUI) or as a top-level package
(tests). All imports here are relative; see ``_core.py``.
"""
from . import comfy_env
from .enhance import CLIPLITBacklitEnhance
from .light_score import CLIPLITLightScore
from .loader import CLIPLITLoader
from .model import CLIPLITModel

comfy_env.register_model_folder()

NODE_CLASS_MAPPINGS = {
    "CLIPLITLoader": CLIPLITLoader,
    "CLIPLITBacklitEnhance": CLIPLITBacklitEnhance,
    "CLIPLITLightScore": CLIPLITLightScore,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPLITLoader": "Load CLIP-LIT",
    "CLIPLITBacklitEnhance": "Backlit Enhance",
    "CLIPLITLightScore": "CLIP Light Score",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "CLIPLITLoader", "CLIPLITBacklitEnhance",
           "CLIPLITLightScore", "CLIPLITModel"]
