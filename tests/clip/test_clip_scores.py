"""Batched scores S(I), the light score 1 - S(I) and the spatial heatmap."""
from __future__ import annotations

import pytest
import torch
from tests.support.clip_fixtures import clip_config_dir, tiny_vit, one_thread  # noqa: F401

from cliplit_core.clip.prompts import PromptPair
from cliplit_core.clip import heatmap
from cliplit_core.clip.heatmap import MAX_WINDOWS, heatmap_grid, light_score_heatmap
from cliplit_core.clip.scores import backlit_probability, light_score, score_images

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


def test_heatmap_grid_hand_computed():
    # 200 x 120: side 0.5 * 120 = 60, spacing at most 30: rows 140 / 30 -> 5 equal gaps, columns 2
    g = heatmap_grid(200, 120)
    assert (g.win_h, g.win_w, g.ys, g.xs) == (60, 60, (0, 28, 56, 84, 112, 140), (0, 30, 60))
    assert heatmap_grid(100, 100, window=40) == heatmap.HeatmapGrid(40, 40, (0, 20, 40, 60), (0, 20, 40, 60))
    assert len(heatmap_grid(10, 10, window=1.0)) == 1
    # a strip more than twice as long as high: side = 0.5 * (512 // 2) = 128, the full 3 px high
    g = heatmap_grid(3, 512)
    assert (g.win_h, g.win_w, g.ys, g.xs) == (3, 128, (0,), (0, 64, 128, 192, 256, 320, 384))
    # windows are at least 32 px (or the whole axis): a 40 x 52 image gets 2 x 3, not 3 x 3 of 20 px
    g = heatmap_grid(40, 52)
    assert (g.win_h, g.win_w, g.ys, g.xs) == (32, 32, (0, 8), (0, 10, 20))


SHAPES = [(1, 1), (3, 512), (512, 3), (256, 2048), (3000, 4000), (64, 64), (512, 512), (4096, 4096),
          (384, 512), (8, 2048), (20, 20)]


@pytest.mark.parametrize("height, width", SHAPES)
@pytest.mark.parametrize("window", [0.1, 0.25, 0.5, 1.0, 7])
def test_window_count_is_bounded_for_any_shape(height, width, window):
    g = heatmap_grid(height, width, window)
    assert 1 <= len(g) <= MAX_WINDOWS
    if window == 0.5:  # the default: never more than 32, 9 for a square photo, 15 for 4:3, 7 for a strip
        assert len(g) <= 32
        assert len(g) == {(512, 512): 9, (4096, 4096): 9, (384, 512): 15, (3000, 4000): 15, (3, 512): 7,
                          (512, 3): 7, (8, 2048): 7, (256, 2048): 7, (1, 1): 1}.get((height, width), len(g))
    if height * width <= 32 * 32:  # tiny images: one window
        assert len(g) == 1
    # the windows lie inside the image, reach both borders and overlap by about half or more
    for length, win, pos in ((height, g.win_h, g.ys), (width, g.win_w, g.xs)):
        assert 1 <= win <= length and pos[0] == 0 and pos[-1] == length - win
        assert all(0 < b - a <= win / 2 + 1 for a, b in zip(pos, pos[1:]))  # + 1: rounding
    assert len(heatmap_grid(height, width, window, max_windows=5)) <= 5


def test_window_count_grows_with_a_smaller_window_until_the_budget():
    counts = [len(heatmap_grid(768, 1024, w)) for w in (1.0, 0.75, 0.5, 0.35, 0.25, 0.1)]
    assert counts == sorted(counts) and counts[0] < counts[2] < counts[-1] == MAX_WINDOWS - 1


@pytest.mark.parametrize("window", [0, -0.5, float("nan"), "half", True])
def test_bad_windows_are_refused(window):
    with pytest.raises(ValueError, match="heatmap window"):
        heatmap_grid(64, 64, window)


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
    heat = light_score_heatmap(img, pair, tiny_vit, window=32)
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


class Stop(Exception):
    pass


def _count_crops(backbone, monkeypatch) -> list[int]:
    """Crops per CLIP call of ``backbone.image_features``."""
    calls = []
    real = backbone.image_features

    def counting(images, **kw):
        calls.append(len(images))
        return real(images, **kw)

    monkeypatch.setattr(backbone, "image_features", counting)
    return calls


def test_thin_strip_costs_at_most_the_budget_and_its_map_has_no_block_edges(tiny_vit, pair, monkeypatch):
    """An 8 x 512 strip, dark on the left, bright on the right, at the finest window: the
    map is built from at most MAX_WINDOWS windows and changes gradually from pixel to
    pixel (a flat, non-tent weighting of the same windows shows the block edges the check catches)."""
    img = torch.linspace(0, 1, 512).expand(1, 3, 8, 512).contiguous()
    grid = heatmap_grid(8, 512, 0.1)
    calls = _count_crops(tiny_vit, monkeypatch)
    heat = light_score_heatmap(img, pair, tiny_vit, window=0.1)
    assert sum(calls) == len(grid) <= MAX_WINDOWS and max(calls) <= heatmap.BATCH_WINDOWS
    assert heat.shape == (1, 8, 512) and torch.isfinite(heat).all()

    def biggest_step(h):  # the largest change between neighbouring pixels, relative to the map's range
        row = h[0, 4]
        return float((row[1:] - row[:-1]).abs().max() / (row.max() - row.min()))

    assert float(heat[0].max() - heat[0].min()) > 1e-4  # the random pair sees the ramp
    assert biggest_step(heat) < 1.0 / grid.win_w  # tent blending: a gentle slope (0.4 / win_w here)
    monkeypatch.setattr(heatmap, "_tent", lambda n, device: torch.ones(n, device=device))
    assert biggest_step(light_score_heatmap(img, pair, tiny_vit, window=0.1)) > 4.0 / grid.win_w  # 6 / win_w


def test_on_batch_reports_each_batch_and_can_stop_the_run(tiny_vit, pair, monkeypatch):
    img = torch.rand(1, 3, 96, 128)
    n = len(heatmap_grid(96, 128, 0.1))
    calls = _count_crops(tiny_vit, monkeypatch)
    seen = []
    light_score_heatmap(img, pair, tiny_vit, window=0.1, batch_size=4, on_batch=lambda d, t: seen.append((d, t)))
    assert seen == [(min(d, n), n) for d in range(4, n + 4, 4)] and calls == [4] * (n // 4) + [n % 4] * (n % 4 > 0)

    calls.clear()

    def stop_after_two(done, total):
        if done >= 8:
            raise Stop

    with pytest.raises(Stop):
        light_score_heatmap(img, pair, tiny_vit, window=0.1, batch_size=4, on_batch=stop_after_two)
    assert calls == [4, 4]  # two batches of windows, then nothing more
