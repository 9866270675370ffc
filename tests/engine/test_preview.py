"""Fast preview mode (cliplit_core/engine/preview.py): API, guided filter, calibration, fidelity guard, CLI --fast."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cliplit_core.engine import preview
from cliplit_core.engine.inference import enhance
from cliplit_core.light.network import CLIPLITNet

from tests.support.data import SHARED_DATA as DATA  # noqa: E402
WEIGHTS = DATA / "official_weights" / "enhancement_model.pth"


@pytest.fixture(scope="module")
def net():
    if WEIGHTS.is_file():
        from cliplit_core.weights.checkpoint import load_network

        return load_network(WEIGHTS)
    torch.manual_seed(0)
    return CLIPLITNet().eval().requires_grad_(False)


@pytest.fixture
def no_size_floors(monkeypatch):
    """Tiny test images without the preview's pixel floors (which would make them exact)."""
    monkeypatch.setattr(preview, "MIN_LOW_PIXELS", 1)
    monkeypatch.setattr(preview, "CAL_MIN_PIXELS", 0)


def _psnr(a, b):
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 99.0 if mse == 0 else 10 * math.log10(1 / mse)


@pytest.mark.parametrize("r", [0, 1, 2, 5])
@pytest.mark.parametrize("shape", [(1, 1, 7, 9), (2, 3, 4, 20), (1, 2, 30, 3)])
def test_box_mean_matches_clipped_average(r, shape):
    x = torch.randn(shape, dtype=torch.float64)
    want = F.avg_pool2d(F.pad(x, (r, r, r, r)), 2 * r + 1, stride=1) / F.avg_pool2d(
        F.pad(torch.ones_like(x), (r, r, r, r)), 2 * r + 1, stride=1)
    assert torch.allclose(preview.box_mean(x, r), want, atol=1e-10)


def test_guided_filter_reproduces_a_linear_function_of_the_guide():
    """If p = a . I + b exactly (same size, eps -> 0), the guided filter returns p."""
    torch.manual_seed(1)
    g = torch.rand(1, 3, 24, 32)
    p = 0.3 * g[:, :1] - 0.7 * g[:, 1:2] + 0.2 * g[:, 2:] + 0.5
    q = preview.guided_upsample(g, p, g, radius=2, eps=1e-12)
    assert (q - p).abs().max().item() < 1e-4


def test_guided_filter_keeps_a_constant():
    g = torch.rand(1, 3, 10, 12)
    q = preview.guided_upsample(g, torch.full((1, 1, 10, 12), -0.4), torch.rand(1, 3, 40, 48))
    assert torch.allclose(q, torch.full_like(q, -0.4), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 96, 128), (2, 4, 80, 70), (1, 1, 64, 90), (1, 2, 130, 64)])
def test_preview_api_like_enhance(net, shape, no_size_floors):
    torch.manual_seed(2)
    x = torch.rand(shape)
    res = preview.enhance_preview(net, x, scale=2)
    assert res.image.shape == x.shape and res.image.dtype == torch.float32
    assert res.light.shape == (shape[0], 1, shape[2], shape[3])
    assert torch.isfinite(res.image).all() and (res.image >= 0).all() and (res.image <= 1).all()
    assert (res.light >= 0).all()
    if shape[1] in (2, 4):
        assert torch.equal(res.image[:, -1:], x[:, -1:])  # alpha passes through
    same = preview.enhance_preview(net, x, scale=2, strength=0.0).image
    assert torch.allclose(same, x.clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (20, 20), (31, 300)])
def test_small_images_fall_back_to_exact(net, hw):
    x = torch.rand(1, 3, *hw)
    assert preview.effective_scale(*hw, 4.0) == 1.0 or min(hw) >= 2 * preview.MIN_LOW_SIDE
    # float32 named: 'auto' is bfloat16 in a preview on CPUs that have it, on every branch
    got = preview.enhance_preview(net, x, dtype=torch.float32).image
    want = enhance(net, x).image
    assert torch.allclose(got, want, atol=1e-6)


def test_effective_scale_keeps_enough_pixels():
    assert preview.effective_scale(2000, 3000, 4) == 4
    assert preview.effective_scale(1536, 2048, 4) == 4  # 3 MP: the measured default, unchanged
    assert preview.effective_scale(64, 3000, 4) == pytest.approx(math.sqrt(64 * 3000 / 65536))
    assert preview.effective_scale(500, 741, 4) == pytest.approx(2.38, abs=0.01)  # 0.37 MP
    assert preview.effective_scale(256, 256, 4) == 1  # at the pixel floor: exact
    assert preview.effective_scale(10, 10, 4) == 1


