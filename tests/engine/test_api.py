"""The core entry point cliplit_core.engine.api.enhance: one precision vocabulary, one tile setting,
options checked once, parity with the node and with reference numbers, the memory plan,
progress over the whole batch, cancel and out-of-memory back-off through a RunContext."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from tests.support.fakes import run_out_of_memory_above
from tests.support.nodes_support import backlit_crop, official_model  # noqa: F401
from tests.support.sequences import flickering_sequence

from cliplit_core.engine import inference
from cliplit_core.engine import memory
from cliplit_core.engine import run_plan
from cliplit_core.light import tiling
from cliplit_core import validation
from cliplit_core.engine.api import EnhanceOptions, Mode, Precision, RunContext, TileMode, TileSetting, enhance
from cliplit_core.cli.app import main
from cliplit_core.engine.masks import prepare_mask

CPU = RunContext(device="cpu")


@pytest.fixture(scope="module")
def model(official_model):
    return official_model


@pytest.fixture(scope="module")
def crop():
    """A 96 x 128 crop of a backlit photo, [1, 3, H, W]."""
    return backlit_crop().movedim(-1, 1).contiguous()


@pytest.fixture(scope="module")
def whole(model, crop):
    return enhance(model, crop, EnhanceOptions(tile="none"), CPU)


# ----------------------------------------------------------------------------- precision
def test_precision_names_aliases_and_dtypes():
    assert Precision.choices() == ["fp32", "auto", "fp16", "bf16"]
    for text, want in (("fp32", Precision.FP32), ("FP16", Precision.FP16), (" bf16 ", Precision.BF16),
                       ("auto", Precision.AUTO), ("float32", Precision.FP32), ("float16", Precision.FP16),
                       ("half", Precision.FP16), ("bfloat16", Precision.BF16), (None, Precision.AUTO),
                       (torch.bfloat16, Precision.BF16), (Precision.FP16, Precision.FP16)):
        assert Precision.parse(text) is want, text
    assert all(p.description for p in Precision)


@pytest.mark.parametrize("bad", ["fp8", "", "float64", 16, torch.float64, 1.5])
def test_precision_parse_errors_are_one_line_listing_the_choices(bad):
    with pytest.raises(validation.OptionError) as e:
        Precision.parse(bad)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("precision must be one of fp32, auto, fp16, bf16") and repr(bad) in msg


def test_auto_means_float16_on_cuda_and_float32_elsewhere_for_exact_runs(monkeypatch):
    from cliplit_core.engine import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bfloat16", lambda: True)  # exact runs ignore it
    cuda = torch.device("cuda")  # a value only: nothing runs there
    assert Precision.AUTO.resolve(cuda) == torch.float16 and Precision.AUTO.resolve("cuda:1") == torch.float16
    for dev in ("cpu", torch.device("cpu"), "mps"):
        assert Precision.AUTO.resolve(dev) == torch.float32
    for p, dt in ((Precision.FP32, torch.float32), (Precision.FP16, torch.float16), (Precision.BF16, torch.bfloat16)):
        for preview in (False, True):
            assert p.resolve(cuda, preview=preview) == p.resolve("cpu", preview=preview) == dt


@pytest.mark.parametrize("native", [True, False])
def test_auto_for_a_preview_is_bfloat16_only_on_a_cpu_that_computes_it_natively(monkeypatch, native):
    from cliplit_core.engine import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bfloat16", lambda: native)
    assert Precision.AUTO.resolve("cpu", preview=True) == (torch.bfloat16 if native else torch.float32)
    assert Precision.AUTO.resolve("cuda", preview=True) == torch.float16
    assert Precision.AUTO.resolve("mps", preview=True) == torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_auto_reaches_the_network_as_the_run_kind_says(model, crop, monkeypatch, native):
    """The dtype the network computes in, through the entry point: float32 for an exact run,
    bfloat16 for a preview on a CPU with native bfloat16."""
    from cliplit_core.light import fastnet
    from cliplit_core.engine import precision
    from cliplit_core.engine import preview

    monkeypatch.setattr(precision, "cpu_has_fast_bfloat16", lambda: native)
    monkeypatch.setattr(preview, "MIN_LOW_PIXELS", 1)
    seen = {}
    real = fastnet.weights_for
    for mode in ("exact", "preview"):
        got = seen.setdefault(mode, [])
        monkeypatch.setattr(fastnet, "weights_for", lambda n, d, dt, _got=got: _got.append(dt) or real(n, d, dt))
        enhance(model, crop, EnhanceOptions(precision="auto", mode=mode), CPU)
    assert set(seen["exact"]) == {torch.float32}
    assert seen["preview"] and set(seen["preview"]) == {torch.bfloat16 if native else torch.float32}


# ----------------------------------------------------------------------------- tile setting
def test_tile_setting_spellings():
    for value in ("auto", "AUTO", " auto", 0, "0"):
        assert TileSetting.parse(value) == TileSetting.AUTO, value
    for value in ("none", "None", "whole", None):
        assert TileSetting.parse(value) == TileSetting.WHOLE, value
    assert TileSetting.parse(512) == TileSetting.parse("512") == TileSetting(TileMode.FIXED, 512)
    assert TileSetting.parse(1).size == 1 and TileSetting.parse(1 << 20).size == 1 << 20
    assert TileSetting.parse(TileSetting.WHOLE) is TileSetting.WHOLE
    assert TileSetting.parse(0, validation.TILE_SIZE) == TileSetting.AUTO  # the node's 0 = automatic
    assert TileSetting.parse(16384, validation.TILE_SIZE).size == 16384


@pytest.mark.parametrize("bad", [-1, 0.5, float("nan"), float("inf"), True, 1 << 21, "big", "1e3", "-64", [64]])
def test_tile_setting_refuses_bad_values_in_one_line(bad):
    with pytest.raises(validation.OptionError) as e:
        TileSetting.parse(bad)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("tile must be 'auto' (or 0), 'none' or an integer from 1 to 1048576")
    with pytest.raises(validation.OptionError, match="^tile_size must be .* from 0 to 16384"):
        TileSetting.parse(20000, validation.TILE_SIZE)


def test_cli_parses_tile_and_precision_once(tmp_path, capsys):
    from cliplit_core.cli.app import build_parser

    def parsed(*extra):
        return build_parser().parse_args(["enhance", "x.png", "-o", str(tmp_path), *extra])

    a = parsed()
    assert a.tile == TileSetting.AUTO and a.dtype is Precision.AUTO
    assert parsed("--tile", "0").tile == TileSetting.AUTO  # 0 means automatic, as in the node
    assert parsed("--tile", "none").tile == parsed("--tile", "whole").tile == TileSetting.WHOLE
    assert parsed("--tile", "96").tile == TileSetting.fixed(96)
    assert parsed("--dtype", "float16").dtype is Precision.FP16 and parsed("--dtype", "bf16").dtype is Precision.BF16
    assert main(["enhance", "x.png", "-o", str(tmp_path / "o"), "--dtype", "fp8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --dtype: must be one of fp32, auto, fp16, bf16" in err


# ----------------------------------------------------------------------------- options
def test_options_are_parsed_and_checked_once():
    o = EnhanceOptions(strength=0.5, precision="BF16", tile="512", mode="preview")
    assert o.precision is Precision.BF16 and o.tile == TileSetting.fixed(512) and o.mode is Mode.PREVIEW
    assert EnhanceOptions().precision is Precision.FP32 and EnhanceOptions().tile == TileSetting.AUTO
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.strength = 1.0
    for kw, msg in (({"strength": float("nan")}, "strength must be"), ({"mask_feather": -1}, "mask_feather must be"),
                    ({"temporal_smoothing": 1e9}, "temporal_smoothing must be"), ({"mode": "fast"}, "mode must be"),
                    ({"precision": "fp8"}, "precision must be"), ({"tile": -5}, "tile must be"),
                    ({"mask": torch.zeros(2, 3, 4, 5, 6)}, "mask must have shape")):
        with pytest.raises(ValueError, match=msg):
            EnhanceOptions(**kw)


# ----------------------------------------------------------------------------- parity
@pytest.mark.slow
def test_whole_tiled_and_node_agree(model, crop, whole):
    """Whole image through the core is bit-identical to the node's run; tiles give the same
    numbers up to float rounding (identical after 8-bit rounding) and are bit-identical to the
    node's run with the same tile size; a plain network gives the same as the model."""
    from cliplit_core.weights.checkpoint import load_network
    from cliplit_core.files.images import to_uint8
    from nodes import enhance as node
    from tests.support.nodes_support import OFFICIAL_WEIGHTS

    image, light = whole
    assert image.shape == crop.shape and image.dtype == torch.float32 and light.shape == (1, 1, 96, 128)
    node_image, node_light = node.enhance_batch(model, crop.movedim(1, -1))
    assert torch.equal(node_image, image.movedim(1, -1)) and torch.equal(node_light, light[:, 0].clamp(0, 1))
    tiled, tiled_light = enhance(model, crop, EnhanceOptions(tile=48), CPU)
    assert float((tiled - image).abs().max()) < 1e-6 and float((tiled_light - light).abs().max()) < 1e-5
    assert (to_uint8(tiled[0].permute(1, 2, 0).numpy()) == to_uint8(image[0].permute(1, 2, 0).numpy())).all()
    node_tiled, _ = node.enhance_batch(model, crop.movedim(1, -1), tile_size=48)
    assert torch.equal(node_tiled, tiled.movedim(1, -1))
    bare, _ = enhance(load_network(OFFICIAL_WEIGHTS), crop, EnhanceOptions(tile=48), CPU)
    assert torch.equal(bare, tiled)
    assert image.movedim(1, -1).is_contiguous()  # channels-last storage: ComfyUI's layout without a copy


