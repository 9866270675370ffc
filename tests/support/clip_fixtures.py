"""Fixtures for the CLIP-side tests: tiny open_clip configs with random weights.

Nothing here downloads anything or assumes ViT-B/32 sizes: the towers are a few
layers of width 32-64 at 64x64 pixels with a 20-token text context, built in
milliseconds. Import the fixtures you need into a test module
(``from clip_fixtures import tiny_vit, ...``).
"""
from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
from tests.support.data import SHARED_DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)

TEXT_CFG = {"context_length": 20, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
# a ViT at 64 px: 4x4 patches of 16, width 32, one block
VIT_TINY = {"embed_dim": 32, "text_cfg": TEXT_CFG,
            "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16}}
# a ModifiedResNet (RN101's architecture family) at 64 px, layers [1,1,1,1], width 8
RN_TINY = {"embed_dim": 32, "text_cfg": TEXT_CFG,
           "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None}}
# a slightly richer ViT whose random features keep global brightness (mean-pooled tokens):
# used by the prompt-learning separation test
VIT_SEPARABLE = {"embed_dim": 64, "text_cfg": TEXT_CFG,
                 "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8,
                                "pool_type": "avg"}}


def require_shared(sub: str = "") -> Path:
    path = SHARED_DATA / sub if sub else SHARED_DATA
    if not path.exists():
        pytest.skip(f"test data not found at {path} (clone the project with ../shared beside it)")
    return path


def write_config(directory: Path, name: str, cfg: dict) -> Path:
    path = Path(directory) / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def build_random(config_path: Path, seed: int = 0, **kw):
    """A new (uncached) backbone with random weights from ``seed``; the warning is silenced."""
    from cliplit_core.clip.backbone import RandomWeightsWarning, build_backbone

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return build_backbone(str(config_path), "none", **kw)


@pytest.fixture(scope="session")
def clip_config_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clip_configs")
    write_config(d, "vit_tiny", VIT_TINY)
    write_config(d, "rn_tiny", RN_TINY)
    write_config(d, "vit_separable", VIT_SEPARABLE)
    return d


@pytest.fixture(scope="session")
def tiny_vit(clip_config_dir):
    return build_random(clip_config_dir / "vit_tiny.json", seed=0)


@pytest.fixture(scope="session")
def tiny_rn(clip_config_dir):
    return build_random(clip_config_dir / "rn_tiny.json", seed=1)


@pytest.fixture(autouse=False)
def one_thread():
    """Use as ``pytestmark = pytest.mark.usefixtures("one_thread")``: the CLIP tests run many tiny ops,
    which one intra-op thread does fastest (and without stalls when the machine is busy)."""
    with single_thread():
        yield


@contextlib.contextmanager
def single_thread():
    """Tiny tensors: one intra-op thread is faster and immune to a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def load_rgb(path: Path, short_side: int | None = None) -> torch.Tensor:
    """[3, H, W] float32 in 0..1 via Pillow (optionally resized so the short side is ``short_side``)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if short_side:
            w, h = im.size
            s = short_side / min(w, h)
            im = im.resize((max(short_side, round(w * s)), max(short_side, round(h * s))), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)
