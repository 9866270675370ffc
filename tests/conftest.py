"""Shared fixtures: paths into ../shared/data (skipped with a reason when absent).

``CLIPLIT_SHARED_DATA`` points the tests at another copy of that folder (e.g. on a GPU
machine that only receives the repository, see tools/gpu_check.sh)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLIPLIT_SHARED_DATA") or REPO.parent / "shared" / "data")
OFFICIAL_WEIGHTS = SHARED_DATA / "official_weights" / "enhancement_model.pth"
INIT_WEIGHTS = SHARED_DATA / "official_weights" / "init_enhancement_model.pth"


def require_shared(path: Path = SHARED_DATA) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found at {path} (clone the project with ../shared beside it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared()


@pytest.fixture(scope="session")
def official_weights_path() -> Path:
    return require_shared(OFFICIAL_WEIGHTS)


@pytest.fixture(scope="session")
def official_net(official_weights_path):
    from cliplit_core.weights.checkpoint import load_network

    return load_network(official_weights_path)


@pytest.fixture(scope="session")
def random_net():
    """A network with random (but fixed) weights whose light maps vary a lot."""
    from cliplit_core.light.network import CLIPLITNet

    torch.manual_seed(1234)
    net = CLIPLITNet().eval().requires_grad_(False)
    with torch.no_grad():
        net.cond_add1.bias.fill_(0.5)
    return net


@pytest.fixture(scope="session")
def small_photo(shared_data) -> torch.Tensor:
    """A real backlit photo (1 x 3 x 384 x 512) from backlit_small/."""
    from cliplit_core.files.images import read_image

    arr = read_image(shared_data / "backlit_small" / "110_51093502029_o.png")
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def synthetic_photo(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth backlit-looking test picture (bright sky, dark subject), float32 in 0..1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = 0.9 - 0.3 * yy / max(h, 1)
    subject = ((xx - w / 2) ** 2 + (yy - h * 0.7) ** 2) < (min(h, w) * 0.3) ** 2
    tint = np.array([1.0, 0.9, 0.8, 1.0], dtype=np.float32)[:channels]
    base = np.where(subject, 0.08, sky)[..., None] * tint
    return np.clip(base + rng.normal(0, 0.02, base.shape).astype(np.float32), 0, 1)
