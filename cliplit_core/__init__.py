"""CLIP-LIT backlit-photo enhancement: the core shared by the ComfyUI nodes, the command line and the trainer.

The Python API, in full::

    from cliplit_core import enhance, EnhanceOptions, RunContext, load_model

    model = load_model("enhancement_model.pth")           # or "official", or a plain CLIPLITNet
    images, light = enhance(model, batch, EnhanceOptions(strength=1.0, mode="preview"))

``batch`` is a float tensor [B, C, H, W] in 0..1 (C = 1..4). The folders hold the layers
(docs/design.md, "Code map"): ``light/`` the network, ``engine/`` how it runs, ``clip/`` the CLIP
side, ``weights/`` weight files, ``files/`` images and videos, ``cli/`` the command line.
Names are imported on first use, so ``python -m cliplit_core --help`` does not load torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "enhance": ".engine.api",
    "EnhanceOptions": ".engine.options",
    "Mode": ".engine.options",
    "RunContext": ".engine.run_context",
    "Precision": ".engine.precision",
    "TileSetting": ".engine.tile_setting",
    "load_model": ".model",
    "CLIPLITModel": ".model",
    "CLIPLITError": ".errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cliplit_core' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
