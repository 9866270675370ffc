"""Backlit Enhance node without ComfyUI: parity with the authors, strength, masks, batches,
alpha, tiling from memory, OOM back-off, interrupts, precision, preview."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.support.fakes import run_out_of_memory_above
from tests.support.nodes_support import SHARED_DATA, backlit_crop, official_model, read_photo, to_uint8_round, to_uint8_truncate  # noqa: F401,E501

import nodes
from cliplit_core.engine import inference
from cliplit_core.engine import memory
from cliplit_core.engine import run_plan
from cliplit_core.light import tiling
from nodes import comfy_env
from nodes import enhance as enh
from nodes.errors import CLIPLITNodeError

# Runs of the node compared with each other are bit-exact on CPU; on a GPU, cuDNN picks other
# algorithms for other batch shapes / precisions, so allow float noise far below one 8-bit level.
ON_CPU = comfy_env.compute_device().type == "cpu"
TOL6 = 1e-6 if ON_CPU else 5e-4
TOL5 = 1e-5 if ON_CPU else 5e-4


@pytest.fixture(scope="module")
def model(official_model):
    return official_model


@pytest.fixture(scope="module")
def crop():
    return backlit_crop()


@pytest.fixture(scope="module")
def crop_result(model, crop):
    return enh.enhance_batch(model, crop)


def node():
    return nodes.CLIPLITBacklitEnhance


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", ["91_51094235055_o", "pexels-daniel-torobekov-5320051"])
def test_defaults_reproduce_the_authors(model, name):
    from PIL import Image

    image = read_photo(f"{name}.png")
    out, light = node().execute(model, image)
    assert out.shape == image.shape and out.dtype == torch.float32
    assert light.shape == image.shape[:3]
    ref = np.asarray(Image.open(SHARED_DATA / "reference_small" / f"{name}.png")).astype(np.int16)
    diff = np.abs(to_uint8_round(out[0]) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < (1e-3 if ON_CPU else 1e-2)
    # what ComfyUI's SaveImage writes (truncation) is within one level too
    assert np.abs(to_uint8_truncate(out[0]) - ref).max() <= 1
    light_ref = np.load(SHARED_DATA / "reference_small" / f"{name}_light.npy")
    assert np.abs(light[0].numpy() - np.clip(light_ref, 0, 1)).max() < 1e-4


def test_outputs_are_comfy_types(crop_result, crop):
    out, light = crop_result
    assert out.shape == crop.shape and out.device.type == "cpu" and out.is_contiguous()
    assert light.shape == (1, 96, 128) and 0 <= float(light.min()) and float(light.max()) <= 1
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(out.mean()) > float(crop.mean()) + 0.05  # a backlit crop gets brighter


# ----------------------------------------------------------------------------- strength
def test_strength_zero_returns_the_input(model, crop):
    out, _ = enh.enhance_batch(model, crop, strength=0.0)
    assert torch.allclose(out, crop, atol=TOL6, rtol=0)


def test_strength_is_monotone(model, crop, crop_result):
    half, _ = enh.enhance_batch(model, crop, strength=0.5)
    full = crop_result[0]
    assert float(crop.mean()) < float(half.mean()) < float(full.mean())
    assert bool((half >= crop - 1e-6).all()) and bool((half <= full + 1e-6).all())


# ----------------------------------------------------------------------------- batches
def test_batch_equals_single_images(model, crop, crop_result):
    other = read_photo("111_51093504404_o.png")[:, 100:196, 300:428]
    single_other, light_other = enh.enhance_batch(model, other)
    batch, light = enh.enhance_batch(model, torch.cat([crop, other]))
    assert torch.allclose(batch[0], crop_result[0][0], atol=TOL6)
    assert torch.allclose(batch[1], single_other[0], atol=TOL6)
    assert torch.allclose(light[1], light_other[0], atol=TOL6)


def test_batch_split_into_chunks_when_memory_is_short(model, crop, monkeypatch):
    batch = torch.cat([crop, crop.flip(2), crop.flip(1)])
    full, _ = enh.enhance_batch(model, batch)
    per_image = inference.whole_image_bytes(96, 128)
    monkeypatch.setattr(comfy_env, "compute_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(comfy_env, "free_bytes", lambda device: int(per_image * 1.5 / memory.CPU_FRACTION))
    plan = run_plan.plan_run(3, 96, 128, torch.float32, enh.api.TileSetting.AUTO, net_bytes=model.net_bytes(),
                             run=comfy_env.run_context())
    assert plan.chunk == 1 and plan.tile is None
    chunked, _ = enh.enhance_batch(model, batch)
    assert torch.allclose(chunked, full, atol=TOL6)


# ----------------------------------------------------------------------------- masks
def test_mask_zero_keeps_input_and_one_gives_full_result(model, crop, crop_result):
    zeros = torch.zeros(1, 96, 128)
    out0, light0 = enh.enhance_batch(model, crop, mask=zeros, mask_feather=4)
    assert torch.allclose(out0, crop, atol=TOL6)
    assert torch.allclose(light0, crop_result[1])  # the light map output is not masked
    out1, _ = enh.enhance_batch(model, crop, mask=torch.ones(96, 128), mask_feather=0)
    assert torch.allclose(out1, crop_result[0], atol=TOL5)


def test_mask_enhances_only_there_with_soft_edges(model, crop, crop_result):
    mask = torch.zeros(1, 96, 128)
    mask[:, :, :64] = 1.0  # left half
    hard, _ = enh.enhance_batch(model, crop, mask=mask, mask_feather=0)
    soft, _ = enh.enhance_batch(model, crop, mask=mask, mask_feather=6)
    full = crop_result[0]
    assert torch.allclose(hard[:, :, :64], full[:, :, :64], atol=TOL5)
    assert torch.allclose(hard[:, :, 64:], crop[:, :, 64:], atol=TOL6)
    # far from the edge the soft mask gives the same; at the edge it blends
    assert torch.allclose(soft[:, :, :40], full[:, :, :40], atol=1e-3)
    assert torch.allclose(soft[:, :, 90:], crop[:, :, 90:], atol=1e-3)
    gain = (soft - crop).mean(dim=(0, 1, 3))  # per column
    assert gain[58:70].diff().le(1e-4).all()  # falls off smoothly across the edge
    assert 0.2 < float((soft[:, :, 64] - crop[:, :, 64]).mean() / (full[:, :, 64] - crop[:, :, 64]).mean()) < 0.8


def test_mask_is_resized_and_broadcast_over_the_batch(model, crop):
    small = torch.zeros(1, 12, 16)
    small[:, :, :8] = 1.0
    batch = torch.cat([crop, crop])
    out, _ = enh.enhance_batch(model, batch, mask=small, mask_feather=0)
    big = torch.zeros(1, 96, 128)
    big[:, :, :64] = 1.0
    ref, _ = enh.enhance_batch(model, crop, mask=big, mask_feather=0)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[0, :, 4:60], ref[0, :, 4:60], atol=TOL5)



@pytest.mark.parametrize("masks_given, images", [(2, 3), (3, 2)])
def test_a_mask_batch_of_another_length_is_a_node_error_naming_both(model, crop, masks_given, images):
    batch = crop.expand(images, -1, -1, -1).contiguous()
    with pytest.raises(CLIPLITNodeError) as e:
        node().execute(model, batch, mask=torch.ones(masks_given, 96, 128))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"Backlit Enhance: mask batch has {masks_given} masks for {images} images")


# ----------------------------------------------------------------------------- channels, odd inputs
def test_alpha_passes_through(model, crop, crop_result):
    alpha = torch.linspace(0, 1, 128).expand(1, 96, 128)[..., None]
    out, _ = enh.enhance_batch(model, torch.cat([crop, alpha], -1))
    assert out.shape == (1, 96, 128, 4)
    assert torch.equal(out[..., 3:], alpha)
    assert torch.allclose(out[..., :3], crop_result[0], atol=TOL6)
    masked, _ = enh.enhance_batch(model, torch.cat([crop, alpha], -1), mask=torch.ones(96, 128), mask_feather=0)
    assert torch.equal(masked[..., 3:], alpha)


def test_nan_input_gives_finite_output(model):
    x = torch.rand(1, 40, 48, 3)
    x[0, 5, 5] = float("nan")
    x[0, 6, 6] = float("inf")
    out, light = enh.enhance_batch(model, x)
    assert torch.isfinite(out).all() and torch.isfinite(light).all()


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_inputs_are_never_modified(model, channels):
    """Other nodes still hold the IMAGE / MASK: NaN, out-of-range values and gray frames included,
    on every path (plain, mask, temporal smoothing, preview)."""
    torch.manual_seed(channels)
    x = torch.rand(3, 40, 48, channels) * 1.2 - 0.1
    x[1, 5, 5] = float("nan")
    m = torch.rand(40, 48)
    m[0, 0] = float("nan")
    keep_x, keep_m = x.clone(), m.clone()
    for kw in ({}, {"mask": m}, {"temporal_smoothing": 2.0}, {"mask": m, "temporal_smoothing": 1.0},
               {"fast_preview": True}):
        out, light = enh.enhance_batch(model, x, **kw)
        assert out.shape == x.shape and light.shape == (3, 40, 48) and torch.isfinite(out).all()
        assert torch.equal(x.nan_to_num(-7), keep_x.nan_to_num(-7)), kw
        assert torch.equal(m.nan_to_num(-7), keep_m.nan_to_num(-7)), kw


def test_wrong_inputs_give_node_errors(model, crop):
    with pytest.raises(CLIPLITNodeError, match="Load CLIP-LIT"):
        node().execute("not a model", crop)
    with pytest.raises(CLIPLITNodeError, match="precision"):
        node().execute(model, crop, precision="fp8")
    with pytest.raises(CLIPLITNodeError, match="channels"):
        node().execute(model, torch.rand(1, 8, 8, 5))
    with pytest.raises(CLIPLITNodeError, match="empty"):
        node().execute(model, torch.rand(0, 8, 8, 3))
    with pytest.raises(CLIPLITNodeError, match="Backlit Enhance: mask must have shape"):
        node().execute(model, crop, mask=torch.zeros(2, 3, 4, 5, 6))


# ----------------------------------------------------------------------------- tiling and memory
@pytest.mark.slow
def test_tiles_chosen_from_free_memory_are_exact(model, crop, crop_result, monkeypatch):
    asked = []
    monkeypatch.setattr(comfy_env, "free_memory", lambda n, device: asked.append(n))
    budget = inference.whole_image_bytes(60, 60)
    monkeypatch.setattr(comfy_env, "compute_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(comfy_env, "free_bytes", lambda device: int(budget / memory.CPU_FRACTION))
    plan = run_plan.plan_run(1, 96, 128, torch.float32, enh.api.TileSetting.AUTO, net_bytes=model.net_bytes(),
                             run=comfy_env.run_context())
    assert plan.tile is not None and plan.tile < 128
    out, light = enh.enhance_batch(model, crop)
    assert asked and asked[-1] >= model.net_bytes()  # ComfyUI is asked to free memory first
    assert torch.allclose(light, crop_result[1], atol=1e-4)
    assert np.abs(to_uint8_round(out[0]) - to_uint8_round(crop_result[0][0])).max() <= 1


def test_manual_tile_size_is_exact(model, crop, crop_result):
    out, light = enh.enhance_batch(model, crop, tile_size=64)
    assert torch.allclose(light, crop_result[1], atol=1e-4)


def test_out_of_memory_halves_the_tile(model, crop, crop_result, monkeypatch):
    """Whole image 'does not fit': the run backs off to tiles and still gives the exact result."""
    calls = run_out_of_memory_above(monkeypatch, 64)
    emptied = []
    monkeypatch.setattr(comfy_env, "soft_empty_cache", lambda: emptied.append(1))
    out, light = enh.enhance_batch(model, crop)
    assert calls == [None, 64] and len(emptied) >= 1
    assert torch.allclose(light, crop_result[1], atol=1e-4)


# ----------------------------------------------------------------------------- progress and interrupt
@pytest.mark.slow
def test_progress_bar_reaches_the_total(model, crop, monkeypatch):
    bars = []
    real = comfy_env.progress_bar
    monkeypatch.setattr(comfy_env, "progress_bar", lambda total: bars.append(real(total)) or bars[-1])
    enh.enhance_batch(model, torch.cat([crop, crop]), tile_size=64)
    updates = bars[0].updates
    assert updates[-1][0] == updates[-1][1] == 2 * 4  # both images in one call: 2 passes x 4 tiles
    assert [u[0] for u in updates] == sorted(u[0] for u in updates)


class Stop(Exception):
    pass


def _count_tiles(monkeypatch):
    """Count the tiles the core computes (calls of the stem / whole-network on a window)."""
    seen = []
    real = tiling.predict_light_tiled

    def counting(fw, x, tile, *args, progress=None, **kw):
        def cb(done, total):
            seen.append(done)
            if progress is not None:
                progress(done, total)
        return real(fw, x, tile, *args, progress=cb, **kw)

    monkeypatch.setattr(inference, "predict_light_tiled", counting)
    return seen


def test_progress_callback_that_raises_stops_within_one_tile(model, crop, monkeypatch):
    tiles = _count_tiles(monkeypatch)
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if len(calls) == 3:
            raise Stop("cancel")

    with pytest.raises(Stop):
        enh.enhance_batch(model, crop, tile_size=32, progress=progress)
    assert tiles == [1, 2, 3]  # 3 tiles done, the 4th of 24 never started
    assert calls[-1] == (3, 24)
    assert next(model.net.parameters()).device.type == "cpu"  # the shared net stays on the offload device


def test_cancel_button_stops_inside_the_current_tile(model, crop, monkeypatch):
    """ComfyUI's interrupt flag (comfy_env.throw_if_interrupted) is checked after every tile and,
    inside one, between the network's layers: the run stops in its first tile."""
    tiles = _count_tiles(monkeypatch)
    checks = []

    def interrupted():
        checks.append(1)
        if len(checks) == 2:
            raise Stop("interrupted")

    monkeypatch.setattr(comfy_env, "throw_if_interrupted", interrupted)
    with pytest.raises(Stop):
        enh.enhance_batch(model, crop, tile_size=48)
    assert tiles == [] and len(checks) == 2


