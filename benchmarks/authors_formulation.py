"""The authors' inference, re-implemented for benchmarking (not their code).

This mirrors how the CLIP-LIT test script runs the released model, so our
benchmarks can compare against it in the same process:

* a plain ``nn.Module`` with non-inplace ``nn.LeakyReLU(0.2)`` / ``nn.ReLU``
  modules and ``padding_mode='reflect'`` convolutions (the test variant);
* the pyramid pooling upsamples each branch with
  ``F.interpolate(mode='bilinear', align_corners=True)`` and concatenates;
* ``torch.no_grad()`` (not inference mode), float32, NCHW, whole image;
* the result is ``clamp(x / L, 0, 1)`` (no floor: L == 0 gives NaN there).

The state-dict keys are the authors' (``cond1``, ``ResidualBlock1.conv1`` ...,
``PPM1.features.{i}.{1,2}``, ``PPM1.fuse.{0,1}``), so the official weights load
into it after stripping ``module.``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AuthorsResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False, padding_mode="reflect")
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False, padding_mode="reflect")
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x):
        out = self.lrelu(self.conv1(x))
        out = self.conv2(out)
        return self.lrelu(out + x)


class AuthorsPPM(nn.Module):
    def __init__(self, in_dim: int = 32, reduction_dim: int = 8, bins=(1, 2, 3, 6)):
        super().__init__()
        self.features = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_dim, reduction_dim, 1, bias=False), nn.PReLU())
            for b in bins
        )
        self.fuse = nn.Sequential(nn.Conv2d(in_dim + reduction_dim * len(bins), in_dim, 3, padding=1, bias=False),
                                  nn.PReLU())

    def forward(self, x):
        size = x.size()
        out = [x]
        for f in self.features:
            out.append(F.interpolate(f(x), size[2:], mode="bilinear", align_corners=True))
        return self.fuse(torch.cat(out, 1))


class AuthorsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.cond1 = nn.Conv2d(3, 32, 3, 1, 1, bias=True, padding_mode="reflect")
        self.cond_add1 = nn.Conv2d(32, 1, 3, 1, 1, bias=True, padding_mode="reflect")
        self.condx = nn.Conv2d(32, 64, 3, 1, 1, bias=True, padding_mode="reflect")
        self.condy = nn.Conv2d(64, 32, 3, 1, 1, bias=True, padding_mode="reflect")
        self.lrelu = nn.LeakyReLU(0.2)
        self.relu = nn.ReLU()
        self.ResidualBlock1 = AuthorsResidualBlock(32)
        self.ResidualBlock2 = AuthorsResidualBlock(32)
        self.ResidualBlock3 = AuthorsResidualBlock(64)
        self.ResidualBlock4 = AuthorsResidualBlock(64)
        self.ResidualBlock5 = AuthorsResidualBlock(32)
        self.ResidualBlock6 = AuthorsResidualBlock(32)
        self.PPM1 = AuthorsPPM(32, 8, (1, 2, 3, 6))

    def forward(self, x):
        y = self.lrelu(self.cond1(x))
        y = self.ResidualBlock2(self.ResidualBlock1(y))
        y = self.PPM1(y)
        y = self.condx(y)
        y = self.ResidualBlock4(self.ResidualBlock3(y))
        y = self.condy(y)
        y = self.ResidualBlock6(self.ResidualBlock5(y))
        return self.relu(self.cond_add1(y))


def load_authors_net(path, device="cpu") -> AuthorsNet:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    net = AuthorsNet()
    net.load_state_dict(sd)
    return net.to(device).eval()


def authors_enhance(net: AuthorsNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(enhanced, light) of a float32 NCHW batch already on the net's device."""
    with torch.no_grad():
        light = net(x)
        return torch.clamp(x / light, 0, 1), light
