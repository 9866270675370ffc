"""Fakes shared by several test modules."""
from __future__ import annotations

import torch

from cliplit_core.engine import inference


def run_out_of_memory_above(monkeypatch, largest_tile: int) -> list:
    """Replace ``inference.predict_light`` by one that raises ``torch.OutOfMemoryError`` for the
    whole image and for tiles larger than ``largest_tile`` (every call when it is 0) and runs the
    real one otherwise. Returns the list every call's tile (None = whole image) is appended to."""
    real = inference.predict_light
    calls = []

    def predict_light(net, rgb, *, tile=None, **kw):
        calls.append(tile)
        if tile is None or tile > largest_tile:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated, tile {tile})")
        return real(net, rgb, tile=tile, **kw)

    monkeypatch.setattr(inference, "predict_light", predict_light)
    return calls
