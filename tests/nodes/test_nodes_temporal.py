"""Temporal smoothing of the light map for video frames (Backlit Enhance, temporal_smoothing)."""
from __future__ import annotations

import pytest
import torch
from tests.support.nodes_support import backlit_crop, official_model, read_photo  # noqa: F401

from cliplit_core.engine import temporal
from tests.support.sequences import flickering_sequence, mean_brightness_flicker
from nodes import enhance as enh


# Stated requirement: with temporal_smoothing = 2 frames the flicker of the output's mean
# brightness on the synthetic flickering sequence drops at least this much (measured: 12x).
REQUIRED_FLICKER_DROP = 5.0


@pytest.fixture(scope="module")
def model(official_model):
    return official_model


@pytest.fixture(scope="module")
def scene():
    """A real backlit scene, 96 x 128 (IMAGE [1, H, W, 3])."""
    return backlit_crop()


def test_smoothing_removes_flicker_of_the_output_brightness(model, scene):
    seq = flickering_sequence(scene)
    plain, light_plain = enh.enhance_batch(model, seq)
    smooth, light_smooth = enh.enhance_batch(model, seq, temporal_smoothing=2.0)
    f_in = mean_brightness_flicker(seq)
    f_plain = mean_brightness_flicker(plain)
    f_smooth = mean_brightness_flicker(smooth)
    print(f"mean-brightness flicker: input {f_in:.4f}, per-frame CLIP-LIT {f_plain:.4f}, "
          f"temporal_smoothing=2 {f_smooth:.4f} ({f_plain / f_smooth:.1f}x less)")
    assert f_smooth * REQUIRED_FLICKER_DROP <= f_plain
    # the enhancement itself is kept: same overall brightness as frame-by-frame
    assert abs(float(smooth.mean()) - float(plain.mean())) < 0.02
    assert float(smooth.mean()) > float(seq.mean()) + 0.05
    assert light_smooth.shape == light_plain.shape


def test_smoothing_a_steady_sequence_changes_almost_nothing(model, scene):
    seq = scene.repeat(5, 1, 1, 1)
    plain, _ = enh.enhance_batch(model, seq)
    smooth, _ = enh.enhance_batch(model, seq, temporal_smoothing=3.0)
    assert torch.allclose(plain, smooth, atol=1e-4)


def test_smoothing_never_blends_across_a_scene_cut(model, scene):
    other = read_photo("111_51093504404_o.png")[:, 100:196, 300:428]
    seq = torch.cat([scene.repeat(4, 1, 1, 1), other.repeat(4, 1, 1, 1)])
    assert temporal.scene_segments(seq.movedim(-1, 1)) == [(0, 4), (4, 8)]
    plain, _ = enh.enhance_batch(model, seq)
    smooth, _ = enh.enhance_batch(model, seq, temporal_smoothing=4.0)
    assert torch.allclose(plain, smooth, atol=1e-4)


def test_single_frame_and_zero_sigma_are_no_ops():
    light = torch.rand(3, 1, 8, 8) + 0.1
    frames = torch.rand(3, 3, 8, 8)
    assert temporal.smooth_light(light, frames, 0.0) is light
    assert temporal.smooth_light(light[:1], frames[:1], 2.0) is light[:1] or torch.equal(
        temporal.smooth_light(light[:1], frames[:1], 2.0), light[:1])


def test_smoothing_with_mask_and_strength(model, scene):
    seq = flickering_sequence(scene, seed=3)[:6]
    out, _ = enh.enhance_batch(model, seq, temporal_smoothing=2.0, mask=torch.zeros(1, 96, 128), mask_feather=0)
    assert torch.allclose(out, seq, atol=1e-6)
    out0, _ = enh.enhance_batch(model, seq, temporal_smoothing=2.0, strength=0.0)
    assert torch.allclose(out0, seq, atol=1e-6)
