"""The inference fast path (cliplit_core/light/fastnet.py) against the reference module.

Every rewrite (folded reflect padding, matmul pooling, split fuse conv, channels-last,
channel padding, fixed-shape tiles) must give the reference network's light map within
float32 rounding, for any image and tile size; half precision must stay within the
fidelity bar (1/255 on >= 99.9 % of pixels).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cliplit_core.light import fastnet
from cliplit_core.engine.inference import enhance, predict_light
from cliplit_core.engine.precision import compute_dtype
from cliplit_core.light.network import PPM_BINS, CLIPLITNet
from cliplit_core.light.tiling import predict_light_tiled, tile_grid, tile_windows, window_sides

from tests.support.data import SHARED_DATA as DATA  # noqa: E402
WEIGHTS = DATA / "official_weights" / "enhancement_model.pth"

VARIANTS = [
    dict(channels_last=False),
    dict(channels_last=True),
    dict(channels_last=True, pad_in=8, pad_out=8),
    dict(channels_last=False, fold_padding=False),
]


@pytest.fixture(scope="module")
def net():
    """The official network if present, else a random one with non-trivial PReLU slopes."""
    if WEIGHTS.is_file():
        from cliplit_core.weights.checkpoint import load_network

        return load_network(WEIGHTS)
    torch.manual_seed(0)
    n = CLIPLITNet().eval().requires_grad_(False)
    for m in n.modules():
        if isinstance(m, torch.nn.PReLU):
            m.weight.fill_(0.3)
    return n


@pytest.fixture(scope="module")
def zero_net():
    torch.manual_seed(1)
    return CLIPLITNet("zero").eval().requires_grad_(False)


@pytest.mark.parametrize("opts", VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("shape", [(1, 3, 2, 2), (1, 3, 2, 9), (2, 3, 23, 31), (1, 3, 3, 513), (1, 3, 40, 7)])
def test_fast_forward_equals_module(net, opts, shape):
    torch.manual_seed(2)
    x = torch.rand(shape)
    with torch.inference_mode():
        ref = net(x)
        fw = fastnet.FastWeights(net, "cpu", torch.float32, **opts)
        out = fastnet.forward(fw, x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-5


def test_zero_padding_variant(zero_net):
    x = torch.rand(1, 3, 19, 26)
    with torch.inference_mode():
        ref = zero_net(x)
        for cl in (False, True):
            out = fastnet.forward(fastnet.FastWeights(zero_net, "cpu", torch.float32, cl), x)
            assert (out - ref).abs().max().item() < 1e-5
            tiled = predict_light_tiled(fastnet.FastWeights(zero_net, "cpu", torch.float32, cl), x, 8)
            assert (tiled - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("shape,tiles", [
    ((1, 3, 1, 1), [1, 2, 64]),
    ((1, 3, 1, 37), [1, 5, 16]),
    ((1, 3, 3, 513), [1, 2, 7, 64, 200, 512]),
    ((2, 3, 61, 45), [3, 17, 18, 30, 44]),  # 1-pixel tiles: the cases above
    ((1, 3, 100, 100), [6, 35, 99]),
])
@pytest.mark.slow
def test_tiled_equals_whole_any_tile(net, shape, tiles):
    torch.manual_seed(3)
    x = torch.rand(shape)
    whole = predict_light(net, x, tile=None, dtype=torch.float32)
    for t in tiles:
        tiled = predict_light(net, x, tile=t, dtype=torch.float32)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max().item() < 1e-5, t


@pytest.mark.parametrize("H,W,tile,halo", [(100, 37, 10, 17), (513, 3, 64, 17), (50, 50, 50, 5), (7, 300, 1, 5),
                                           (1000, 999, 333, 17)])
def test_tile_windows_are_uniform_and_hold_their_cores(H, W, tile, halo):
    cores = tile_grid(H, W, tile)
    wins = tile_windows(cores, halo, H, W)
    assert len({(w[1] - w[0], w[3] - w[2]) for w in wins}) == 1  # one shape per image
    for (c0, c1, d0, d1), (y0, y1, x0, x1) in zip(cores, wins):
        assert 0 <= y0 <= c0 < c1 <= y1 <= H and 0 <= x0 <= d0 < d1 <= x1 <= W
        top, bottom, left, right = window_sides((y0, y1, x0, x1), H, W)
        assert top or c0 - y0 >= halo
        assert bottom or y1 - c1 >= halo
        assert left or d0 - x0 >= halo
        assert right or x1 - d1 >= halo


@pytest.mark.parametrize("H,W", [(7, 5), (13, 40), (6, 6), (2, 97)])
def test_bin_sums_match_adaptive_pooling(H, W):
    """Pooling from (tiled) matmul sums == adaptive_avg_pool2d, including overlapping bins."""
    torch.manual_seed(4)
    f = torch.randn(2, 5, H, W)
    cores = tile_grid(H, W, 3)
    sums = sum(fastnet.partial_bin_sums(f, c, (0, 0), (H, W)) for c in cores)
    pooled = fastnet.pooled_from_sums(sums, (H, W))
    for p, b in zip(pooled, PPM_BINS):
        assert torch.allclose(p, F.adaptive_avg_pool2d(f, b), atol=1e-6)
    # channels-last layout and half precision take the other branch
    fh = f.half().contiguous(memory_format=torch.channels_last)
    pooled_h = fastnet.pooled_from_sums(fastnet.partial_bin_sums(fh, (0, H, 0, W), (0, 0), (H, W)), (H, W))
    for p, b in zip(pooled_h, PPM_BINS):
        assert torch.allclose(p, F.adaptive_avg_pool2d(f, b), atol=5e-3)


def test_half_pooling_does_not_overflow():
    """Sums of large half-precision tiles are scaled by powers of two (fp16 max is 65504)."""
    f = torch.full((1, 2, 300, 400), 30.0, dtype=torch.float16)
    sums = fastnet.partial_bin_sums(f, (0, 300, 0, 400), (0, 0), (300, 400))
    pooled = fastnet.pooled_from_sums(sums, (300, 400))
    assert all(torch.allclose(p, torch.full_like(p, 30.0)) for p in pooled)


def test_context_map_equals_fuse_conv_of_upsampled_branches(net):
    """The split fuse conv's context term == conv(zero pad) of the bilinear context crop."""
    torch.manual_seed(5)
    H, W = 29, 41
    fw = fastnet.FastWeights(net, "cpu", torch.float32)
    branches = [torch.randn(2, 8, b, b) for b in PPM_BINS]
    c = fw.fuse_ctx.shape[0]
    wctx = net.PPM1.fuse[0].weight[:, c:]
    for win in [(0, H, 0, W), (3, 20, 5, 41), (10, 11, 0, 7)]:
        ctx = net.PPM1.context(branches, (H, W), win)
        ref = F.conv2d(ctx, wctx, padding=1)
        out = fastnet.context_map(fw, branches, (H, W), win)
        assert (out - ref).abs().max().item() < 1e-5


