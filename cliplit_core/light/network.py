"""The CLIP-LIT enhancement network (docs/design.md, "The enhancement network").

A fully convolutional, full-resolution network that predicts a one-channel
illumination map ``L``; the enhanced image is ``clamp(I / L, 0, 1)``.
Module and parameter names match the authors' state dicts, so their weights
load after stripping the ``module.`` prefix of ``nn.DataParallel``.

The forward pass is split into :meth:`CLIPLITNet.stem` (everything before the
global pyramid pooling) and :meth:`CLIPLITNet.head` (the pooling fusion and all
later layers) so that the tiled path can compute the global pooling context
once and inject it tile by tile. The layer order of both parts is written down
once, in :data:`STEM_LAYERS` and :data:`HEAD_LAYERS`: this module (autograd:
training and the reference) and ``fastnet`` (inference) both run those tables.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PADDING_VARIANTS = ("reflect", "zero")
PPM_BINS = (1, 2, 3, 6)
# 3x3 convs before the pyramid pooling (cond1 + 2 residual blocks) and after it
# (fuse, condx, 2 blocks, condy, 2 blocks, cond_add1): the halos tiling needs.
STEM_HALO = 5
HEAD_HALO = 12
TOTAL_HALO = STEM_HALO + HEAD_HALO

# The layer order, (module name, activation after it), for every execution of the network.
# The pyramid pooling (PPM1) sits between the two; residual blocks carry their own activations.
STEM_LAYERS = (("cond1", "lrelu"), ("ResidualBlock1", None), ("ResidualBlock2", None))
HEAD_LAYERS = (("condx", None), ("ResidualBlock3", None), ("ResidualBlock4", None), ("condy", None),
               ("ResidualBlock5", None), ("ResidualBlock6", None), ("cond_add1", "relu"))
LRELU_SLOPE = 0.2


def activate(y: torch.Tensor, act: str | None) -> torch.Tensor:
    """A layer table's activation, in place: "lrelu" (slope 0.2), "relu" or None."""
    if act == "lrelu":
        return F.leaky_relu(y, LRELU_SLOPE, inplace=True)
    if act == "relu":
        return F.relu(y, inplace=True)
    return y


def _conv3x3(cin: int, cout: int, bias: bool, reflect: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=bias, padding_mode="reflect" if reflect else "zeros")