def test_effective_scale_side_floor(no_size_floors):
    assert preview.effective_scale(64, 3000, 4) == 2
    assert preview.effective_scale(10, 10, 4) == 1


def test_calibration_covers_enough_pixels_on_small_images():
    assert preview.calibration_fraction(1536, 2048) == preview.CAL_FRAC  # 3 MP: 2 %, as measured
    assert preview.calibration_fraction(500, 741) == pytest.approx(15 * 64 * 64 / (500 * 741))
    assert preview.calibration_fraction(100, 100) == preview.CAL_MAX_FRAC
    assert preview.calibration_fraction(4000, 3000, 0.05) == 0.05
    with pytest.raises(ValueError):
        preview.enhance_preview(None, torch.rand(1, 3, 8, 8), scale=0)


def test_calibration_blocks_stay_inside_with_their_halo():
    from cliplit_core.light.network import TOTAL_HALO

    for H, W, f in [(1536, 2048, 4), (845, 564, 4), (200, 260, 4), (3000, 200, 3)]:
        h, w = round(H / f), round(W / f)
        blocks = preview.calibration_blocks(h, w, H, W)
        assert blocks, (H, W)
        for y0, y1, x0, x1 in blocks:
            assert y0 * H / h >= TOTAL_HALO and round(y1 * H / h) + TOTAL_HALO <= H
            assert x0 * W / w >= TOTAL_HALO and round(x1 * W / w) + TOTAL_HALO <= W
        if H * W > 1e6:  # small images get at least 4 windows, whatever their share
            cover = sum((b[1] - b[0]) * (b[3] - b[2]) for b in blocks) / (h * w)
            assert 0.01 < cover < 0.04
    assert preview.calibration_blocks(65, 32, 130, 64) == []  # a 98-px window does not fit: uncalibrated


def test_fit_calibration_recovers_a_known_model():
    torch.manual_seed(3)
    low = torch.rand(1, 3, 40, 50) * 0.8 + 0.1
    log_lo = torch.rand(1, 1, 40, 50).mul(2).sub(2)
    log_y = low.mean(1).log()[0]
    want = torch.tensor([0.05, 0.4, 0.3, -0.1], dtype=torch.float64)
    true = (preview._features(log_lo.double()[0, 0], log_y.double()) @ want).exp().float()
    blocks = [(2, 10, 3, 11), (20, 28, 30, 38), (30, 38, 5, 13)]
    target = torch.stack([true[None, y0:y1, x0:x1] for y0, y1, x0, x1 in blocks])
    coef = preview.fit_calibration(low, log_lo, blocks, target)
    assert torch.allclose(coef, want, atol=1e-4)


def test_uncalibrated_preview_still_available(net, no_size_floors):
    x = torch.rand(1, 3, 200, 260)
    a = preview.enhance_preview(net, x, calibrate=False)
    b = preview.enhance_preview(net, x)
    assert a.image.shape == b.image.shape == x.shape and torch.isfinite(a.light).all()


def test_tiled_preview_equals_whole_preview(net, no_size_floors):
    x = torch.rand(1, 3, 200, 260)
    a = preview.enhance_preview(net, x, tile=None, dtype=torch.float32).image  # tiling is exact in float32
    b = preview.enhance_preview(net, x, tile=24, dtype=torch.float32).image
    assert (a - b).abs().max().item() < 1e-5


@pytest.mark.slow
def test_preview_is_close_to_exact_on_a_photo(net):
    """Regression guard on a real photo (the full-size figures are in docs/performance.md)."""
    path = DATA / "backlit" / "pexels-daniel-torobekov-5320051.jpg"
    if not (path.is_file() and WEIGHTS.is_file()):
        pytest.skip(f"test data not found: {path}")
    from cliplit_core.files.images import read_image

    x = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].contiguous()
    x = F.interpolate(x, scale_factor=0.5, mode="area")  # keep the exact reference quick
    exact = enhance(net, x, tile=None).image
    # measured at this size: 44.3 (1/2), 43.7 (1/4, default), 33.2 (1/4 uncalibrated)
    assert _psnr(preview.enhance_preview(net, x, scale=2).image, exact) > 40
    assert _psnr(preview.enhance_preview(net, x).image, exact) > 40
    assert _psnr(preview.enhance_preview(net, x, calibrate=False).image, exact) > 30
    # bfloat16 (the automatic choice on CPUs that have it): its rounding is far below the preview's error
    fp32 = _psnr(preview.enhance_preview(net, x, dtype=torch.float32).image, exact)
    bf16 = _psnr(preview.enhance_preview(net, x, dtype=torch.bfloat16).image, exact)
    assert bf16 > 40 and abs(bf16 - fp32) < 0.5


