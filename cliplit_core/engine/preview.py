"""Fast preview: the light map predicted at reduced resolution, calibrated on a few exact windows.

The image is area-downsampled by ``scale`` (per side) and the network predicts the light
map ``L_lo`` there. Run on a smaller image the network's 3x3 convolutions see different
texture, so ``L_lo`` is biased (not noisy: the exact map is smooth). The bias is corrected
per image (``calibrate=True``, default): the exact full-resolution light map is computed on
a sparse stratified grid of small windows (cores of ``CAL_CORE`` pixels covering about
``CAL_FRAC`` of the image but at least ``CAL_MIN_PIXELS`` pixels, each with the network's
17-pixel halo and the pyramid-pooling context of the low-resolution pass), and a 4-parameter
model

    log L = a + b log L_lo + c log Y + d log L_lo log Y      (Y: mean of the RGB, low-res)

is fitted there by least squares weighted by the output's sensitivity, applied at low
resolution and upsampled bilinearly in log space. Measured on the backlit photos: docs/performance.md,
"Fast preview".

Without calibration (``calibrate=False``) a fast guided filter (He & Sun 2015) carries the
raw ``L_lo`` back to full size:
local linear models ``log L ~ a . I + b`` are fitted at low resolution with the
low-resolution colour image as guide (box filters by cumulative sums, float64 at the
low resolution; float32 on Apple MPS), their coefficients are upsampled bilinearly and
applied to the full-resolution image. The light map is smooth, so the filter mostly keeps edges of
the image crisp in ``L``; the preview's deviation from the exact result comes from the
network itself, whose convolutions respond differently to a smaller image (measured
in benchmarks/bench_preview.py and docs/performance.md).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..light import fastnet
from .inference import (LIGHT_FLOOR, EnhanceResult, _backend_flags, compose, enhance, network_input, predict_light,
                        resolve_tile, sanitize, split_channels)
from ..light.network import TOTAL_HALO, CLIPLITNet
from .precision import compute_dtype
from .run_plan import steps_per_call
from .tile_setting import TileSetting
from ..light.tiling import Progress, pooling_context
from ..validation import STRENGTH, check_number

DEFAULT_SCALE = 4.0   # downsampling factor per side (measured trade-off: docs/performance.md)
DEFAULT_RADIUS = 4    # guided-filter radius, in low-resolution pixels
DEFAULT_EPS = 1e-4    # guided-filter regularisation (guide in 0..1)
MIN_LOW_SIDE = 32     # never predict on fewer pixels per side than this
MIN_LOW_PIXELS = 256 * 256  # nor on fewer pixels than this: small images get a smaller factor (below 4 at
                            # under ~1 MP; measured on photos of 0.14-0.8 MP: docs/performance.md)
CAL_CORE = 64         # core side (full-resolution pixels) of an exact calibration window
CAL_FRAC = 0.02       # fraction of the image covered by calibration cores (+ halos: ~5 % of exact cost)
CAL_MIN_PIXELS = 15 * CAL_CORE ** 2  # but at least this many core pixels (= 2 % of 3 MP): on small
                                     # images a few windows miss whole regions of the picture
CAL_MAX_FRAC = 0.5
CAL_CHUNK = 8         # calibration windows per network call


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel, windows clipped at the borders
    (two cumulative sums; [B, C, H, W])."""
    for dim in (2, 3):
        n = x.shape[dim]
        c = torch.cumsum(x, dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim)
        idx = torch.arange(n, device=x.device)
        hi, lo = (idx + r + 1).clamp(max=n), (idx - r).clamp(min=0)
        shape = [1] * x.dim()
        shape[dim] = n
        x = (c.index_select(dim, hi) - c.index_select(dim, lo)) / (hi - lo).to(x.dtype).view(shape)
    return x


def _solve3(s: list[list[torch.Tensor]], v: torch.Tensor) -> torch.Tensor:
    """Per-pixel solution of the symmetric 3x3 systems ``s @ a = v`` (Cramer / adjugate)."""
    (a, b, c), (_, d, e), (_, _, f) = s
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    v0, v1, v2 = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    return torch.cat([c00 * v0 + c01 * v1 + c02 * v2,
                      c01 * v0 + c11 * v1 + c12 * v2,
                      c02 * v0 + c12 * v1 + c22 * v2], 1) / det


