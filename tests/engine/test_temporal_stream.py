"""Streamed temporal smoothing (video files) against the direct batch definition (the node's)."""
import math

import pytest
import torch

from cliplit_core.engine.temporal import (LIGHT_FLOOR, LightSmoother, frame_levels, gaussian_weights, scene_segments,
                                   smooth_light)


def direct_batch_smoothing(light, frames, sigma):
    """The definition, on the whole batch at once: Gaussian average of log(L / level) within
    scene segments, times each frame's level."""
    levels = frame_levels(frames).view(-1, 1, 1, 1)
    log_r = light.clamp_min(LIGHT_FLOOR).log() - levels.log()
    w = gaussian_weights(sigma)
    r = (len(w) - 1) // 2
    out = torch.empty_like(log_r)
    for start, stop in scene_segments(frames):
        for t in range(start, stop):
            lo, hi = max(start, t - r), min(stop, t + r + 1)
            ww = w[lo - t + r: hi - t + r]
            out[t] = (log_r[lo:hi] * (ww / ww.sum()).float().view(-1, 1, 1, 1)).sum(0)
    return (out + levels.log()).exp()


def clip_with_cuts(n=23, h=20, w=24):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g) ** 3
    frames = []
    for t in range(n):
        base = a if t < 9 or t >= 17 else b  # cuts before frame 9 and frame 17
        frames.append((base * (1 + 0.05 * math.sin(t))).clamp(0, 1))
    frames = torch.cat(frames)
    light = 0.2 + torch.rand(n, 1, h, w, generator=g)
    return frames, light


@pytest.mark.parametrize("sigma", [0.5, 1.5, 3.0])
def test_streamed_maps_equal_the_batch_definition_across_scene_cuts(sigma):
    frames, light = clip_with_cuts()
    assert scene_segments(frames) == [(0, 9), (9, 17), (17, 23)]
    smoother = LightSmoother(sigma)
    streamed, held = [], []
    for t in range(len(frames)):
        streamed += smoother.push(light[t:t + 1], frames[t:t + 1])
        held.append(t + 1 - len(streamed))
    streamed += smoother.finish()
    assert max(held) <= smoother.radius + 1  # the look-ahead, never the whole clip
    want = direct_batch_smoothing(light, frames, sigma)
    assert len(streamed) == len(frames)
    assert (torch.cat(streamed) - want).abs().max().item() < 1e-6 * want.abs().max().item()
    assert torch.equal(smooth_light(light, frames, sigma), torch.cat(streamed))


def test_no_smoothing_and_single_frames_pass_through():
    frames, light = clip_with_cuts(n=3)
    one, frame = light[:1], frames[:1]
    s = LightSmoother(0.0)
    assert s.push(one, frame)[0] is one and s.finish() == []
    s = LightSmoother(2.0)
    assert s.push(one, frame) == []
    assert s.finish()[0] is one