def test_strength_scales_in_exposure_space(model, crop, whole):
    image, light = whole
    half, _ = enhance(model, crop, EnhanceOptions(strength=0.5), CPU)
    want = (crop / light.clamp_min(inference.LIGHT_FLOOR).pow(0.5)).clamp(0, 1)
    assert float((half - want).abs().max()) < 1e-6
    same, _ = enhance(model, crop, EnhanceOptions(strength=0.0), CPU)
    assert torch.allclose(same, crop, atol=1e-6, rtol=0)


# Reference numbers computed with the Backlit Enhance node before the work moved into the core.
# Tolerances allow a few float32 ulps (PIXEL_TOL): oneDNN's conv kernels round differently on
# different CPUs (AVX2 / AVX-512); a change of the mask, smoothing or strength moves them far more.
PIXEL_TOL = 5e-7
MASK_OUT_SUM, MASK_LIGHT_SUM = 28278.627454508096, 10826.951593846083
MASK_ROW = [0.8593846559524536, 0.8573850393295288, 0.8592298030853271, 0.8569031357765198, 0.8625336289405823,
            0.860112190246582, 0.8577373027801514, 0.8634189367294312, 0.8573029637336731, 0.8553590774536133,
            0.8536417484283447, 0.8600592613220215]
TEMPORAL_MEANS = [0.803051147666262, 0.795696604307889, 0.7885931010257536, 0.7870374101310316,
                  0.7870518920472263, 0.789415577604359]