@pytest.mark.slow
def test_half_precision_meets_the_fidelity_bar(net):
    """fp16 (as the GPU default runs it, here on the CPU) vs float32 on a real photo crop."""
    path = DATA / "backlit_small" / "110_51093502029_o.png"
    if not path.is_file():
        pytest.skip(f"test data not found: {path}")
    from cliplit_core.files.images import read_image

    x = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None, :, :160, :200].contiguous()
    ref = enhance(net, x, tile=None, dtype=torch.float32)
    for opts in (dict(channels_last=True), dict(channels_last=False)):
        fw = fastnet.FastWeights(net, "cpu", torch.float16, **opts)
        for tile in (None, 48):
            light = predict_light_tiled(fw, x, tile) if tile else fastnet.forward(fw, x).float()
            img = (x / light.clamp_min(1e-5)).clamp(0, 1)
            d = (img - ref.image).abs().amax(1)
            assert (d <= 1 / 255).float().mean().item() >= 0.999
            assert (light - ref.light).abs().max().item() < 5e-3


def test_bfloat16_needs_the_float32_output_conv(net):
    """bfloat16 (fast on CPUs with AVX-512 BF16 / AMX, and on GPUs) meets the 1/255 bar on a real
    photo only because the last conv runs in float32: rounding the light map itself to bfloat16's
    8 significant bits moves many more pixels (docs/performance.md)."""
    path = DATA / "backlit_small" / "91_51094235055_o.png"
    if not path.is_file():
        pytest.skip(f"test data not found: {path}")
    from cliplit_core.files.images import read_image

    x = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].contiguous()
    ref = enhance(net, x, tile=None, dtype=torch.float32)
    within = {}
    for out_fp32 in (True, False):
        fw = fastnet.FastWeights(net, "cpu", torch.bfloat16, channels_last=True, out_fp32=out_fp32)
        light = fastnet.forward(fw, x)
        assert light.dtype == (torch.float32 if out_fp32 else torch.bfloat16)
        d = ((x / light.float().clamp_min(1e-5)).clamp(0, 1) - ref.image).abs().amax(1)
        within[out_fp32] = (d <= 1 / 255 + 1e-6).float().mean().item()
    assert within[True] >= 0.999
    assert 1 - within[False] > 3 * (1 - within[True])  # the float32 output conv matters
    res = enhance(net, x, tile=64, dtype=torch.bfloat16)  # the public path, tiled, uses it too
    assert ((res.image - ref.image).abs().amax(1) <= 1 / 255 + 1e-6).float().mean().item() >= 0.999


