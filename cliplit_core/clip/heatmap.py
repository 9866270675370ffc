"""Spatial CLIP Light Score: score overlapping windows, blend them into a map.

The windows form a grid whose size has a fixed bound, whatever the image's shape:

* the window side is ``window`` times the *reference side*: the shorter image side,
  or half the longer side when that is more (so a 2048 x 8 strip is covered by 7
  long windows, not by thousands of 4-pixel squares); ``window`` may also be a side
  in pixels (an int);
* along each axis a window is at least :data:`MIN_WINDOW` pixels (or the whole
  axis, if shorter): smaller windows are upscaled many times to CLIP's input size
  and only add cost, so tiny images get fewer windows (1 x 1 gets one);
* windows overlap by at least half along each axis, spread evenly from border to
  border, and are rectangles where an axis is shorter than the side;
* when that grid has more than ``max_windows`` (default :data:`MAX_WINDOWS`)
  windows, the side grows until it has no more.

Each window is scored like a whole image (CLIP resizes it to its input size), and
each pixel gets the average of the windows covering it weighted by a tent that
peaks at the window's centre: the map has no block edges. See docs/heatmap.md.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .backbone import CLIPBackbone
from .scores import as_text_features, backlit_probability_from_features

MAX_WINDOWS = 64          # windows per image, whatever its shape and the window setting
MIN_WINDOW = 32           # pixels along an axis (or the whole axis when shorter)
MAX_ELONGATION = 2            # the reference side is at least the longer side / MAX_ELONGATION
BATCH_WINDOWS = 16        # windows per CLIP call: on_batch (progress, Cancel) runs after each
CHUNK_PIXELS = 1 << 25    # window pixels cropped at once (x3 channels x 4 bytes = 384 MiB)

OnBatch = Callable[[int, int], None]


@dataclass(frozen=True)
class HeatmapGrid:
    """Window size (``win_h`` x ``win_w``) and top / left positions of the heatmap's windows."""

    win_h: int
    win_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def boxes(self) -> list[tuple[int, int]]:
        """(top, left) of every window, row by row."""
        return [(y, x) for y in self.ys for x in self.xs]


def _axis(length: int, side: int) -> tuple[int, int]:
    """(window length, window count) along one axis: spacing at most half a window."""
    win = min(length, max(side, min(MIN_WINDOW, length)))
    return win, 1 if win >= length else math.ceil(2 * (length - win) / win) + 1


def _positions(length: int, win: int, count: int) -> tuple[int, ...]:
    if count == 1:
        return (0,)
    span = length - win  # first window at 0, last one touching the far border, evenly between
    return tuple((2 * i * span + count - 1) // (2 * (count - 1)) for i in range(count))


def window_side(height: int, width: int, window: float | int = 0.5) -> int:
    """The requested window side in pixels (before the minimum and the budget)."""
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
        raise ValueError(f"heatmap window must be a positive fraction or pixel count, got {window!r}")
    if isinstance(window, int):
        return window
    ref = max(min(height, width), max(height, width) // MAX_ELONGATION)
    return max(1, int(round(float(window) * ref)))


def heatmap_grid(height: int, width: int, window: float | int = 0.5,
                 max_windows: int = MAX_WINDOWS) -> HeatmapGrid:
    """The windows :func:`light_score_heatmap` scores on a ``height`` x ``width`` image
    (at most ``max_windows`` of them; see the module docstring for the rule)."""
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1 x 1 pixels, got {height} x {width}")
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}")

    def count(side: int) -> int:
        return _axis(height, side)[1] * _axis(width, side)[1]

    side = window_side(height, width, window)
    if count(side) > max_windows:  # grow the side: the count only falls as it grows
        lo, hi = side, max(height, width)  # count(hi) == 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if count(mid) <= max_windows else (mid, hi)
        side = hi
    (win_h, ny), (win_w, nx) = _axis(height, side), _axis(width, side)
    return HeatmapGrid(win_h, win_w, _positions(height, win_h, ny), _positions(width, win_w, nx))


def _tent(n: int, device) -> torch.Tensor:
    i = torch.arange(n, device=device, dtype=torch.float32)
    return 1.0 - (2.0 * (i + 0.5) / n - 1.0).abs()  # in (0, 1], peak at the centre


def light_score_heatmap(images: torch.Tensor, text, backbone: CLIPBackbone, *, window: float | int = 0.5,
                        max_windows: int = MAX_WINDOWS, batch_size: int = BATCH_WINDOWS, antialias: bool = False,
                        on_batch: OnBatch | None = None) -> torch.Tensor:
    """Spatial light score: ``[B, H, W]`` float32 in [0, 1] on the images' device (no autograd).

    ``images``: ``[B, 3, H, W]`` or ``[3, H, W]`` in [0, 1]; ``text``: a PromptPair or its
    text features. The windows are those of :func:`heatmap_grid` (the same for every image
    of the batch); at most ``batch_size`` window crops (and about 32 M pixels) go through
    CLIP at once. ``on_batch(done, total)`` is called after each such batch with the
    windows scored so far and their total; it may raise to stop the run.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    grid = heatmap_grid(images.shape[-2], images.shape[-1], window, max_windows)
    return heatmap_on_grid(images, text, backbone, grid, batch_size=batch_size, antialias=antialias,
                           on_batch=on_batch)


def heatmap_on_grid(images: torch.Tensor, text, backbone: CLIPBackbone, grid: HeatmapGrid, *,
                    batch_size: int = BATCH_WINDOWS, antialias: bool = False,
                    on_batch: OnBatch | None = None) -> torch.Tensor:
    """:func:`light_score_heatmap` over the windows of a grid already computed for these
    ``[B, 3, H, W]`` images (one :func:`heatmap_grid` call serves a whole batch)."""
    b, _, h, w = images.shape
    boxes, wh, ww = grid.boxes, grid.win_h, grid.win_w
    dev = images.device
    weight = _tent(wh, dev)[:, None] * _tent(ww, dev)[None, :]
    heat = torch.zeros(b, h, w, device=dev)
    norm = torch.zeros(h, w, device=dev)
    per_call = max(1, min(max(1, batch_size) // b, CHUNK_PIXELS // (wh * ww * b)))
    with torch.no_grad():
        tf = as_text_features(text, backbone)
        for i in range(0, len(boxes), per_call):
            chunk = boxes[i:i + per_call]
            crops = torch.cat([images[:, :, y:y + wh, x:x + ww] for y, x in chunk])  # [len(chunk) * B, 3, wh, ww]
            feats = backbone.image_features(crops, antialias=antialias)
            light = (1.0 - backlit_probability_from_features(feats, tf)).to(dev).view(len(chunk), b)
            for (y, x), s in zip(chunk, light):
                heat[:, y:y + wh, x:x + ww] += s[:, None, None] * weight
                norm[y:y + wh, x:x + ww] += weight
            if on_batch is not None:
                on_batch(i + len(chunk), len(boxes))
    return heat / norm