@pytest.mark.parametrize("native", [True, False])
def test_preview_auto_dtype_is_bfloat16_on_a_cpu_with_native_bfloat16(net, monkeypatch, native):
    """'auto' in a preview: bfloat16 where the CPU computes it natively (its rounding is far below
    the preview's own error, measured above), float32 elsewhere; an explicit precision is kept."""
    from cliplit_core.engine import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bfloat16", lambda: native)
    monkeypatch.setattr(preview, "MIN_LOW_PIXELS", 1)  # the reduced-resolution path on a small image
    seen = []
    real = preview.fastnet.weights_for
    monkeypatch.setattr(preview.fastnet, "weights_for", lambda n, d, dt: seen.append(dt) or real(n, d, dt))
    x = torch.rand(1, 3, 96, 128)
    preview.enhance_preview(net, x, scale=2, dtype="auto", device="cpu")
    preview.enhance_preview(net, x, scale=2, dtype="fp32", device="cpu")
    preview.enhance_preview(net, x, scale=2, dtype="bf16", device="cpu")
    auto = torch.bfloat16 if native else torch.float32
    assert seen == [auto, torch.float32, torch.bfloat16]
    # every branch of a preview resolves 'auto' alike: uncalibrated, and too small to reduce (exact)
    seen.clear()
    preview.preview_light(net, x, scale=2, dtype="auto", device="cpu", calibrate=False)
    tiny = torch.rand(1, 3, 24, 24)
    assert preview.effective_scale(24, 24, 4.0) == 1.0
    preview.preview_light(net, tiny, dtype="auto", device="cpu")
    preview.enhance_preview(net, tiny, dtype="auto", device="cpu")
    assert seen == [auto, auto, auto]


def test_cli_fast_writes_results(tmp_path, net, monkeypatch, no_size_floors):
    from PIL import Image

    from cliplit_core.cli import enhance as enhance_files
    from cliplit_core.cli.app import main

    img = (torch.rand(70, 90, 3) * 255).byte().numpy()
    Image.fromarray(img).save(tmp_path / "a.png")
    monkeypatch.setattr(enhance_files, "resolve_weights", lambda w, progress=None: w)
    monkeypatch.setattr(enhance_files, "load_model", lambda w: net)
    rc = main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--fast", "--device", "cpu"])
    assert rc == 0
    out = Image.open(tmp_path / "out" / "a.png")
    assert out.size == (90, 70)


@pytest.mark.slow
def test_small_photo_gets_smaller_factor_and_more_windows(net):
    """Half-size photo 91 (0.63 MP, much texture per pixel): downsampled by 4 and calibrated on
    4 windows the preview gave 31.3 dB; the pixel floors (factor 3.1, 25 windows) keep it >= 35."""
    path = DATA / "backlit" / "91_51094235055_o.jpg"
    if not (path.is_file() and WEIGHTS.is_file()):
        pytest.skip(f"test data not found: {path}")
    from cliplit_core.files.images import read_image

    x = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].contiguous()
    x = F.interpolate(x, scale_factor=0.5, mode="area")
    H, W = x.shape[-2:]
    assert 2.9 < preview.effective_scale(H, W, 4) < 3.3
    exact = enhance(net, x, tile=None).image
    assert _psnr(preview.enhance_preview(net, x).image, exact) > 36


@pytest.mark.slow
def test_a_preview_tiles_its_low_resolution_pass_when_that_does_not_fit_the_budget(net, monkeypatch):
    """Through the core's entry point (as the command line and the node call it): the preview's
    low-resolution pass follows the tile setting and the run's memory budget, and tiling is exact."""
    from cliplit_core.engine import api
    from cliplit_core.engine.run_context import RunContext

    torch.manual_seed(3)
    x = torch.rand(1, 3, 800, 1000)
    tiles, real = [], preview.predict_light

    def spy(*args, **kwargs):
        tiles.append(kwargs.get("tile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(preview, "predict_light", spy)
    opts = api.EnhanceOptions(mode=api.Mode.PREVIEW, precision="fp32")
    whole, _ = api.enhance(net, x, opts, RunContext(device="cpu", memory_budget=8 << 30))
    assert tiles == []  # fits: one whole pass
    tiled, _ = api.enhance(net, x, opts, RunContext(device="cpu", memory_budget=20 << 20))
    assert len(tiles) == 1 and tiles[0] is not None and tiles[0] < 229  # the low-res image (229 x 286) in tiles
    assert torch.allclose(tiled, whole, atol=1e-5)
