"""Temporal smoothing of light maps for video frames (a batch = consecutive frames).

Smoothing the light map ``L`` alone does not help: CLIP-LIT already adapts ``L``
to each frame's exposure, and a frozen (smoothed) ``L`` passes the input's own
exposure flicker straight through (measured: it makes output flicker worse).
What is smoothed instead is the light map *relative to each frame's exposure
level*::

    y_t = log-average luminance of frame t   (robust to small bright objects)
    R_t = L_t / y_t                            (the network's correction, exposure-free)
    R~  = Gaussian average of log R over neighbouring frames (sigma in frames)
    L~_t = R~_t * y_t

so each frame's brightness is normalised by its own exposure and the
correction itself changes smoothly: exposure flicker (fluorescent light, auto-
exposure hunting) and frame-to-frame jitter of the network are both removed.
Windows never reach across a scene cut (a large exposure-independent change
of the frame's coarse layout).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)
LEVEL_FLOOR = 1.0 / 255.0
LIGHT_FLOOR = 1e-5
THUMB = 16
SCENE_CUT_THRESHOLD = 0.15  # mean |log-luminance change| of exposure-normalised 16x16 thumbnails


def luminance(frames: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] luminance of [B, C, H, W] frames (gray or RGB, alpha ignored)."""
    c = frames.shape[1]
    if c >= 3:
        w = torch.tensor(LUMA, dtype=frames.dtype, device=frames.device).view(1, 3, 1, 1)
        return (frames[:, :3] * w).sum(1, keepdim=True)
    return frames[:, :1]


def clean_luminance(frames: torch.Tensor) -> torch.Tensor:
    """:func:`luminance` of raw frames (NaN -> 0, clamped to 0..1, like the enhancement's input)."""
    lum = luminance(frames.float())  # for gray frames a view of the input: never modified in place
    return torch.nan_to_num(lum, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)


def frame_levels(frames: torch.Tensor) -> torch.Tensor:
    """Log-average luminance per frame, [B] (on a thumbnail, cheap for big frames)."""
    lum = clean_luminance(frames)
    small = F.adaptive_avg_pool2d(lum, (min(64, lum.shape[-2]), min(64, lum.shape[-1])))
    return small.clamp_min(LEVEL_FLOOR).log().mean(dim=(1, 2, 3)).exp()


def scene_segments(frames: torch.Tensor, threshold: float = SCENE_CUT_THRESHOLD) -> list[tuple[int, int]]:
    """[(start, stop), ...] runs of frames without a scene cut between neighbours."""
    b = frames.shape[0]
    if b < 2:
        return [(0, b)]
    lum = clean_luminance(frames)
    thumbs = F.adaptive_avg_pool2d(lum, (min(THUMB, lum.shape[-2]), min(THUMB, lum.shape[-1])))
    logt = thumbs.clamp_min(LEVEL_FLOOR).log()
    logt = logt - logt.mean(dim=(1, 2, 3), keepdim=True)  # exposure-independent layout
    change = (logt[1:] - logt[:-1]).abs().mean(dim=(1, 2, 3))
    cuts = [i + 1 for i, c in enumerate(change.tolist()) if c > threshold]
    bounds = [0] + cuts + [b]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def gaussian_weights(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    return torch.exp(-0.5 * (k / sigma) ** 2)


def smooth_light(light: torch.Tensor, frames: torch.Tensor, sigma: float,
                 threshold: float = SCENE_CUT_THRESHOLD) -> torch.Tensor:
    """Temporally smoothed light maps [B, 1, H, W] (see module doc). ``sigma`` in frames; <= 0: unchanged."""
    b = light.shape[0]
    if sigma <= 0 or b < 2:
        return light
    levels = frame_levels(frames).to(light.device, torch.float32).view(b, 1, 1, 1)
    log_r = light.float().clamp_min(LIGHT_FLOOR).log() - levels.log()
    w = gaussian_weights(sigma)
    radius = (len(w) - 1) // 2
    out = torch.empty_like(log_r)
    for start, stop in scene_segments(frames, threshold):
        for t in range(start, stop):
            lo, hi = max(start, t - radius), min(stop, t + radius + 1)
            ww = w[lo - t + radius: hi - t + radius]
            ww = (ww / ww.sum()).to(log_r.device, torch.float32).view(-1, 1, 1, 1)
            out[t] = (log_r[lo:hi] * ww).sum(0)
    return (out + levels.log()).exp()


def mean_brightness_flicker(frames: torch.Tensor) -> float:
    """Mean absolute change of the frames' mean brightness between neighbours (the flicker measure)."""
    m = frames.float().mean(dim=(1, 2, 3))
    return float((m[1:] - m[:-1]).abs().mean()) if len(m) > 1 else 0.0
