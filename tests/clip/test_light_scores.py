"""cliplit_core.clip.light_scores: scores and backlit heatmap of a batch in one call (tiny random CLIP)."""
from __future__ import annotations

import pytest
import torch
from tests.support.clip_fixtures import clip_config_dir, tiny_vit  # noqa: F401  (fixtures)

from cliplit_core.clip import heatmap
from cliplit_core.clip import light_scores
from cliplit_core.clip import prompts
from cliplit_core.clip import scores

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_scores_and_heatmap_equal_the_building_blocks(tiny_vit):
    text = prompts.zero_shot_text_features(tiny_vit)
    x = torch.rand(2, 3, 40, 52)
    seen = []
    run = light_scores.plan(x, window=0.5)
    res = light_scores.score_batch(x, text, tiny_vit, run, progress=lambda d, t: seen.append((d, t)))
    ref = scores.score_images(x, text, tiny_vit)
    assert torch.allclose(torch.tensor(res.scores), ref, atol=1e-6)
    assert res.mean == pytest.approx(float(ref.mean()), abs=1e-6)
    lit = heatmap.light_score_heatmap(x, text, tiny_vit, window=0.5)
    assert torch.allclose(res.backlit_heatmap, 1 - lit, atol=1e-6)  # 1 = backlit
    grid = heatmap.heatmap_grid(40, 52, 0.5)
    assert run.grid == grid and str(run) == "2 image(s) 52x40, heatmap of 6 windows of 32x32 px per image"
    total = run.passes
    assert total == 2 * (1 + len(grid))
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_no_heatmap_counts_one_pass_per_image_and_gives_zeros(tiny_vit):
    text = prompts.zero_shot_text_features(tiny_vit)
    seen = []
    x = torch.rand(3, 4, 24, 30)
    run = light_scores.plan(x, heatmap=False)
    assert run.grid is None and run.passes == 3 and str(run) == "3 image(s) 30x24, no heatmap"
    res = light_scores.score_batch(x, text, tiny_vit, run, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert res.backlit_heatmap.shape == (3, 24, 30) and not res.backlit_heatmap.any()


def test_progress_may_stop_the_run(tiny_vit):
    text = prompts.zero_shot_text_features(tiny_vit)

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        x = torch.rand(1, 3, 64, 64)
        light_scores.score_batch(x, text, tiny_vit, light_scores.plan(x, window=0.3), progress=stop)


def test_the_grid_is_computed_once_per_batch_and_a_plan_must_fit_the_images(tiny_vit, monkeypatch):
    text = prompts.zero_shot_text_features(tiny_vit)
    x = torch.rand(3, 3, 40, 52)
    grids = []
    real = heatmap.heatmap_grid
    monkeypatch.setattr(heatmap, "heatmap_grid", lambda *a, **k: grids.append(a) or real(*a, **k))
    run = light_scores.plan(x)
    res = light_scores.score_batch(x, text, tiny_vit, run)
    assert grids == [(40, 52, 0.5)] and res.backlit_heatmap.shape == (3, 40, 52)
    with pytest.raises(ValueError, match="plan is for 3 image"):
        light_scores.score_batch(x[:, :, :, :50], text, tiny_vit, run)


def test_format_scores():
    assert light_scores.format_scores([0.25, 0.75]) == "image 1: 0.2500\nimage 2: 0.7500\nmean: 0.5000"
    assert light_scores.format_scores([0.5], random_weights=True).endswith("these scores are meaningless")