def test_official_parity_on_reference_small(net):
    ref_dir = DATA / "reference_small"
    if not WEIGHTS.is_file() or not ref_dir.is_dir():
        pytest.skip(f"test data not found: {ref_dir} / {WEIGHTS}")
    from cliplit_core.files.images import read_image

    name = "c5b8b4070688114c602b27933c6699b6"
    x = torch.from_numpy(read_image(DATA / "backlit_small" / f"{name}.png")).permute(2, 0, 1)[None].contiguous()
    want = torch.from_numpy(np.load(ref_dir / f"{name}_light.npy"))
    for tile in (None, 100):
        light = predict_light(net, x, tile=tile, dtype=torch.float32)[0, 0]
        assert (light - want).abs().max().item() < 1e-4


def test_compute_dtype():
    assert compute_dtype(None, "cpu") == torch.float32
    assert compute_dtype("auto", torch.device("cpu")) == torch.float32
    assert compute_dtype(None, "cuda") == torch.float16
    assert compute_dtype(None, "cuda:1") == torch.float16
    assert compute_dtype(torch.bfloat16, "cuda") == torch.bfloat16
    assert compute_dtype("fp16", "cpu") == torch.float16
    assert compute_dtype("float32", "cuda") == torch.float32


def test_no_float64_on_devices_without_it():
    assert fastnet.acc_dtype("mps") == torch.float32
    assert fastnet.acc_dtype("cpu") == torch.float64 and fastnet.acc_dtype("cuda") == torch.float64


def test_enhance_leaves_the_network_alone(net):
    """enhance copies weights to the compute device / dtype; the module keeps float32 weights."""
    before = copy.deepcopy(net.state_dict())
    x = torch.rand(1, 3, 20, 24)
    enhance(net, x, dtype=torch.bfloat16)
    enhance(net, x, dtype=torch.float16, tile=8)
    after = net.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(before[k], after[k]) for k in before)


def test_fast_weights_from_a_half_module_still_run(net):
    """Nodes may hand over a float16 copy of the network: weights are converted as needed."""
    half = copy.deepcopy(net).half()
    x = torch.rand(1, 3, 16, 16)
    a = predict_light(half, x, dtype=torch.float32)
    b = predict_light(net, x, dtype=torch.float32)
    assert (a - b).abs().max().item() < 5e-3


def _live_peak(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        evs = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                     key=lambda e: e.start_ns())
    except AttributeError:  # pragma: no cover - profiler internals of another torch version
        pytest.skip("profiler allocation events not available in this torch version")
    live = best = 0
    for e in evs:
        live += e.nbytes()
        best = max(best, live)
    return best


def test_memory_constant_covers_the_whole_image_pass(net):
    """The measured WHOLE_IMAGE_BYTES... constant is not an under-estimate of the live peak."""
    from cliplit_core.engine import inference

    x = torch.rand(1, 3, 240, 320)
    peak = _live_peak(lambda: predict_light(net, x, tile=None, dtype=torch.float32))
    assert peak <= inference.whole_image_bytes(240, 320, 1, torch.float32)
    assert peak >= 0.7 * inference.whole_image_bytes(240, 320, 1, torch.float32)  # and not far above it


def test_tiled_peak_is_set_by_the_window(net):
    """Live memory of the tiled path = window working set + the 1-channel light map, any image size;
    per window pixel it matches the whole-image constant (so 1024-pixel fp16 tiles need ~0.5 GiB)."""
    from cliplit_core.engine import inference
    from cliplit_core.light.network import TOTAL_HALO

    tile = 48
    win = (tile + 2 * TOTAL_HALO) ** 2
    peaks = []
    for h, w in [(144, 192), (288, 384)]:  # multiples of the tile: same window shape
        x = torch.rand(1, 3, h, w)
        peaks.append(_live_peak(lambda: predict_light(net, x, tile=tile, dtype=torch.float32)) - 4 * h * w)
    assert abs(peaks[1] - peaks[0]) < 0.1 * peaks[0]
    weights = 4 * sum(p.numel() for p in net.parameters())  # the float32 working copy of the weights
    assert max(peaks) <= inference.whole_image_bytes(1, 1, 1, torch.float32) * win + 2 * weights


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_default_path_fidelity_and_bounded_memory(net):
    x = torch.rand(1, 3, 1536, 2048)
    ref = enhance(net, x, tile=None, dtype=torch.float32, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    res = enhance(net, x, tile=512, device="cuda")  # automatic dtype: float16
    peak = torch.cuda.max_memory_allocated() - base
    d = (res.image - ref.image).abs().amax(1)
    assert (d <= 1 / 255).float().mean().item() >= 0.999
    assert peak < 1.5 * 2 ** 30
    old = torch.backends.cudnn.benchmark
    enhance(net, x[..., :64, :64], device="cuda")
    assert torch.backends.cudnn.benchmark == old  # our autotuning does not leak