def guided_upsample(guide_lo: torch.Tensor, p_lo: torch.Tensor, guide_hi: torch.Tensor,
                    radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Fast guided filter with a colour guide: ``p_lo`` [B, 1, h, w] -> [B, 1, H, W] following
    ``guide_hi`` [B, 3, H, W] (``guide_lo`` is its low-resolution version)."""
    acc = torch.float32 if guide_lo.device.type == "mps" else torch.float64  # MPS has no float64
    g = guide_lo.to(acc)
    p = p_lo.to(acc)
    mg, mp = box_mean(g, radius), box_mean(p, radius)
    cov = box_mean(g * p, radius) - mg * mp
    s = [[None] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(i, 3):
            s[i][j] = box_mean(g[:, i:i + 1] * g[:, j:j + 1], radius) - mg[:, i:i + 1] * mg[:, j:j + 1]
            if i == j:
                s[i][j] = s[i][j] + eps
    a = _solve3(s, cov)
    b = mp - (a * mg).sum(1, keepdim=True)
    coef = torch.cat([box_mean(a, radius), box_mean(b, radius)], 1).float()
    coef = F.interpolate(coef, size=guide_hi.shape[-2:], mode="bilinear", align_corners=False)
    return (coef[:, :3] * guide_hi).sum(1, keepdim=True).add_(coef[:, 3:])


def effective_scale(h: int, w: int, scale: float) -> float:
    """The downsampling factor actually used: at most ``scale``, keeping >= MIN_LOW_SIDE pixels
    per side and >= MIN_LOW_PIXELS pixels in all (1 = exact)."""
    return max(1.0, min(float(scale), min(h, w) / MIN_LOW_SIDE, math.sqrt(h * w / MIN_LOW_PIXELS)))


def calibration_fraction(H: int, W: int, frac: float = CAL_FRAC) -> float:
    """Share of the image the calibration cores cover: ``frac``, raised to CAL_MIN_PIXELS core pixels
    on small images (at most CAL_MAX_FRAC)."""
    return min(CAL_MAX_FRAC, max(frac, CAL_MIN_PIXELS / max(H * W, 1)))


def calibration_blocks(h: int, w: int, H: int, W: int, core: int = CAL_CORE,
                       frac: float = CAL_FRAC) -> list[tuple[int, int, int, int]]:
    """Low-resolution blocks ``(y0, y1, x0, x1)`` of the calibration windows: a stratified grid of
    square blocks (``core`` full-resolution pixels per side) covering about ``frac`` of the image,
    kept TOTAL_HALO full-resolution pixels away from the borders (empty if the image is too small)."""
    fy, fx = H / h, W / w
    b = max(2, round(core / max(fy, fx)))
    n = max(4, math.ceil(frac * h * w / (b * b)))
    gy = max(1, round(math.sqrt(n * h / w)))
    gx = max(1, math.ceil(n / gy))
    lo_y, hi_y = math.ceil(TOTAL_HALO / fy), math.floor((H - TOTAL_HALO) / fy) - b
    lo_x, hi_x = math.ceil(TOTAL_HALO / fx), math.floor((W - TOTAL_HALO) / fx) - b
    if hi_y < lo_y or hi_x < lo_x:
        return []
    out = []
    for i in range(gy):
        for j in range(gx):
            y0 = min(max(int((i + 0.5) * h / gy - b / 2), lo_y), hi_y)
            x0 = min(max(int((j + 0.5) * w / gx - b / 2), lo_x), hi_x)
            out.append((y0, y0 + b, x0, x0 + b))
    return out


def _exact_blocks(fw: fastnet.FastWeights, rgb: torch.Tensor, blocks, fy: float, fx: float,
                  branches: list[torch.Tensor], step=None) -> torch.Tensor:
    """Exact light map of each block's full-resolution core (pooling context ``branches``), area-
    resampled to the block: [n, 1, b, b] float32 on rgb's device. ``rgb`` is one image [1, 3, H, W]."""
    H, W = rgb.shape[-2:]
    b = blocks[0][1] - blocks[0][0]
    cores = [(round(y0 * fy), round(y1 * fy), round(x0 * fx), round(x1 * fx)) for y0, y1, x0, x1 in blocks]
    ch, cw = max(c[1] - c[0] for c in cores), max(c[3] - c[2] for c in cores)
    wins = [(c[0] - TOTAL_HALO, c[0] + ch + TOTAL_HALO, c[2] - TOTAL_HALO, c[2] + cw + TOTAL_HALO) for c in cores]
    inner = (False, False, False, False)  # windows never touch the image border
    res = []
    for k in range(0, len(wins), CAL_CHUNK):
        part = wins[k:k + CAL_CHUNK]
        xb = torch.cat([rgb[:, :, y0:y1, x0:x1] for y0, y1, x0, x1 in part], 0)
        out, _ = fastnet.light_map(fw, xb, branches, (H, W), part, inner)
        out = out[:, :, TOTAL_HALO:TOTAL_HALO + ch, TOTAL_HALO:TOTAL_HALO + cw].to(rgb.device, torch.float32)
        res.append(F.interpolate(out, size=(b, b), mode="area"))
        if step is not None:
            step()
    return torch.cat(res, 0)


def _features(log_l: torch.Tensor, log_y: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.ones_like(log_l), log_l, log_y, log_l * log_y], -1)


