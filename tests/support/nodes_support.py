"""Helpers for the node tests (tests/nodes/): no ComfyUI needed.

The node pack is imported the way tests and tools do it: ``import nodes`` with
the repo root on sys.path (pytest's ``pythonpath``; ComfyUI's own way, as a package
named after the pack folder, is tested in tests/nodes/test_nodes_import.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.data import OFFICIAL_WEIGHTS, REPO, SHARED_DATA  # noqa: F401  (re-exported for the node tests)

# A tiny open_clip config (vocab 49408 so the CLIP tokenizer fits): random weights, fast on CPU.
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found at {path} (clone the project with ../shared beside it)")
    return path


def read_photo(name: str, folder: str = "backlit_small") -> torch.Tensor:
    """A test photo as a ComfyUI IMAGE [1, H, W, 3] float32."""
    from PIL import Image

    path = require(SHARED_DATA / folder / name)
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None].contiguous()


def backlit_crop() -> torch.Tensor:
    """A 96 x 128 crop of a real backlit photo (IMAGE [1, 96, 128, 3]): quick, with a dark subject."""
    return read_photo("110_51093502029_o.png")[:, 150:246, 200:328].contiguous()


@pytest.fixture(scope="module")
def official_model():
    """The authors' released model as Load CLIP-LIT hands it on (skipped without the test data)."""
    from nodes.loader import load_cliplit_model

    return load_cliplit_model(str(require(OFFICIAL_WEIGHTS)))


def write_tiny_clip(folder: Path, name: str = "tiny_clip.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
    return path


def to_uint8_round(x: torch.Tensor) -> np.ndarray:
    """torchvision save_image rounding (what the reference PNGs use)."""
    return np.clip(np.floor(x.numpy() * 255.0 + 0.5), 0, 255).astype(np.int16)


def to_uint8_truncate(x: torch.Tensor) -> np.ndarray:
    """ComfyUI SaveImage: np.clip(255 * x, 0, 255).astype(uint8) (truncation)."""
    return np.clip(255.0 * x.numpy(), 0, 255).astype(np.uint8).astype(np.int16)


def shown_texts() -> dict[str, str]:
    """Every text ComfyUI shows for the pack's nodes (input and output tooltips, descriptions),
    keyed by where it is shown (``"CLIPLITLoader.model_name"``)."""
    import nodes

    texts = {}
    for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        texts.update({f"{node_id}.{name}": opts.get("tooltip", "") for section in ("required", "optional")
                      for name, (_, opts) in spec.get(section, {}).items()})
        texts[f"{node_id} description"] = cls.DESCRIPTION
        texts.update({f"{node_id} output {i}": t for i, t in enumerate(cls.OUTPUT_TOOLTIPS)})
    return texts
