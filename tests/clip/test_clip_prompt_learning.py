"""Prompt initialisation end to end: with a tiny random CLIP, learning the prompt pair with the
cross-entropy loss separates well-lit photos from darkened and backlit ones (../shared/data)."""
from __future__ import annotations

import glob
import time

import pytest
import torch
from tests.support.clip_fixtures import VIT_SEPARABLE, build_random, load_rgb, require_shared, single_thread, write_config

from cliplit_core.clip import losses
from cliplit_core.clip.prompts import PromptPair
from cliplit_core.clip.scores import backlit_probability_from_features


def _views(img: torch.Tensor, n: int, g: torch.Generator, frac: float = 0.8) -> list[torch.Tensor]:
    """n random crops of frac x frac of the image, randomly mirrored."""
    _, h, w = img.shape
    ch, cw = int(h * frac), int(w * frac)
    out = []
    for _ in range(n):
        y = int(torch.randint(0, h - ch + 1, (1,), generator=g))
        x = int(torch.randint(0, w - cw + 1, (1,), generator=g))
        v = img[:, y:y + ch, x:x + cw]
        out.append(v.flip(-1) if torch.rand(1, generator=g) < 0.5 else v)
    return out


def _dataset(welllit, backlit, seed: int, n: int = 4):
    """Well-lit views (label 1); the same views darkened to 10-35 % (label 0); backlit views (label 0)."""
    g = torch.Generator().manual_seed(seed)
    well = [v for im in welllit for v in _views(im, n, g)]
    dark = [v * (0.1 + 0.25 * float(torch.rand(1, generator=g))) for v in well]
    back = [v for im in backlit for v in _views(im, n, g)]
    labels = torch.tensor([1] * len(well) + [0] * (len(dark) + len(back)))
    return well + dark + back, labels


def test_prompt_initialisation_separates_welllit_from_dark_and_backlit(tmp_path):
    data = require_shared()
    wl = sorted(glob.glob(str(data / "welllit" / "*.png")))
    bl = sorted(glob.glob(str(data / "backlit_small" / "*.png")))
    if len(wl) < 3 or len(bl) < 3:
        pytest.skip(f"need the well-lit and backlit_small photos in {data}")
    welllit = [load_rgb(p, short_side=96) for p in wl]
    backlit = [load_rgb(p, short_side=96) for p in bl]
    train_x, train_y = _dataset(welllit, backlit, seed=1)
    test_x, test_y = _dataset(welllit, backlit, seed=2)  # other crops, mirrors and darkenings

    cpu0 = time.process_time()
    with single_thread():
        backbone = build_random(write_config(tmp_path, "vit_separable", VIT_SEPARABLE), seed=0)
        with torch.no_grad():  # the authors precompute the (frozen) image features once
            f_train = backbone.image_features(train_x)
            f_test = backbone.image_features(test_x)
        pair = PromptPair.from_text(backbone, 16)
        opt = torch.optim.Adam(pair.parameters(), lr=3e-3)
        first = None
        for _ in range(300):
            loss = losses.prompt_init_loss(f_train, pair.text_features(backbone), train_y)
            first = loss.item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pair.requires_grad_(False)
            tf = pair.text_features(backbone)
            pred_train = (backlit_probability_from_features(f_train, tf) < 0.5).long()
            pred_test = (backlit_probability_from_features(f_test, tf) < 0.5).long()
    cpu = time.process_time() - cpu0

    acc_train = (pred_train == train_y).float().mean().item()
    acc_test = (pred_test == test_y).float().mean().item()
    print(f"\nprompt initialisation: {len(train_y)} views, loss {first:.3f} -> {loss.item():.3f}, "
          f"accuracy {acc_train:.3f} (train) {acc_test:.3f} (held-out views), {cpu:.1f} s CPU")
    assert first == pytest.approx(0.6931, abs=1e-3)  # identical rows at the start: log 2
    assert acc_train >= 0.95
    assert acc_test >= 0.90
    assert cpu < 15.0
