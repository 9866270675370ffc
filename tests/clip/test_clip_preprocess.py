"""SPEC section 2 preprocessing: bilinear resize (no crop, no antialias) + CLIP mean/std, batched, differentiable."""
from __future__ import annotations

import pytest
import torch
from tests.support.clip_fixtures import clip_config_dir, tiny_vit, one_thread  # noqa: F401

from cliplit_core.clip.preprocess import CLIP_MEAN, CLIP_STD, clip_preprocess

pytestmark = pytest.mark.usefixtures("one_thread")


def test_constants_are_the_openai_ones():
    assert CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert CLIP_STD == (0.26862954, 0.26130258, 0.27577711)


def test_resize_and_normalise_hand_computed():
    # a 1 x 2 image (0, 1) in every channel, resized to 1 x 4 with align_corners=False:
    # source x = (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped -> values 0, 0.25, 0.75, 1
    img = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).repeat(1, 3, 1, 1)
    out = clip_preprocess(img, (1, 4))
    # (v - mean_c) / std_c, worked out by hand for each value and channel
    expected = torch.tensor([
        [-1.79226253374815, -0.8616128367714139, 0.9996865571820583, 1.930336254158794],
        [-1.7520971281645974, -0.7953518866901352, 1.1181385962587893, 2.0748838377332515],
        [-1.4802197687835659, -0.5736905793232804, 1.2393677995972907, 2.1458969890575763],
    ]).view(1, 3, 1, 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_aspect_is_not_kept_and_batch_is_preserved():
    out = clip_preprocess(torch.rand(5, 3, 30, 90), 224)
    assert out.shape == (5, 3, 224, 224)
    out = clip_preprocess(torch.rand(2, 3, 16, 16), (8, 12))
    assert out.shape == (2, 3, 8, 12)


def test_same_size_is_only_normalised():
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(clip_preprocess(x, 64), (x - mean) / std)


def test_list_of_different_sizes_is_batched():
    a, b = torch.rand(3, 40, 60), torch.rand(1, 3, 100, 20)
    out = clip_preprocess([a, b], 32)
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out[1:], clip_preprocess(b, 32))


def test_gradients_reach_the_input(tiny_vit):
    x = torch.rand(2, 3, 50, 70, requires_grad=True)
    tiny_vit.image_features(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_output_dtype_and_rejects_bad_input():
    assert clip_preprocess(torch.rand(1, 3, 8, 8), 4, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        clip_preprocess(torch.rand(1, 4, 8, 8), 4)
    with pytest.raises(ValueError, match="float images"):
        clip_preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 4)


def test_antialias_option():
    # one lit pixel in every 4 x 4 block; downscale by 4. Plain bilinear samples between pixels 4i+1 and
    # 4i+2 and misses every lit pixel (the authors' aliasing); antialias keeps the mean, 1/16.
    x = torch.zeros(1, 3, 64, 64)
    x[..., ::4, ::4] = 1.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    plain = clip_preprocess(x, 16) * std + mean
    smooth = clip_preprocess(x, 16, antialias=True) * std + mean
    assert plain.abs().max() < 1e-6
    assert smooth.mean().item() == pytest.approx(1 / 16, abs=0.005)
