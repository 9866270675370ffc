"""Where the test data lives, and small synthetic pictures.

``../shared/data`` beside the repository holds the authors' weights and photos;
``CLIPLIT_SHARED_DATA`` points at another copy (e.g. on a GPU machine that only
receives the repository, see tools/gpu_check.sh). Tests and benchmarks take the
data path from here, and only from here."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("CLIPLIT_SHARED_DATA") or REPO.parent / "shared" / "data")
OFFICIAL_WEIGHTS = SHARED_DATA / "official_weights" / "enhancement_model.pth"
INIT_WEIGHTS = SHARED_DATA / "official_weights" / "init_enhancement_model.pth"


def require_shared(path: Path = SHARED_DATA) -> Path:
    """``path`` if it exists, else skip the calling test with the reason."""
    import pytest

    if not path.exists():
        pytest.skip(f"test data not found at {path} (clone the project with ../shared beside it)")
    return path


def synthetic_photo(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth backlit-looking test picture (bright sky, dark subject), float32 in 0..1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = 0.9 - 0.3 * yy / max(h, 1)
    subject = ((xx - w / 2) ** 2 + (yy - h * 0.7) ** 2) < (min(h, w) * 0.3) ** 2
    tint = np.array([1.0, 0.9, 0.8, 1.0], dtype=np.float32)[:channels]
    base = np.where(subject, 0.08, sky)[..., None] * tint
    return np.clip(base + rng.normal(0, 0.02, base.shape).astype(np.float32), 0, 1)