def fit_calibration(low: torch.Tensor, log_lo: torch.Tensor, blocks, target: torch.Tensor) -> torch.Tensor:
    """Coefficients (a, b, c, d), float64, of ``log L = a + b log L_lo + c log Y + d log L_lo log Y``
    fitted on the blocks (``target``: their exact light map), each pixel weighted by the
    sensitivity of the clamped output ``I / L`` to ``log L``. Falls back to the identity."""
    log_y = low.mean(1).clamp_min(1e-3).log().double()[0]
    ll = log_lo.double()[0, 0]
    feats, logs, weights = [], [], []
    for (y0, y1, x0, x1), t in zip(blocks, target):
        lt = t[0].double().clamp_min(LIGHT_FLOOR)
        feats.append(_features(ll[y0:y1, x0:x1], log_y[y0:y1, x0:x1]).reshape(-1, 4))
        logs.append(lt.log().reshape(-1))
        q = low[0, :, y0:y1, x0:x1].double() / lt
        weights.append((q * (q < 1)).pow(2).sum(0).add(1e-4).sqrt().reshape(-1))
    a = torch.cat(feats) * torch.cat(weights)[:, None]
    rhs = torch.cat(logs) * torch.cat(weights)
    identity = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    ata = a.T @ a
    lam = 1e-6 * ata.diagonal().mean()
    coef = torch.linalg.solve(ata + lam * torch.eye(4, dtype=ata.dtype), a.T @ rhs + lam * identity)
    return coef if bool(torch.isfinite(coef).all()) else identity


def _low_light(fw: fastnet.FastWeights, low: torch.Tensor, tile, device, dtype, progress):
    """Light map of the low-resolution image (float32, on low's device) and its pooling branches."""
    h, w = low.shape[-2:]
    if tile is not None and not (tile >= h and tile >= w):
        light = predict_light(fw, low, tile=tile, device=device, dtype=dtype, progress=progress)
        return light, pooling_context(fw, low, tile, device, dtype)
    with _backend_flags(fw.device, dtype):
        light, branches = fastnet.light_map(fw, low)
        light = light.to(low.device, torch.float32)
    if progress is not None:
        progress(1, 1)
    return light, branches


def low_resolution(H: int, W: int, scale: float = DEFAULT_SCALE) -> tuple[int, int]:
    """Size of the image the preview's network pass runs on (H, W itself when it is not downsampled)."""
    f = effective_scale(H, W, scale)
    return (H, W) if f <= 1.0 else (max(2, round(H / f)), max(2, round(W / f)))


def preview_steps(H: int, W: int, tile: int | None, scale: float = DEFAULT_SCALE, cal_core: int = CAL_CORE,
                  cal_frac: float = CAL_FRAC) -> int:
    """Progress steps of one image's preview: the low-resolution pass (one, or two per tile) and
    one per chunk of calibration windows."""
    h, w = low_resolution(H, W, scale)
    if (h, w) == (H, W):
        return steps_per_call(H, W, tile)
    blocks = calibration_blocks(h, w, H, W, cal_core, calibration_fraction(H, W, cal_frac))
    return steps_per_call(h, w, tile) + math.ceil(len(blocks) / CAL_CHUNK)


class _Steps:
    """Counts a preview's steps over its images and reports them as (done, total)."""

    def __init__(self, total: int, report: Progress | None):
        self.done, self.total, self.report = 0, total, report

    def add(self, n: int = 1) -> None:
        self.done += n
        if self.report is not None:
            self.report(self.done, self.total)

    def within(self):
        """A progress callback for a sub-pass (its own done/total), counted into this one."""
        base = self.done

        def update(done: int, total: int) -> None:
            self.done = base + done
            if self.report is not None:
                self.report(self.done, self.total)
        return update


