"""The pack's own socket type: ``CLIPLIT_MODEL`` (a ``CLIPLITModel`` from Load CLIP-LIT)."""
from __future__ import annotations

from .comfy_env import io

CLIPLIT_MODEL = io.Custom("CLIPLIT_MODEL")