@pytest.mark.slow
def test_small_tiles_are_warned_about_with_their_cost(model, crop, caplog):
    def warnings_for(tile):
        caplog.clear()
        with caplog.at_level("WARNING", logger="CLIP-LIT"):
            enh.enhance_batch(model, crop, tile_size=tile)
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    (msg,) = warnings_for(48)
    assert msg.startswith("Backlit Enhance: tile size 48 splits each 128x96 image into 6 tiles, each run twice "
                          "with a 17-pixel border; tiles under 256 px are slow")
    assert warnings_for(0) == [] and warnings_for(256) == []  # automatic, or not small


# ----------------------------------------------------------------------------- precision and sharing
def test_half_precision_never_touches_the_shared_weights(model, crop, crop_result):
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    out, _ = enh.enhance_batch(model, crop, precision="bf16")
    after = model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == torch.float32 for k in before)
    assert float((out - crop_result[0]).abs().max()) < 0.05


# ----------------------------------------------------------------------------- fast preview
def test_fast_preview_option(model, crop, crop_result, monkeypatch):
    from cliplit_core.engine import preview

    exact, _ = node().execute(model, crop, fast_preview=True)  # 96 x 128 is below the preview's pixel floor
    assert torch.allclose(exact, crop_result[0], atol=TOL6)
    monkeypatch.setattr(preview, "MIN_LOW_PIXELS", 1)  # force the reduced-resolution path on this crop
    out, light = node().execute(model, crop, fast_preview=True)
    assert out.shape == crop.shape and light.shape == (1, 96, 128)
    assert 1e-4 < float((out - crop_result[0]).abs().mean()) < 0.05
    masked, _ = node().execute(model, crop, fast_preview=True, mask=torch.zeros(96, 128))
    assert torch.allclose(masked, crop, atol=TOL6)
