"""Temporal smoothing of light maps for video frames (consecutive frames, as a batch or streamed).

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

:class:`LightSmoother` does it on a stream (frames pushed one by one, each
smoothed map out as soon as its look-ahead of ``ceil(3 sigma)`` frames is
known, so memory does not grow with the video); :func:`smooth_light` runs a
batch through it, so both give the same maps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .inference import LIGHT_FLOOR

LUMA = (0.299, 0.587, 0.114)
LEVEL_FLOOR = 1.0 / 255.0
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


def layout_thumbnails(frames: torch.Tensor) -> torch.Tensor:
    """[B, 1, 16, 16] exposure-independent coarse layout (log luminance minus its mean) per frame."""
    lum = clean_luminance(frames)
    thumbs = F.adaptive_avg_pool2d(lum, (min(THUMB, lum.shape[-2]), min(THUMB, lum.shape[-1])))
    logt = thumbs.clamp_min(LEVEL_FLOOR).log()
    return logt - logt.mean(dim=(1, 2, 3), keepdim=True)


def layout_changes(before: torch.Tensor, after: torch.Tensor) -> list[float]:
    """Mean absolute change between layout thumbnails (a scene cut where above the threshold)."""
    return (after - before).abs().mean(dim=(1, 2, 3)).tolist()


def scene_segments(frames: torch.Tensor, threshold: float = SCENE_CUT_THRESHOLD) -> list[tuple[int, int]]:
    """[(start, stop), ...] runs of frames without a scene cut between neighbours."""
    b = frames.shape[0]
    if b < 2:
        return [(0, b)]
    logt = layout_thumbnails(frames)
    cuts = [i + 1 for i, c in enumerate(layout_changes(logt[:-1], logt[1:])) if c > threshold]
    bounds = [0] + cuts + [b]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def gaussian_weights(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    return torch.exp(-0.5 * (k / sigma) ** 2)


class LightSmoother:
    """Streamed temporal smoothing: :meth:`push` each frame's light map [1, 1, H, W] with the
    frame [1, C, H, W]; it returns the smoothed maps that are complete (in frame order, each at
    most ``radius`` frames after its own push); :meth:`finish` returns the rest. ``sigma`` in
    frames; <= 0: maps come back unchanged. Holds at most ``2 * radius + 1`` maps."""

    def __init__(self, sigma: float, threshold: float = SCENE_CUT_THRESHOLD):
        self.sigma, self.threshold = float(sigma), threshold
        self.weights = gaussian_weights(self.sigma) if self.sigma > 0 else None
        self.radius = (len(self.weights) - 1) // 2 if self.sigma > 0 else 0
        self.pushed = 0
        self._first_light = None   # a one-frame video comes back unchanged (like a one-frame batch)
        self._layout = None        # the previous frame's layout thumbnail
        self._reset_segment()

    def _reset_segment(self) -> None:
        self._log_r: list[torch.Tensor] = []       # kept frames of the segment, oldest first
        self._log_level: list[torch.Tensor] = []
        self._offset = 0  # segment index of _log_r[0]
        self._count = 0   # frames pushed in this segment
        self._next = 0    # segment index of the next map to return

    def push(self, light: torch.Tensor, frame: torch.Tensor) -> list[torch.Tensor]:
        if self.weights is None:
            return [light]
        self.pushed += 1
        self._first_light = light if self.pushed == 1 else None
        layout = layout_thumbnails(frame)
        done = []
        if self._layout is not None and layout_changes(self._layout, layout)[0] > self.threshold:
            done = self._ready(final=True)
            self._reset_segment()
        self._layout = layout
        log_level = frame_levels(frame).to(light.device, torch.float32).view(1, 1, 1, 1).log()
        self._log_r.append(light.float().clamp_min(LIGHT_FLOOR).log() - log_level)
        self._log_level.append(log_level)
        self._count += 1
        return done + self._ready(final=False)

    def finish(self) -> list[torch.Tensor]:
        """The maps still held back (the last ``radius`` frames); the smoother is then empty."""
        if self.weights is None:
            return []
        out = self._ready(final=True)
        self._reset_segment()
        self._layout, self.pushed, self._first_light = None, 0, None
        return out

    def _ready(self, final: bool) -> list[torch.Tensor]:
        """Maps whose window is complete: all look-ahead frames seen, or the segment has ended."""
        r, out = self.radius, []
        if final and self.pushed == 1 and self._next == 0:
            self._next = 1
            return [self._first_light]
        while self._next < self._count and (final or self._next + r < self._count):
            t = self._next
            lo, hi = max(0, t - r), min(self._count, t + r + 1)
            ww = self.weights[lo - t + r: hi - t + r]
            ww = (ww / ww.sum()).to(self._log_r[0].device, torch.float32).view(-1, 1, 1, 1)
            window = torch.cat(self._log_r[lo - self._offset: hi - self._offset])
            out.append(((window * ww).sum(0, keepdim=True) + self._log_level[t - self._offset]).exp())
            self._next += 1
            drop = max(0, self._next - r - self._offset)  # frames no later window needs
            del self._log_r[:drop], self._log_level[:drop]
            self._offset += drop
        return out


def smooth_light(light: torch.Tensor, frames: torch.Tensor, sigma: float,
                 threshold: float = SCENE_CUT_THRESHOLD) -> torch.Tensor:
    """Temporally smoothed light maps [B, 1, H, W] of consecutive frames [B, C, H, W] (see module
    doc). ``sigma`` in frames; <= 0: unchanged."""
    b = light.shape[0]
    if sigma <= 0 or b < 2:
        return light
    smoother = LightSmoother(sigma, threshold)
    out = []
    for t in range(b):
        out += smoother.push(light[t:t + 1], frames[t:t + 1])
    out += smoother.finish()
    return torch.cat(out)