@torch.inference_mode()
def preview_light(net: CLIPLITNet, rgb: torch.Tensor, *, scale: float = DEFAULT_SCALE,
                  radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS, device=None, dtype=None,
                  tile: int | None = None, progress: Progress | None = None, calibrate: bool = True,
                  cal_core: int = CAL_CORE, cal_frac: float = CAL_FRAC) -> torch.Tensor:
    """Approximate light map [B, 1, H, W] (float32, on rgb's device) of an RGB batch in 0..1.
    ``dtype`` resolves as a preview's (``auto``: see precision.py) on every branch."""
    device = torch.device(device) if device is not None else rgb.device
    dtype = compute_dtype(dtype, device, preview=True)
    H, W = rgb.shape[-2:]
    f = effective_scale(H, W, scale)
    if f <= 1.0:
        return predict_light(net, rgb, tile=tile, device=device, dtype=dtype, progress=progress)
    size = (max(2, round(H / f)), max(2, round(W / f)))
    low = F.interpolate(rgb, size=size, mode="area")
    if not calibrate:
        light_lo = predict_light(net, low, tile=tile, device=device, dtype=dtype, progress=progress)
        log_lo = light_lo.to(low.device).clamp_min(LIGHT_FLOOR).log()
        return guided_upsample(low, log_lo, rgb, radius, eps).exp_()
    fw = fastnet.weights_for(net, device, dtype)
    blocks = calibration_blocks(size[0], size[1], H, W, cal_core, calibration_fraction(H, W, cal_frac))
    steps = _Steps(rgb.shape[0] * (steps_per_call(*size, tile) + math.ceil(len(blocks) / CAL_CHUNK)), progress)
    out = []
    for i in range(rgb.shape[0]):  # one calibration per image
        lo_i = low[i:i + 1]
        light_lo, branches = _low_light(fw, lo_i, tile, device, dtype, steps.within())
        log_lo = light_lo.clamp_min(LIGHT_FLOOR).log()
        if blocks:
            with _backend_flags(fw.device, dtype):
                target = _exact_blocks(fw, rgb[i:i + 1], blocks, H / size[0], W / size[1], branches, steps.add)
            # the fit is tiny: on the CPU in float64 (MPS has no float64), applied in float32
            coef = fit_calibration(lo_i.cpu(), log_lo.cpu(), blocks, target.cpu()).to(log_lo.device, torch.float32)
            log_y = lo_i.mean(1).clamp_min(1e-3).log()[0]
            log_lo = (_features(log_lo[0, 0], log_y) @ coef)[None, None]
            out.append(F.interpolate(log_lo, size=(H, W), mode="bilinear", align_corners=False).exp_())
        else:  # too small for a window with its halo: uncalibrated, guided filter
            out.append(guided_upsample(lo_i, log_lo, rgb[i:i + 1], radius, eps).exp_())
    return torch.cat(out, 0)


def enhance_preview(net: CLIPLITNet, images: torch.Tensor, *, strength: float = 1.0, device=None,
                    dtype: torch.dtype | None = None, scale: float = DEFAULT_SCALE, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS, tile: TileSetting | int | str | None = "auto", memory_budget: int | None = None,
                    progress: Progress | None = None, calibrate: bool = True, cal_core: int = CAL_CORE,
                    cal_frac: float = CAL_FRAC) -> EnhanceResult:
    """Like :func:`cliplit_core.engine.inference.enhance` (same inputs, outputs, channels, alpha and
    strength handling) but with the light map from :func:`preview_light`. ``scale`` <= 1 gives
    the exact result; ``calibrate=False`` skips the exact calibration windows (faster, less
    faithful: guided-filter upsampling of the raw low-resolution light map)."""
    strength = check_number(STRENGTH, strength)
    setting = TileSetting.parse(tile)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    x = sanitize(images)
    color, alpha = split_channels(x)
    H, W = x.shape[-2:]
    dev = torch.device(device) if device is not None else x.device
    dt = compute_dtype(dtype, dev, preview=True)  # one resolution for every branch below
    f = effective_scale(H, W, scale)
    if f <= 1.0:
        return enhance(net, images, strength=strength, tile=setting, device=dev, dtype=dt,
                       memory_budget=memory_budget, progress=progress)
    rgb = network_input(color)
    low_hw = (max(2, round(H / f)), max(2, round(W / f)))
    tile = resolve_tile(setting, low_hw[0], low_hw[1], x.shape[0], dt, memory_budget)
    light = preview_light(net, rgb, scale=f, radius=radius, eps=eps, device=dev, dtype=dt, tile=tile,
                          progress=progress, calibrate=calibrate, cal_core=cal_core, cal_frac=cal_frac)
    return compose(color, alpha, light, strength)
