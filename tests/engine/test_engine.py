"""The engine (cliplit_core/engine/core.py): one back-off, progress and Cancel for every path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cliplit_core.engine import api, tiled_pixels
from cliplit_core.engine.core import Engine, working_dtype
from cliplit_core.engine.frames import FrameStream
from cliplit_core.engine.options import EnhanceOptions
from cliplit_core.engine.precision import Precision
from cliplit_core.engine.run_context import RunContext
from cliplit_core.light import cancel, fastnet
from tests.support.assertions import CancelAfter, assert_cancel_stops, assert_tiled_equals_whole
from tests.support.data import synthetic_photo
from tests.support.fakes import run_out_of_memory_above


def _img(h, w, b=1, seed=0):
    return torch.stack([torch.from_numpy(synthetic_photo(h, w, seed=seed + i)).permute(2, 0, 1) for i in range(b)])


def _engine(net, options=EnhanceOptions(), b=1, h=200, w=150, **run):
    run.setdefault("device", "cpu")
    return Engine(net, options, RunContext(**run), batch=b, height=h, width=w)


@pytest.mark.slow
def test_oom_backs_off_to_smaller_tiles_and_keeps_them(official_net, monkeypatch):
    warned, freed = [], []
    eng = _engine(official_net, EnhanceOptions(tile="none"), warn=warned.append, empty_cache=lambda: freed.append(1))
    tiles = run_out_of_memory_above(monkeypatch, 64)
    x = _img(200, 150)
    light = eng.light(x)
    assert tiles == [None, 100, 64]
    assert warned == ["out of memory; retrying with 100-pixel tiles", "out of memory; retrying with 64-pixel tiles"]
    assert len(freed) == 2
    eng.light(x)  # the tile that worked is kept: no second back-off
    assert tiles[3:] == [64]
    monkeypatch.undo()
    assert_tiled_equals_whole(light, _engine(official_net, EnhanceOptions(tile="none")).light(x))


def test_oom_at_the_smallest_tile_and_other_errors_propagate(official_net, monkeypatch):
    tiles = run_out_of_memory_above(monkeypatch, 0)
    with pytest.raises(torch.OutOfMemoryError):
        _engine(official_net, EnhanceOptions(tile=64), h=100, w=80).light(_img(100, 80))
    assert tiles == [64]  # MIN_TILE already: no smaller retry
    from cliplit_core.engine import inference

    def broken(*a, **k):
        raise RuntimeError("something else")

    monkeypatch.setattr(inference, "predict_light", broken)
    with pytest.raises(RuntimeError, match="something else"):
        _engine(official_net, h=20, w=20).light(_img(20, 20))


@pytest.mark.slow
def test_oom_back_off_covers_8_bit_photos_in_their_own_form(official_net, monkeypatch):
    """A photo tiled in its file's 8-bit form backs off like a float batch (one loop, not two)."""
    pixels = (synthetic_photo(300, 200) * 255).round().astype(np.uint8)
    real, seen = tiled_pixels.enhance_pixels, []

    def pixels_oom(net, px, *, tile, **kw):
        seen.append(tile)
        if tile > 96:
            raise torch.OutOfMemoryError("simulated")
        return real(net, px, tile=tile, **kw)

    monkeypatch.setattr(tiled_pixels, "enhance_pixels", pixels_oom)
    out, _ = _engine(official_net, EnhanceOptions(tile=256), h=300, w=200).photo(pixels)
    assert seen == [256, 128, 64] and out.dtype == np.uint8
    monkeypatch.undo()
    ref, _ = _engine(official_net, EnhanceOptions(tile=64), h=300, w=200).photo(pixels)
    assert np.array_equal(out, ref)


def test_video_frames_back_off_once_for_the_whole_video(official_net, monkeypatch):
    tiles = run_out_of_memory_above(monkeypatch, 64)
    stream = FrameStream(official_net, EnhanceOptions(tile="none"), RunContext(device="cpu", warn=lambda m: None),
                         height=96, width=128)
    frames = [(synthetic_photo(96, 128, seed=i) * 255).astype(np.uint8) for i in range(3)]
    done = [f for k, px in enumerate(frames) for f in stream.push(px, k)] + stream.finish()
    assert [t for _, t in done] == [0, 1, 2]
    assert tiles == [None, 64, 64, 64]  # whole -> 64 on the first frame, then 64 from the start


def test_cancel_is_checked_between_the_network_layers(official_net):
    fw = fastnet.weights_for(official_net, torch.device("cpu"), torch.float32)
    stop = CancelAfter(3)
    with cancel.checks(stop):
        assert_cancel_stops(lambda: fastnet.forward(fw, _img(40, 40)), stop)
    n = CancelAfter(10 ** 9)
    with cancel.checks(n):
        fastnet.forward(fw, _img(40, 40))
    assert n.seen >= 15  # every layer of stem and head, both convs of each residual block
    fastnet.forward(fw, _img(40, 40))  # no check installed: nothing is called


@pytest.mark.parametrize("mode", ["exact", "preview"])
def test_cancel_stops_a_batch_inside_its_first_call(official_net, mode):
    """Cancel pressed during the first network call of a batch stops it there, in every mode."""
    stop = CancelAfter(2)
    progress = []
    run = RunContext(device="cpu", raise_if_cancelled=stop, progress=lambda d, t: progress.append((d, t)))
    assert_cancel_stops(lambda: api.enhance(official_net, _img(64, 96, b=4), EnhanceOptions(mode=mode), run), stop)
    assert progress == []  # stopped before the first step was done


@pytest.mark.slow
def test_progress_moves_during_a_preview_and_a_batch(official_net):
    """A preview reports its low-resolution pass and each chunk of calibration windows; a batch
    reports each call. The counts rise to one constant total."""
    for options, x in [(EnhanceOptions(mode="preview"), _img(600, 800)),
                       (EnhanceOptions(), _img(48, 64, b=3))]:
        calls = []
        api.enhance(official_net, x, options, RunContext(device="cpu", progress=lambda d, t: calls.append((d, t)),
                                                         memory_budget=int(x.shape[2] * x.shape[3] * 4 * 232 * 1.5)))
        assert len(calls) >= 2, calls
        totals = {t for _, t in calls}
        assert len(totals) == 1 and calls[-1][0] == calls[-1][1], calls
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_half_precision_without_fast_support_falls_back_with_one_warning():
    warned = []
    cpu = torch.device("cpu")
    assert working_dtype(Precision.FP16, cpu, preview=False, warn=warned.append) == torch.float32
    assert working_dtype(Precision.FP16, cpu, preview=True, warn=warned.append) == torch.float32
    assert len(warned) <= 1 and all("float16 is emulated on this CPU" in w for w in warned)
    assert working_dtype(Precision.FP32, cpu, preview=False) == torch.float32
    if torch.cuda.is_available():
        assert working_dtype(Precision.FP16, torch.device("cuda"), preview=False) == torch.float16


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "for 8-bit images pass x.float\\(\\) / 255"),
    (np.zeros((8, 8, 3), np.float32), "got numpy.ndarray"),
    (torch.zeros(1, 24, 32, 3), "looks like \\[B, H, W, C\\]"),
    (torch.zeros(1, 5, 8, 8), "C = 1, 2, 3 or 4"),
])
def test_bad_image_batches_get_one_clear_error(official_net, bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        api.enhance(official_net, bad)
