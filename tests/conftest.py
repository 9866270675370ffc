"""Shared fixtures: the authors' network and photos from ../shared/data (skipped with a reason
when absent; the paths are in tests/support/data.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.data import OFFICIAL_WEIGHTS, require_shared


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
