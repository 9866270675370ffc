"""Inference API: sizes, channels, sanitising, strength, dtype, auto tiling, OOM back-off."""
import numpy as np
import pytest
import torch

from cliplit_core.engine import inference
from cliplit_core.engine.inference import apply_light, choose_tile, enhance

from tests.support.data import synthetic_photo


def _img(h, w, c=3, b=1, seed=0):
    return torch.from_numpy(np.stack([synthetic_photo(h, w, c, seed + i) for i in range(b)])).permute(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 513), (513, 3), (1, 9)])
def test_tiny_and_thin_images_give_valid_output(shape, official_net):
    x = _img(*shape)
    res = enhance(official_net, x)
    assert res.image.shape == x.shape and res.light.shape == (1, 1, *shape)
    assert torch.isfinite(res.image).all() and res.image.min() >= 0 and res.image.max() <= 1
    assert torch.isfinite(res.light).all() and (res.light >= 0).all()


def test_gray_input_gives_gray_output_consistent_with_rgb(official_net):
    g = _img(40, 50, 1)
    res = enhance(official_net, g)
    assert res.image.shape == (1, 1, 40, 50)
    rgb = enhance(official_net, g.expand(-1, 3, -1, -1).contiguous())
    assert torch.allclose(res.light, rgb.light)
    assert torch.allclose(res.image[:, 0], rgb.image[:, 0])


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_kept_untouched(channels, official_net):
    x = _img(30, 31, channels)
    x[:, -1] = torch.linspace(0, 1, 31)  # a gradient alpha with exact 0 and 1
    res = enhance(official_net, x)
    assert res.image.shape == x.shape
    assert torch.equal(res.image[:, -1], x[:, -1])
    color = enhance(official_net, x[:, :-1].contiguous())
    assert torch.allclose(res.image[:, :-1], color.image)


def test_nan_and_inf_inputs_are_sanitised(official_net):
    x = _img(20, 20)
    x[0, 0, 0, 0], x[0, 1, 3, 3], x[0, 2, 5, 5], x[0, 0, 7, 7] = float("nan"), float("inf"), -float("inf"), 7.0
    res = enhance(official_net, x)
    assert torch.isfinite(res.image).all() and torch.isfinite(res.light).all()
    assert res.image.max() <= 1 and res.image.min() >= 0


def test_black_image_and_zero_light_never_give_nan(official_net):
    res = enhance(official_net, torch.zeros(1, 3, 16, 16))
    assert torch.isfinite(res.image).all() and res.image.abs().max() == 0
    out = apply_light(torch.full((1, 3, 2, 2), 0.5), torch.zeros(1, 1, 2, 2))
    assert torch.isfinite(out).all() and torch.all(out == 1.0)


def test_strength_zero_is_identity_one_is_authors_and_monotone(official_net):
    x = _img(48, 64)
    base = enhance(official_net, x, strength=1.0)
    assert torch.allclose(base.image, (x / base.light.clamp_min(1e-5)).clamp(0, 1))
    assert torch.allclose(enhance(official_net, x, strength=0.0).image, x, atol=1e-7)
    means = [enhance(official_net, x, strength=s).image.mean().item() for s in (0, 0.25, 0.5, 1, 1.25, 1.5)]
    assert all(b > a for a, b in zip(means, means[1:])), means  # the light map brightens this photo
    lo, mid, hi = (enhance(official_net, x, strength=s).image for s in (0.5, 1.0, 1.5))
    assert torch.all(mid >= lo - 1e-6) and torch.all(hi >= mid - 1e-6)  # per pixel, where L < 1


def test_batch_equals_single_images(official_net):
    x = _img(33, 45, b=3)
    batch = enhance(official_net, x).image
    for i in range(3):
        assert torch.allclose(batch[i:i + 1], enhance(official_net, x[i:i + 1]).image, atol=1e-6)


def test_dtype_option_runs_in_lower_precision(official_net, small_photo):
    x = small_photo[:, :, :64, :64]
    ref = enhance(official_net, x).image
    low = enhance(official_net, x, dtype=torch.bfloat16).image
    assert low.dtype == torch.float32
    assert 0 < (low - ref).abs().max() < 0.1
    official_net.float()


@pytest.mark.slow
def test_auto_mode_tiles_only_when_over_budget(official_net, small_photo, monkeypatch):
    h, w = small_photo.shape[-2:]
    assert choose_tile(h, w, 1, torch.float32, None) is None
    assert choose_tile(h, w, 1, torch.float32, 10 ** 12) is None
    tile = choose_tile(h, w, 1, torch.float32, 20 * 2 ** 20)
    assert isinstance(tile, int) and inference.MIN_TILE <= tile < max(h, w)
    seen = []
    real = inference.predict_light

    def spy(*a, **k):
        seen.append(k["tile"])
        return real(*a, **k)

    monkeypatch.setattr(inference, "predict_light", spy)
    res = enhance(official_net, small_photo, memory_budget=20 * 2 ** 20)
    assert seen == [tile]
    whole = enhance(official_net, small_photo, tile=None)
    assert (res.light - whole.light).abs().max() < 1e-5


def test_bad_shapes_are_refused(official_net):
    with pytest.raises(ValueError, match="channels"):
        enhance(official_net, torch.rand(1, 5, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        enhance(official_net, torch.rand(3, 8, 8))
    for bad in (-1, 0.5, "big"):
        with pytest.raises(ValueError, match="tile must be"):
            enhance(official_net, torch.rand(1, 3, 8, 8), tile=bad)


def test_float32_on_cuda_runs_without_tf32_and_restores_the_flags():
    """fp32 means fp32 on CUDA (TF32 convs moved ~0.6 % of pixels by a level on an H100).
    The flags are plain settings, so this is checkable without a GPU."""
    from cliplit_core.engine.inference import _backend_flags

    b = torch.backends
    old = b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32
    b.cudnn.allow_tf32 = b.cuda.matmul.allow_tf32 = True
    try:
        with _backend_flags("cuda", torch.float32):
            assert not b.cudnn.allow_tf32 and not b.cuda.matmul.allow_tf32
        assert b.cudnn.allow_tf32 and b.cuda.matmul.allow_tf32
        with _backend_flags("cuda", torch.float16):
            assert b.cudnn.allow_tf32 and b.cuda.matmul.allow_tf32
        with _backend_flags("cpu", torch.float32):
            assert b.cudnn.allow_tf32
    finally:
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = old