TEMPORAL_LIGHT_MEANS = [0.9389316343707227, 0.8811814866530767, 0.7780060492756699, 0.8899596626821827,
                        0.8385605617756179, 0.9047270008923078]
BOTH_MEANS = [0.7975924788683338, 0.7641911001171482, 0.7275994865943543, 0.7540258003083219]
BOTH_PIXELS = [0.8631847500801086, 0.8280043601989746, 0.8426779508590698, 0.8144918084144592]


def test_mask_matches_the_reference_numbers(model, crop, whole):
    mask = torch.zeros(1, 96, 128)
    mask[:, :, :64] = 1.0
    out, light = enhance(model, crop, EnhanceOptions(mask=mask, mask_feather=6, strength=0.7), CPU)
    assert float(out.double().sum()) == pytest.approx(MASK_OUT_SUM, rel=1e-8)  # 36,864 float32 values: kernels differ across CPUs
    assert float(light.clamp(0, 1).double().sum()) == pytest.approx(MASK_LIGHT_SUM, rel=1e-8)
    assert out[0, 0, 48, 58:70].tolist() == pytest.approx(MASK_ROW, abs=PIXEL_TOL)
    # and the formula: I * exp(-strength * m * log L) with the feathered mask
    m = prepare_mask(mask, 1, 96, 128, 6)
    want = (crop * torch.exp(-0.7 * m * whole[1].clamp_min(inference.LIGHT_FLOOR).log())).clamp(0, 1)
    assert float((out - want).abs().max()) < 1e-6


