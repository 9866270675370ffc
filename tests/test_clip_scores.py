"""Batched scores S(I), the light score 1 - S(I) and the spatial heatmap."""
from __future__ import annotations

import pytest
import torch
from clip_fixtures import clip_config_dir, tiny_vit, one_thread  # noqa: F401

from cliplit_core.prompts import PromptPair
from cliplit_core.scores import (backlit_probability, heatmap_windows, light_score, light_score_heatmap,
                                 score_images)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(tiny_vit):
    return PromptPair.random(tiny_vit, 8, generator=torch.Generator().manual_seed(7)).requires_grad_(False)


def test_light_score_is_one_minus_s(tiny_vit, pair):
    x = torch.rand(3, 3, 40, 50)
    with torch.no_grad():
        s = backlit_probability(x, pair, tiny_vit)
        light = light_score(x, pair, tiny_vit)
    assert s.shape == (3,) and ((s >= 0) & (s <= 1)).all()
    torch.testing.assert_close(light, 1 - s)
    # text features given directly work the same
    with torch.no_grad():
        torch.testing.assert_close(backlit_probability(x, pair.text_features(tiny_vit), tiny_vit), s)


def test_score_images_batches_mixed_sizes(tiny_vit, pair):
    imgs = [torch.rand(3, 30 + 7 * i, 80 - 5 * i) for i in range(5)]
    got = score_images(imgs, pair, tiny_vit, batch_size=2)
    with torch.no_grad():
        one_by_one = torch.stack([light_score(im[None], pair, tiny_vit)[0] for im in imgs])
    torch.testing.assert_close(got, one_by_one, rtol=0, atol=1e-6)


def test_heatmap_windows_hand_computed():
    # 100 x 60: window = 0.5 * 60 = 30, stride 15; rows 0..60 step 15 plus the last at 100 - 30 = 70
    assert heatmap_windows(100, 60) == (30, [0, 15, 30, 45, 60, 70], [0, 15, 30])
    assert heatmap_windows(50, 50, window=20, stride=10) == (20, [0, 10, 20, 30], [0, 10, 20, 30])
    assert heatmap_windows(10, 10, window=1.0) == (10, [0], [0])
    # a window never exceeds the short side: 3 px, stride round(1.5) = 2, last column at 200 - 3 = 197
    win, ys, xs = heatmap_windows(3, 200, window=64)
    assert (win, ys, xs[:3], xs[-2:]) == (3, [0], [0, 2, 4], [196, 197])


def test_heatmap_of_a_constant_image_is_its_light_score(tiny_vit, pair):
    img = torch.empty(1, 3, 48, 80)
    img[:, 0], img[:, 1], img[:, 2] = 0.7, 0.4, 0.2
    heat = light_score_heatmap(img, pair, tiny_vit)
    assert heat.shape == (1, 48, 80)
    with torch.no_grad():
        whole = light_score(img, pair, tiny_vit)[0]
    torch.testing.assert_close(heat, torch.full_like(heat, whole.item()), rtol=0, atol=1e-5)


def test_heatmap_is_local(tiny_vit, pair):
    """Left half black, right half white; 32 px windows every 16 px: the outer 16 columns see one colour only."""
    img = torch.zeros(2, 3, 64, 128)
    img[:, :, :, 64:] = 1.0
    img[1] = img[1].flip(-1)  # the second image mirrored: a batch of two different maps
    heat = light_score_heatmap(img, pair, tiny_vit, window=32, stride=16)
    with torch.no_grad():
        dark = light_score(torch.zeros(1, 3, 32, 32), pair, tiny_vit)[0].item()
        bright = light_score(torch.ones(1, 3, 32, 32), pair, tiny_vit)[0].item()
    assert abs(dark - bright) > 1e-3  # the random pair tells them apart a little
    assert heat.shape == (2, 64, 128)
    assert ((heat >= 0) & (heat <= 1)).all()
    torch.testing.assert_close(heat[0, :, :16], torch.full((64, 16), dark), rtol=0, atol=1e-5)
    torch.testing.assert_close(heat[0, :, -16:], torch.full((64, 16), bright), rtol=0, atol=1e-5)
    torch.testing.assert_close(heat[1, :, :16], torch.full((64, 16), bright), rtol=0, atol=1e-5)
    torch.testing.assert_close(heat[1, :, -16:], torch.full((64, 16), dark), rtol=0, atol=1e-5)


def test_heatmap_accepts_a_single_chw_image(tiny_vit, pair):
    heat = light_score_heatmap(torch.rand(3, 33, 47), pair, tiny_vit, batch_size=3)
    assert heat.shape == (1, 33, 47) and torch.isfinite(heat).all()
