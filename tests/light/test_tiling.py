"""Exact tiling: tiled light maps equal whole-image ones within 1e-5 (float32)."""
import pytest
import torch

from cliplit_core.engine.inference import enhance, predict_light
from cliplit_core.light.network import CLIPLITNet
from cliplit_core.light.tiling import tile_grid


@pytest.mark.parametrize("tile", [17, 64, 100, 256])
def test_tiled_equals_whole_on_a_real_photo(tile, official_net, small_photo):
    x = small_photo[:, :, :200, :300]
    whole = predict_light(official_net, x, tile=None)
    tiled = predict_light(official_net, x, tile=tile)
    assert (whole - tiled).abs().max().item() < 1e-5


@pytest.mark.parametrize("shape,tile", [((1, 1), 1), ((2, 2), 1), ((3, 513), 64), ((40, 7), 5), ((61, 67), 17),
                                        ((130, 35), 33)])
def test_tiled_equals_whole_any_size(shape, tile, random_net):
    torch.manual_seed(0)
    x = torch.rand(2, 3, *shape)
    whole = predict_light(random_net, x, tile=None)
    tiled = predict_light(random_net, x, tile=tile)
    assert whole.shape == (2, 1, *shape)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_zero_padding_variant_tiles_exactly():
    torch.manual_seed(3)
    net = CLIPLITNet("zero").eval().requires_grad_(False)
    x = torch.rand(1, 3, 90, 70)
    assert (predict_light(net, x, tile=None) - predict_light(net, x, tile=24)).abs().max().item() < 1e-5


def test_tiles_cover_the_image_exactly_once():
    for H, W, t in [(1, 1, 5), (100, 37, 17), (513, 3, 64), (64, 64, 64)]:
        cover = torch.zeros(H, W, dtype=torch.int32)
        for y0, y1, x0, x1 in tile_grid(H, W, t):
            assert 0 < y1 - y0 <= t and 0 < x1 - x0 <= t
            cover[y0:y1, x0:x1] += 1
        assert torch.all(cover == 1)


def test_progress_reports_every_tile_and_can_abort(random_net):
    x = torch.rand(1, 3, 80, 80)
    calls = []
    predict_light(random_net, x, tile=40, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (8, 8) and len(calls) == 8  # 4 tiles x 2 passes

    class Stop(Exception):
        pass

    seen = []

    def abort(done, total):
        seen.append(done)
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        enhance(random_net, x, tile=40, progress=abort)
    assert seen == [1, 2, 3]


@pytest.mark.slow
def test_tiled_peak_memory_is_set_by_tile_not_image(random_net):
    """Activation memory of the tiled pass does not grow with the image size."""
    from torch.profiler import ProfilerActivity, profile

    def peak(h, w):
        x = torch.rand(1, 3, h, w)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            predict_light(random_net, x, tile=32)
        # the largest single allocation: tile activations, never image-sized ones
        return max((e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0), default=0)

    small, big = peak(96, 96), peak(96, 480)
    assert big <= small * 1.6  # only the image-sized output buffer grows (1 channel)
    assert big < 96 * 480 * 64 * 4  # far below one full-size 64-channel activation
