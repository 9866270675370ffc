"""Batch inference: images in, enhanced images and light maps out.

Images are tensors [B, C, H, W] in 0..1 with C = 1 (gray), 2 (gray + alpha),
3 (RGB) or 4 (RGBA); alpha is passed through untouched. ``strength`` scales
the correction in exposure (log) space: the result is ``I / L**strength``, so
1 is the authors' result, 0 returns the input, and values in between or up to 2
(validation.STRENGTH) move monotonically along the same path.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..light import fastnet
from ..light.network import TOTAL_HALO, CLIPLITNet
from .precision import compute_dtype
from .tile_setting import TileMode, TileSetting
from ..light.tiling import Progress, predict_light_tiled
from ..validation import STRENGTH, check_number

LIGHT_FLOOR = 1e-5  # the authors divide by L, which can be exactly 0 (ReLU)
MIN_TILE = 64
# Peak memory of a whole-image enhance() call, bytes per pixel per byte of element size:
# measured 231 (2.71 GiB above the process's resident size for a 3.1 MP photo, float32,
# CPU; benchmarks/bench_inference.py --device cpu). The live activations alone are 192
# channels (a 64-channel residual block's input, middle and output) plus the float32
# input and result. Not yet measured on a GPU (cuDNN workspaces come on top).
WHOLE_IMAGE_BYTES_PER_PIXEL_PER_ELEMENT_BYTE = 232
# cuDNN autotuning inside our calls (tiles have one shape per image, so it would run once per
# image size). Off until measured on a GPU: its trial workspaces can exceed the tiled path's
# memory bound on a first call. benchmarks/bench_inference.py --device cuda measures both.
CUDNN_BENCHMARK = False


@dataclass
class EnhanceResult:
    image: torch.Tensor  # [B, C, H, W] like the input, float32
    light: torch.Tensor  # [B, 1, H, W] float32, the raw illumination map (>= 0)


def sanitize(images: torch.Tensor) -> torch.Tensor:
    """Float32 copy with NaN -> 0, +Inf -> 1, -Inf -> 0, clamped to 0..1."""
    x = images.to(torch.float32)
    return torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)


def split_channels(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(color channels, alpha or None) of a [B, C, H, W] batch."""
    if x.dim() != 4:
        raise ValueError(f"expected a [B, C, H, W] batch, got shape {tuple(x.shape)}")
    c = x.shape[1]
    if c not in (1, 2, 3, 4):
        raise ValueError(f"images must have 1, 2, 3 or 4 channels, got {c}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"empty image batch {tuple(x.shape)}")
    if c in (2, 4):
        return x[:, : c - 1], x[:, c - 1:]
    return x, None


def network_input(color: torch.Tensor) -> torch.Tensor:
    return color.expand(-1, 3, -1, -1) if color.shape[1] == 1 else color


def apply_light(color: torch.Tensor, light: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """``clamp(color / max(L, floor) ** strength, 0, 1)``; never NaN or Inf."""
    l = light.to(color.dtype).clamp_min(LIGHT_FLOOR)
    if strength != 1.0:
        l = l.pow(float(strength))
    return torch.nan_to_num(color / l, nan=0.0, posinf=1.0).clamp_(0.0, 1.0)


def whole_image_bytes(h: int, w: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    elem = torch.empty((), dtype=dtype).element_size()
    return int(batch * h * w * WHOLE_IMAGE_BYTES_PER_PIXEL_PER_ELEMENT_BYTE * elem)


def tile_for_budget(budget_bytes: int, batch: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Largest tile edge whose window (tile + 2 halos) fits the memory budget."""
    per_px = whole_image_bytes(1, 1, batch, dtype)
    edge = int((max(budget_bytes, 0) / per_px) ** 0.5) - 2 * TOTAL_HALO
    return max(MIN_TILE, edge)


def choose_tile(h: int, w: int, batch: int, dtype: torch.dtype, budget_bytes: int | None) -> int | None:
    """None (whole image) when it fits the budget, else a tile size that does."""
    if budget_bytes is None or whole_image_bytes(h, w, batch, dtype) <= budget_bytes:
        return None
    return tile_for_budget(budget_bytes, batch, dtype)


def resolve_tile(setting: TileSetting, h: int, w: int, batch: int, dtype: torch.dtype,
                 budget_bytes: int | None) -> int | None:
    """The tile edge a parsed setting means for this batch: None (whole image), the fixed size,
    or for AUTO :func:`choose_tile` from the memory budget."""
    if setting.mode is TileMode.AUTO:
        return choose_tile(h, w, batch, dtype, budget_bytes)
    return setting.size


@torch.inference_mode()
def predict_light(net: CLIPLITNet, rgb: torch.Tensor, *, tile: int | None = None, device=None,
                  dtype: torch.dtype | None = None, progress: Progress | None = None) -> torch.Tensor:
    """Light map [B, 1, H, W] float32 on rgb's device; whole image when ``tile`` is None
    or covers the image, else exact tiling. ``dtype``: any precision.Precision value (None = automatic).
    The network module itself is not modified (its weights are copied to device / dtype)."""
    device = torch.device(device) if device is not None else rgb.device
    dtype = compute_dtype(dtype, device)
    H, W = rgb.shape[-2:]
    if H < 2 or W < 2:
        # reflect padding needs 2 pixels; duplicating a 1-pixel axis is the natural extension
        wide = rgb.repeat(1, 1, 2 if H < 2 else 1, 2 if W < 2 else 1)
        return predict_light(net, wide, tile=tile, device=device, dtype=dtype, progress=progress)[..., :H, :W]
    fw = fastnet.weights_for(net, device, dtype)
    with _backend_flags(device, dtype):
        if tile is None or (tile >= H and tile >= W):
            light = fastnet.forward(fw, rgb).to(rgb.device, torch.float32)
            if progress is not None:
                progress(1, 1)
            return light
        return predict_light_tiled(fw, rgb, tile, device=device, dtype=dtype, progress=progress)


@contextlib.contextmanager
def _backend_flags(device, dtype: torch.dtype):
    """CUDA backend flags for our calls only (the global settings are restored afterwards):
    float32 means float32 -- no TF32 tensor-core rounding in convs / matmuls (PyTorch enables
    it for cuDNN convs by default; it moved ~0.6 % of 8-bit pixels by one level on an H100) --
    and cuDNN autotuning as CUDNN_BENCHMARK says."""
    if torch.device(device).type != "cuda":
        yield
        return
    b = torch.backends
    old = b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32
    b.cudnn.benchmark = CUDNN_BENCHMARK or old[0]
    if dtype == torch.float32:
        b.cudnn.allow_tf32 = b.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = old


def compose(color: torch.Tensor, alpha: torch.Tensor | None, light: torch.Tensor, strength: float) -> EnhanceResult:
    """The enhanced images (light applied, alpha re-attached) and the light map."""
    out = apply_light(color, light, strength)
    if alpha is not None:
        out = torch.cat([out, alpha], 1)
    return EnhanceResult(out, light)


def enhance(net: CLIPLITNet, images: torch.Tensor, *, strength: float = 1.0,
            tile: TileSetting | int | str | None = "auto", device=None, dtype=None,
            memory_budget: int | None = None, progress: Progress | None = None) -> EnhanceResult:
    """Enhance a batch [B, C, H, W] in 0..1.

    ``tile``: anything :meth:`TileSetting.parse` accepts -- "auto" / 0 (whole image if it fits
    ``memory_budget`` bytes, else tiles), None / "none" (always whole image) or an int (tile edge
    in pixels). Results are float32 on the input's device; the network runs on ``device``
    (default: the input's) in ``dtype`` (any :class:`precision.Precision` value; None = automatic:
    float16 on CUDA, float32 elsewhere). A bad ``strength`` or ``tile`` raises
    validation.OptionError before any work.
    """
    strength = check_number(STRENGTH, strength)
    setting = TileSetting.parse(tile)
    x = sanitize(images)
    color, alpha = split_channels(x)
    rgb = network_input(color)
    device = torch.device(device) if device is not None else x.device
    dtype = compute_dtype(dtype, device)
    tile = resolve_tile(setting, x.shape[2], x.shape[3], x.shape[0], dtype, memory_budget)
    light = predict_light(net, rgb, tile=tile, device=device, dtype=dtype, progress=progress)
    return compose(color, alpha, light, strength)


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