class ResidualBlock(nn.Module):
    """``y = lrelu(conv2(lrelu(conv1(x))) + x)``; reflect padding, no bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv3x3(channels, channels, bias=False, reflect=True)
        self.conv2 = _conv3x3(channels, channels, bias=False, reflect=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), LRELU_SLOPE, inplace=True)
        y = self.conv2(y)
        return F.leaky_relu(y.add_(x), LRELU_SLOPE, inplace=True)


def bilinear_align_corners_weights(out_size: int, in_size: int, start: int, stop: int,
                                   dtype: torch.dtype, device) -> torch.Tensor:
    """Rows ``start:stop`` of the [out_size, in_size] matrix that
    ``F.interpolate(mode='bilinear', align_corners=True)`` applies along one axis."""
    idx = torch.arange(start, stop, device=device, dtype=torch.float64)
    if out_size > 1 and in_size > 1:
        src = idx * ((in_size - 1) / (out_size - 1))
    else:
        src = torch.zeros_like(idx)
    lo = src.floor().clamp_(0, in_size - 1)
    frac = src - lo
    lo = lo.long()
    hi = (lo + 1).clamp_(max=in_size - 1)
    w = torch.zeros(stop - start, in_size, dtype=torch.float64, device=device)
    w.scatter_add_(1, lo[:, None], (1 - frac)[:, None])
    w.scatter_add_(1, hi[:, None], frac[:, None])
    return w.to(dtype)


class PPM(nn.Module):
    """Pyramid pooling (in 32, reduction 8, bins 1,2,3,6) as in the authors' ``PPM1``."""

    def __init__(self, in_dim: int = 32, reduction_dim: int = 8, bins: Sequence[int] = PPM_BINS):
        super().__init__()
        self.bins = tuple(bins)
        self.features = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_dim, reduction_dim, 1, bias=False), nn.PReLU())
            for b in self.bins
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(in_dim + reduction_dim * len(self.bins), in_dim, 3, padding=1, bias=False), nn.PReLU()
        )

    def branch_outputs(self, pooled: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Apply each branch's 1x1 conv + PReLU to its pooled map ([N, C, b, b])."""
        return [f[2](f[1](p)) for f, p in zip(self.features, pooled)]

    def context(self, branches: Sequence[torch.Tensor], full_hw: tuple[int, int],
                window: tuple[int, int, int, int]) -> torch.Tensor:
        """Upsampled branch outputs for the window ``(y0, y1, x0, x1)`` of an image of
        size ``full_hw`` -- exactly the crop of the whole-image bilinear upsampling."""
        H, W = full_hw
        y0, y1, x0, x1 = window
        outs = []
        for br in branches:
            b_h, b_w = br.shape[-2:]
            ry = bilinear_align_corners_weights(H, b_h, y0, y1, br.dtype, br.device)
            rx = bilinear_align_corners_weights(W, b_w, x0, x1, br.dtype, br.device)
            outs.append(torch.einsum("yi,ncij,xj->ncyx", ry, br, rx))
        return torch.cat(outs, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            size = x.shape[-2:]
            context = torch.cat(
                [F.interpolate(f(x), size, mode="bilinear", align_corners=True) for f in self.features], 1
            )
        return self.fuse(torch.cat([x, context.to(x.dtype)], 1))


class CLIPLITNet(nn.Module):
    """Predicts the illumination map ``L`` (N x 1 x H x W, >= 0) of an RGB batch in 0..1."""

    def __init__(self, padding: str = "reflect"):
        super().__init__()
        if padding not in PADDING_VARIANTS:
            raise ValueError(f"padding must be one of {PADDING_VARIANTS}, got {padding!r}")
        self.padding = padding
        outer = padding == "reflect"
        self.cond1 = _conv3x3(3, 32, bias=True, reflect=outer)
        self.ResidualBlock1 = ResidualBlock(32)
        self.ResidualBlock2 = ResidualBlock(32)
        self.PPM1 = PPM(32, 8, PPM_BINS)
        self.condx = _conv3x3(32, 64, bias=True, reflect=outer)
        self.ResidualBlock3 = ResidualBlock(64)
        self.ResidualBlock4 = ResidualBlock(64)
        self.condy = _conv3x3(64, 32, bias=True, reflect=outer)
        self.ResidualBlock5 = ResidualBlock(32)
        self.ResidualBlock6 = ResidualBlock(32)
        self.cond_add1 = _conv3x3(32, 1, bias=True, reflect=outer)

    def _run(self, layers, y: torch.Tensor) -> torch.Tensor:
        for name, act in layers:
            y = activate(getattr(self, name)(y), act)
        return y

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Features before the pyramid pooling (receptive radius ``STEM_HALO``)."""
        return self._run(STEM_LAYERS, x)

    def head(self, feats: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Everything from the pooling fusion on (receptive radius ``HEAD_HALO``)."""
        return self._run(HEAD_LAYERS, self.PPM1(feats, context))

    def pooling_context(self, feats: torch.Tensor) -> torch.Tensor:
        """The pyramid pooling's upsampled branches for the whole image of stem features ``feats``,
        as two small matrix products per branch (:meth:`PPM.context`) instead of ``F.interpolate``."""
        h, w = feats.shape[-2:]
        return self.PPM1.context([f(feats) for f in self.PPM1.features], (h, w), (0, h, 0, w))

    def forward(self, x: torch.Tensor, separable_upsampling: bool = False) -> torch.Tensor:
        """Light map of ``x``. ``separable_upsampling``: upsample the pooling branches with
        :meth:`pooling_context` (same values up to float rounding). Its backward is a matmul
        instead of ``interpolate``'s backward, which scatters every output pixel into a few input
        pixels with atomics (78 % of an H100 training step): what training uses."""
        feats = self.stem(x)
        return self.head(feats, self.pooling_context(feats) if separable_upsampling else None)
