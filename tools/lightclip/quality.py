"""Full-reference image quality: PSNR and SSIM of results against their ground truth.

Both take ``[N, 3, H, W]`` float images in 0..1 and return one value per image (``[N]``):

* PSNR in dB over all channels (peak 1);
* SSIM (Wang et al. 2004): 11 x 11 Gaussian windows of sigma 1.5 over each channel, the
  constants ``(0.01)^2`` and ``(0.03)^2``, only windows wholly inside the image ("valid"),
  averaged over the channels and the windows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def _check(result: torch.Tensor, truth: torch.Tensor) -> None:
    if result.shape != truth.shape or result.dim() != 4:
        raise ValueError(f"need two [N, C, H, W] batches of the same shape, got {tuple(result.shape)} and "
                         f"{tuple(truth.shape)}")


def psnr(result: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``[N]`` PSNR in dB (an exact match gives 100 dB rather than infinity)."""
    _check(result, truth)
    mse = (result.double() - truth.double()).square().flatten(1).mean(1).clamp_min(1e-10)
    return (10.0 * torch.log10(1.0 / mse)).float()


def _gaussian_window(channels: int) -> torch.Tensor:
    i = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-i.square() / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim(result: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``[N]`` mean SSIM (images at least 11 x 11 pixels)."""
    _check(result, truth)
    if min(result.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels")
    x, y = result.double(), truth.double()
    c = x.shape[1]
    w = _gaussian_window(c)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2))
    return s.flatten(1).mean(1).float()