@pytest.mark.slow
def test_temporal_smoothing_and_mask_match_the_reference_numbers(model, crop):
    seq = flickering_sequence(crop.movedim(1, -1))[:6].movedim(-1, 1)
    out, light = enhance(model, seq, EnhanceOptions(temporal_smoothing=2.0), CPU)
    assert out.double().mean(dim=(1, 2, 3)).tolist() == pytest.approx(TEMPORAL_MEANS, abs=PIXEL_TOL)
    assert light.clamp(0, 1).double().mean(dim=(1, 2, 3)).tolist() == pytest.approx(TEMPORAL_LIGHT_MEANS, abs=PIXEL_TOL)
    ramp = torch.linspace(0, 1, 128).expand(96, 128)
    out, _ = enhance(model, seq[:4], EnhanceOptions(temporal_smoothing=1.5, mask=ramp, mask_feather=3, strength=1.3),
                     CPU)
    assert out.double().mean(dim=(1, 2, 3)).tolist() == pytest.approx(BOTH_MEANS, abs=PIXEL_TOL)
    assert out[:, 2, 40, 100].tolist() == pytest.approx(BOTH_PIXELS, abs=PIXEL_TOL)


def test_inputs_are_kept_and_outputs_go_to_the_output_device(model, crop):
    x = torch.cat([crop, crop.flip(-1)])
    keep = x.clone()
    out, light = enhance(model, x, EnhanceOptions(mask=torch.ones(96, 128), temporal_smoothing=1.0),
                         dataclasses.replace(CPU, output_device="meta"))
    assert torch.equal(x, keep)
    assert out.device.type == light.device.type == "meta" and out.shape == x.shape


# ----------------------------------------------------------------------------- memory plan
def test_plan_chunks_and_tiles_from_the_hosts_free_memory():
    per_image = inference.whole_image_bytes(96, 128)
    asked = []
    run = RunContext(device="cpu", free_bytes=lambda d: int(per_image * 1.5 / memory.CPU_FRACTION),
                     free_memory=lambda n, d: asked.append(n))
    plan = run_plan.plan_run(3, 96, 128, torch.float32, TileSetting.AUTO, net_bytes=1000, run=run)
    assert (plan.chunk, plan.tile) == (1, None) and asked == [per_image + 1000]
    roomy = dataclasses.replace(run, free_bytes=lambda d: 1 << 40)
    assert run_plan.plan_run(3, 96, 128, torch.float32, TileSetting.AUTO, net_bytes=0, run=roomy).chunk == 3
    tight = dataclasses.replace(run, memory_budget=inference.whole_image_bytes(60, 60))
    plan = run_plan.plan_run(1, 96, 128, torch.float32, TileSetting.AUTO, net_bytes=0, run=tight)
    assert plan.tile is not None and plan.tile < 128
    half = dataclasses.replace(roomy, memory_fraction=0.5)
    assert half.budget(torch.device("cpu")) == (1 << 40) // 2


def test_cpu_tiles_are_capped_for_a_responsive_progress_bar():
    roomy = RunContext(device="cpu", free_bytes=lambda d: 1 << 40)
    plan = lambda tile, h=3000, w=4000, run=roomy: run_plan.plan_run(1, h, w, torch.float32, tile, net_bytes=0,
                                                                      run=run).tile  # noqa: E731
    assert plan(TileSetting.AUTO) == run_plan.CPU_MAX_TILE  # one cap, for automatic tiles of big images
    assert plan(TileSetting.AUTO, 1536, 2048) is None  # up to CPU_WHOLE_MAX_PIXELS: whole when it fits
    tight = dataclasses.replace(roomy, memory_budget=inference.whole_image_bytes(600, 600))
    assert plan(TileSetting.AUTO, 1536, 2048, run=tight) <= run_plan.CPU_MAX_TILE  # else tiles, capped
    assert plan(TileSetting.fixed(2048)) == 2048  # a tile the user chose is kept
    assert plan(TileSetting.WHOLE) is None  # asked for: never tiled
    assert plan(TileSetting.AUTO, 600, 768) is None  # fits within the cap: whole
    assert plan(TileSetting.AUTO, run=dataclasses.replace(roomy, device=torch.device("cuda"))) is None  # no cap on GPUs


