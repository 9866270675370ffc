"""Masks of cliplit_core.engine.masks: one mask for the whole batch or one per image, never a
silent repeat or cut of a mask batch of another length (the Python API and the node alike)."""
from __future__ import annotations

import pytest
import torch

from cliplit_core.engine import masks
from cliplit_core.engine.api import EnhanceOptions, RunContext, enhance
from cliplit_core.light.network import CLIPLITNet


@pytest.mark.parametrize("masks_given, images", [(2, 3), (3, 2), (2, 5), (4, 2), (3, 4)])
@pytest.mark.parametrize("shape", ["BHW", "B1HW"])
def test_a_mask_batch_of_another_length_is_a_one_line_error_naming_both(masks_given, images, shape):
    mask = torch.ones(masks_given, 6, 8) if shape == "BHW" else torch.ones(masks_given, 1, 6, 8)
    with pytest.raises(ValueError) as e:
        masks.prepare_mask(mask, images, 6, 8, feather=0)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"mask batch has {masks_given} masks for {images} images")
    assert "one mask for all images" in msg and "one mask per image" in msg


@pytest.mark.parametrize("mask", [torch.ones(6, 8), torch.ones(1, 6, 8), torch.ones(1, 1, 6, 8)])
def test_one_mask_is_used_for_every_image(mask):
    mask = mask.clone()
    mask[..., :, :4] = 0.0
    m = masks.prepare_mask(mask, 3, 6, 8, feather=0)
    assert m.shape == (3, 1, 6, 8)
    assert all(torch.equal(m[i, 0], mask.reshape(6, 8)) for i in range(3))


def test_one_mask_per_image_keeps_each_image_its_own_mask():
    mask = torch.stack([torch.full((6, 8), v) for v in (0.0, 0.5, 1.0)])
    m = masks.prepare_mask(mask, 3, 12, 16, feather=2.0)
    assert m.shape == (3, 1, 12, 16)
    assert [round(float(m[i].mean()), 4) for i in range(3)] == [0.0, 0.5, 1.0]


def test_feathered_single_mask_equals_the_per_image_result():
    one = torch.zeros(10, 12)
    one[:, 6:] = 1.0
    shared = masks.prepare_mask(one, 4, 10, 12, feather=1.5)
    each = masks.prepare_mask(one.expand(4, -1, -1), 4, 10, 12, feather=1.5)
    assert torch.allclose(shared, each)


class _NoNetwork(torch.nn.Module):
    """A model that fails if the network is ever asked for: the mask must be refused before any work."""

    def working_net(self, device, dtype):
        raise AssertionError("the network ran before the mask batch was checked")

    def net_bytes(self):
        return 1 << 20


def test_the_python_api_refuses_the_mask_batch_before_running_the_network():
    images = torch.rand(3, 3, 8, 8)
    with pytest.raises(ValueError, match=r"^mask batch has 2 masks for 3 images"):
        enhance(_NoNetwork(), images, EnhanceOptions(mask=torch.ones(2, 8, 8)), RunContext(device="cpu"))


def test_the_python_api_takes_one_mask_or_one_per_image():
    net = CLIPLITNet().eval()
    images = torch.rand(3, 3, 8, 8)
    run = RunContext(device="cpu")
    per_image, _ = enhance(net, images, EnhanceOptions(mask=torch.ones(3, 8, 8)), run)
    shared, _ = enhance(net, images, EnhanceOptions(mask=torch.ones(8, 8)), run)
    whole, _ = enhance(net, images, EnhanceOptions(), run)
    assert torch.allclose(per_image, whole, atol=1e-6) and torch.allclose(shared, whole, atol=1e-6)
