"""Exact tiled enhancement of an image kept in its file's own form (8 or 16 bits per channel).

A 100-megapixel photo is 300 MB as 8-bit RGB but 1.2 GB per float32 copy, and
the float path makes several (input, sanitized input, result, rounding
temporaries). Here only tiles are ever float: each window is converted from the
pixels when the network reads it, and each tile's result is rounded straight
into one 8/16-bit output buffer (and an 8-bit light map when asked for). The
numbers are the float path's: the same conversion, the same tiles
(:func:`tiling.light_tiles`) and the same per-pixel maths
(:func:`inference.compose`, :func:`imageio.to_uint8` / ``to_uint16``), so the
written files are identical byte for byte.
"""
from __future__ import annotations

import numpy as np
import torch

from ..files.images import to_float32, to_uint8, to_uint16
from .inference import compose, network_input, sanitize, split_channels
from ..light.tiling import Progress, Window, light_tiles


class PixelWindows:
    """A :class:`tiling.WindowSource` over H x W x C pixels (uint8, uint16 or float32)."""

    def __init__(self, pixels: np.ndarray):
        if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
            raise ValueError(f"expected H x W x C pixels with C in 1..4, got shape {pixels.shape}")
        self.pixels = pixels
        self.shape = (1, 3, pixels.shape[0], pixels.shape[1])

    def channels(self, win: Window) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(color [1, c, h, w], alpha or None) of a window, float32 in 0..1 like the float path."""
        y0, y1, x0, x1 = win
        x = torch.from_numpy(to_float32(self.pixels[y0:y1, x0:x1])).permute(2, 0, 1)[None]
        return split_channels(sanitize(x))

    def window(self, win: Window) -> torch.Tensor:
        return network_input(self.channels(win)[0])


def enhance_pixels(net, pixels: np.ndarray, *, tile: int, strength: float = 1.0, device=None,
                   dtype: torch.dtype = torch.float32, bits: int = 8, with_light: bool = False,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Enhance H x W x C pixels tile by tile: (result H x W x C as uint8 for ``bits`` 8 or uint16
    for 16, alpha passed through; light map H x W uint8 (clamped to 0..1) or None)."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    source = PixelWindows(pixels)
    device = torch.device(device) if device is not None else torch.device("cpu")
    H, W = pixels.shape[:2]
    if H < 2 or W < 2:
        raise ValueError(f"tiled enhancement needs at least 2 x 2 pixels, got {H} x {W}")
    quantize = to_uint8 if bits == 8 else to_uint16
    out = np.empty(pixels.shape, dtype=np.uint8 if bits == 8 else np.uint16)
    light = np.empty((H, W), dtype=np.uint8) if with_light else None
    for core, part in light_tiles(net, source, tile, device, dtype, progress):
        y0, y1, x0, x1 = core
        color, alpha = source.channels(core)
        res = compose(color, alpha, part.to("cpu", torch.float32), strength)
        out[y0:y1, x0:x1] = quantize(res.image[0].permute(1, 2, 0).numpy())
        if light is not None:
            light[y0:y1, x0:x1] = to_uint8(res.light[0, 0].clamp(0, 1).numpy())
    return out, light