def test_small_tile_warning():
    assert run_plan.small_tile_warning(128, 1024, 1024).startswith(
        "tile size 128 splits each 1024x1024 image into 64 tiles, each run twice with a 17-pixel border")
    assert run_plan.small_tile_warning(128, 100, 120) is None  # the whole image fits one tile
    assert run_plan.small_tile_warning(256, 1024, 1024) is None


# ----------------------------------------------------------------------------- progress, cancel, OOM
@pytest.mark.slow
def test_progress_counts_the_whole_batch_over_its_calls(model, crop):
    batch = torch.cat([crop, crop.flip(-1), crop.flip(-2)])
    steps = []
    run = dataclasses.replace(CPU, memory_budget=inference.whole_image_bytes(96, 128) * 3 // 2,
                              progress=lambda d, t: steps.append((d, t)))
    enhance(model, batch, EnhanceOptions(tile=64), run)  # one image per call, 4 tiles x 2 passes each
    assert steps[-1] == (24, 24) and all(t == 24 for _, t in steps)
    assert [d for d, _ in steps] == list(range(1, 25))


class Stop(Exception):
    pass


def test_cancel_stops_inside_the_current_tile(model, crop, monkeypatch):
    """Cancel is checked between the network's layers too: a tiled run stops inside its first tile."""
    tiles = []
    real = tiling.predict_light_tiled

    def counting(fw, x, tile, *args, progress=None, **kw):
        def cb(done, total):
            tiles.append(done)
            progress(done, total)
        return real(fw, x, tile, *args, progress=cb, **kw)

    monkeypatch.setattr(inference, "predict_light_tiled", counting)
    checks = []

    def cancelled():
        checks.append(1)
        if len(checks) == 2:
            raise Stop()

    with pytest.raises(Stop):
        enhance(model, crop, EnhanceOptions(tile=48), dataclasses.replace(CPU, raise_if_cancelled=cancelled))
    assert tiles == [] and len(checks) == 2


@pytest.mark.slow
def test_out_of_memory_halves_the_tile_and_empties_the_cache(model, crop, whole, monkeypatch):
    calls = run_out_of_memory_above(monkeypatch, 64)
    emptied, warned = [], []
    run = dataclasses.replace(CPU, empty_cache=lambda: emptied.append(1), warn=warned.append)
    out, light = enhance(model, crop, EnhanceOptions(), run)
    assert calls == [None, 64] and emptied == [1] and warned == ["out of memory; retrying with 64-pixel tiles"]
    assert float((light - whole[1]).abs().max()) < 1e-5


def test_bad_inputs_fail_before_any_work(model, monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(run_plan, "plan_run", no_work)
    for x, msg in ((torch.rand(1, 5, 8, 8), "channels"), (torch.rand(0, 3, 8, 8), "empty"),
                   (torch.rand(8, 8), r"\[B, C, H, W\]")):
        with pytest.raises(ValueError, match=msg):
            enhance(model, x, EnhanceOptions(), CPU)
    with pytest.raises(TypeError, match="EnhanceOptions"):
        enhance(model, torch.rand(1, 3, 8, 8), {"strength": 1.0}, CPU)


@pytest.mark.slow
def test_cli_photo_step_and_the_api_compute_the_same(random_net):
    """The command line's photo step (engine.core.enhance_photo) and api.enhance run the same engine:
    equal results for whole images and previews."""
    import numpy as np

    from cliplit_core.engine.core import enhance_photo
    from cliplit_core.files.images import to_float32

    pixels = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    for mode in ("exact", "preview"):
        options = EnhanceOptions(strength=0.8, mode=mode, precision="auto", tile="auto")
        image, light = enhance_photo(random_net, pixels, options=options, run=CPU, with_light=True)
        want, want_light = enhance(random_net, torch.from_numpy(to_float32(pixels)).permute(2, 0, 1)[None],
                                   options, CPU)
        assert np.array_equal(image, want[0].permute(1, 2, 0).numpy())
        assert np.array_equal(light, want_light[0, 0].clamp(0, 1).numpy())
