"""Inference-only execution of :class:`~cliplit_core.light.network.CLIPLITNet` (same maths, less memory traffic).

The module in ``network.py`` is the reference (and what training runs). This
file runs the same network for inference with three rewrites that keep the
result equal up to float rounding (about 1e-6 in float32):

* **Folded reflect padding.** Every reflect-padded 3x3 conv runs as a
  zero-padded conv (no padded copy of the activation), then only the output's
  border rows / columns that touch a *real image border* are recomputed from
  thin reflect-padded strips. Inside a tile the wrong (zero) padding at inner
  tile edges only corrupts the discarded halo, exactly as before.
* **Pyramid pooling without full-size temporaries.** The adaptive-average
  pools are two small matrix products with bin-membership matrices (no
  ``adaptive_avg_pool2d`` on a huge input), the branches run in float32, and
  instead of upsampling 4 branches to 32 full-size channels, concatenating and
  running the 64->32 fuse conv, the fuse conv is split:
  ``fuse(cat[x, up(B)]) = conv(x, W_x) + conv(up(B), W_B)``. The second term is
  a product of small separable matrices (bilinear rows x 3x3 taps x branch
  values) computed as one ``[h, 36] @ [36, w*32]`` matmul: ``context_map``.
* **In-place activations**, PReLU with one parameter as ``leaky_relu_``,
  optional channels-last memory format and half precision.

Everything works on any device; ``FastWeights`` holds the weights converted
once per call (the module itself is never modified).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import cancel
from .network import HEAD_LAYERS, LRELU_SLOPE, PPM_BINS, STEM_LAYERS, CLIPLITNet, ResidualBlock, \
    bilinear_align_corners_weights

Window = tuple[int, int, int, int]  # (y0, y1, x0, x1) in image coordinates
Sides = tuple[bool, bool, bool, bool]  # (top, bottom, left, right): which window edges are image borders
ALL_SIDES: Sides = (True, True, True, True)
_BIN_OFFSETS = tuple(sum(PPM_BINS[:k]) for k in range(len(PPM_BINS)))
_NBINROWS = sum(PPM_BINS)  # 12: rows of all bins stacked


@dataclass
class _Conv:
    weight: torch.Tensor
    bias: torch.Tensor | None
    reflect: bool
    fold: bool = True  # reflect padding folded into border strips (False: F.pad the whole input)


class FastWeights:
    """The network's weights on ``device`` in ``dtype`` (convs) and float32 (pooling branches)."""

    def __init__(self, net: CLIPLITNet, device, dtype: torch.dtype, channels_last: bool = False,
                 pad_in: int = 0, pad_out: int = 0, fold_padding: bool = True, out_fp32: bool = True):
        """``pad_in`` / ``pad_out``: run the first conv on ``pad_in`` input channels (the image
        plus zero channels) / the last conv with ``pad_out`` output channels (zero weights, only
        channel 0 is kept) -- tensor-core kernels want channel counts that are multiples of 8.
        ``fold_padding=False`` pads every reflect conv's input with ``F.pad`` instead (for comparison).
        ``out_fp32``: in half precision, run the last conv (32 -> 1 channels) in float32, so the
        light map is not rounded to 8 (bfloat16) / 11 (float16) significant bits; the image is
        divided by it, so that rounding would show directly (bfloat16 on a CPU: 99.58 % -> 100 %
        of pixels within 1/255 of float32 on a 0.8 MP crop, at the same speed)."""
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = bool(channels_last)
        self.pad_in = max(0, int(pad_in))
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def conv(m, reflect=None, cin=None, cout=None, dt=dtype) -> _Conv:
            w = m.weight.detach().to(device=self.device, dtype=dt)
            b = None if m.bias is None else m.bias.detach().to(device=self.device, dtype=dt)
            if cin and cin > w.shape[1]:
                w = torch.cat([w, w.new_zeros(w.shape[0], cin - w.shape[1], *w.shape[2:])], 1)
            if cout and cout > w.shape[0]:
                w = torch.cat([w, w.new_zeros(cout - w.shape[0], *w.shape[1:])], 0)
                b = None if b is None else torch.cat([b, b.new_zeros(cout - b.shape[0])])
            return _Conv(w.contiguous(memory_format=fmt), b,
                         m.padding_mode == "reflect" if reflect is None else reflect, bool(fold_padding))

        def layer(name: str, act: str | None, **kw):
            m = getattr(net, name)
            if isinstance(m, ResidualBlock):
                return (conv(m.conv1), conv(m.conv2)), None
            return conv(m, **kw), act

        first, last = STEM_LAYERS[0][0], HEAD_LAYERS[-1][0]
        self.out_dtype = torch.float32 if out_fp32 else dtype
        self.stem_layers = [layer(n, a, **({"cin": self.pad_in} if n == first else {})) for n, a in STEM_LAYERS]
        self.head_layers = [layer(n, a, **({"cout": pad_out, "dt": self.out_dtype} if n == last else {}))
                            for n, a in HEAD_LAYERS]
        fuse_w = net.PPM1.fuse[0].weight.detach()
        c = fuse_w.shape[0]
        self.fuse_x = _Conv(fuse_w[:, :c].to(device=self.device, dtype=dtype).contiguous(memory_format=fmt),
                            None, False)
        self.fuse_ctx = fuse_w[:, c:].to(device=self.device, dtype=torch.float32)  # [32, 32, 3, 3]
        self.fuse_slope = float(net.PPM1.fuse[1].weight.detach().reshape(-1)[0])
        self.branch_w = [f[1].weight.detach().to(device=self.device, dtype=torch.float32)
                         for f in net.PPM1.features]
        self.branch_slope = [f[2].weight.detach().to(device=self.device, dtype=torch.float32)
                             for f in net.PPM1.features]

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.pad_in > x.shape[1]:
            out = torch.zeros(x.shape[0], self.pad_in, *x.shape[2:], device=self.device, dtype=self.dtype)
            out = out.contiguous(memory_format=fmt)
            out[:, :x.shape[1]] = x.to(self.device, non_blocking=True)
            return out
        x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        return x.contiguous(memory_format=fmt)


# --------------------------------------------------------------------------- convolutions
def conv3x3(x: torch.Tensor, c: _Conv, sides: Sides = ALL_SIDES) -> torch.Tensor:
    """3x3 conv with padding 1; reflect padding is exact on the ``sides`` that are image borders."""
    if c.reflect and not c.fold:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), c.weight, c.bias)
    out = F.conv2d(x, c.weight, c.bias, padding=1)
    if not c.reflect:
        return out
    top, bottom, left, right = sides
    if top:
        out[:, :, :1] = F.conv2d(F.pad(x[:, :, :2], (1, 1, 1, 0), mode="reflect"), c.weight, c.bias)
    if bottom:
        out[:, :, -1:] = F.conv2d(F.pad(x[:, :, -2:], (1, 1, 0, 1), mode="reflect"), c.weight, c.bias)
    if left:
        out[:, :, :, :1] = F.conv2d(F.pad(x[:, :, :, :2], (1, 0, 1, 1), mode="reflect"), c.weight, c.bias)
    if right:
        out[:, :, :, -1:] = F.conv2d(F.pad(x[:, :, :, -2:], (0, 1, 1, 1), mode="reflect"), c.weight, c.bias)
    return out


def _residual(x: torch.Tensor, convs: tuple[_Conv, _Conv], sides: Sides) -> torch.Tensor:
    y = F.leaky_relu_(conv3x3(x, convs[0], sides), LRELU_SLOPE)
    cancel.check()
    z = conv3x3(y, convs[1], sides)
    del y
    return F.leaky_relu_(z.add_(x), LRELU_SLOPE)


def _run_layers(layers, y: torch.Tensor, sides: Sides) -> torch.Tensor:
    """The layers of a table (network.STEM_LAYERS / HEAD_LAYERS) as prepared by FastWeights."""
    for convs, act in layers:
        cancel.check()  # the host may stop the run between two layers
        if isinstance(convs, tuple):
            y = _residual(y, convs, sides)
        else:
            y = conv3x3(y.to(convs.weight.dtype), convs, sides)  # to(): only the float32 last conv converts
            if act == "lrelu":
                y = F.leaky_relu_(y, LRELU_SLOPE)
            elif act == "relu":
                y = F.relu_(y)
    return y


def stem(fw: FastWeights, x: torch.Tensor, sides: Sides = ALL_SIDES) -> torch.Tensor:
    """Features before the pyramid pooling of a window ``x`` already prepared by ``fw.prepare_input``."""
    return _run_layers(fw.stem_layers, x, sides)


def _unbox(v):
    return v.pop() if isinstance(v, list) else v


def head(fw: FastWeights, feats, ctx, sides: Sides = ALL_SIDES) -> torch.Tensor:
    """Light map of a window from its stem features and its ``context_map`` (modified in place).

    ``feats`` / ``ctx`` may be passed inside one-element lists, which are emptied: then their
    memory is released as soon as they are used up instead of when the caller returns."""
    feats, ctx = _unbox(feats), _unbox(ctx)
    cancel.check()
    y = F.conv2d(feats, fw.fuse_x.weight, None, padding=1)
    del feats
    y = F.leaky_relu_(y.add_(ctx), fw.fuse_slope)
    del ctx
    y = _run_layers(fw.head_layers, y, sides)
    return y[:, :1] if y.shape[1] > 1 else y  # zero-padded output channels (pad_out) dropped


# --------------------------------------------------------------------------- pyramid pooling
_BIN_CONST: dict = {}


def _bin_consts(device) -> tuple[torch.Tensor, torch.Tensor]:
    """(bin count b, bin index i) of the 12 stacked bin rows, cached per device (no host sync later)."""
    key = str(device)
    if key not in _BIN_CONST:
        b = torch.tensor([b for b in PPM_BINS for _ in range(b)], dtype=torch.int64)
        i = torch.tensor([i for b in PPM_BINS for i in range(b)], dtype=torch.int64)
        _BIN_CONST[key] = (b.to(device), i.to(device))
    return _BIN_CONST[key]


def acc_dtype(device) -> torch.dtype:
    """float64 for accumulating sums where the device has it (not on Apple MPS), else float32."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def bin_weights(n: int, start: int, stop: int, device, dtype=torch.float32) -> torch.Tensor:
    """[12, stop-start]: for every bin row of every pyramid level (1, 2, 3, 6 stacked), 1 where
    the position belongs to it (PyTorch's adaptive bins ``[floor(i*n/b), ceil((i+1)*n/b))``)."""
    b, i = _bin_consts(device)
    pos = torch.arange(start, stop, device=device)
    lo = torch.div(i * n, b, rounding_mode="floor")
    hi = -torch.div(-(i + 1) * n, b, rounding_mode="floor")
    return ((pos[None, :] >= lo[:, None]) & (pos[None, :] < hi[:, None])).to(dtype)


def bin_sizes(n: int, device="cpu") -> torch.Tensor:
    """[12]: the number of positions in every stacked bin row (computed on ``device``)."""
    b, i = _bin_consts(device)
    size = -torch.div(-(i + 1) * n, b, rounding_mode="floor") - torch.div(i * n, b, rounding_mode="floor")
    return size.to(acc_dtype(device))


def _pow2_scale(n: int) -> float:
    return 2.0 ** -max(0, int(n).bit_length() - 1)


def partial_bin_sums(feats: torch.Tensor, core: tuple[int, int, int, int], origin: tuple[int, int],
                     full_hw: tuple[int, int]) -> torch.Tensor:
    """Sums [N, C, 12, 12] (float64; float32 on MPS) of ``feats`` over the core window ``(y0, y1, x0, x1)``
    (image coordinates; the window starts at ``origin``) for every pair of bin rows / bin columns.

    Two matrix products with 0/1 membership matrices; in half precision they are scaled by
    powers of two (exact) to stay in range, and the second product runs in float32."""
    H, W = full_hw
    y0, y1, x0, x1 = core
    oy, ox = origin
    f = feats[:, :, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    N, C, h, w = f.shape
    dev, dt = f.device, f.dtype
    sy, sx = _pow2_scale(h), _pow2_scale(w)
    my = (bin_weights(H, y0, y1, dev) * sy).to(dt)   # [12, h], exact: 0/1 times a power of two
    mx = bin_weights(W, x0, x1, dev) * sx  # [12, w] float32
    acc = acc_dtype(dev)
    out = torch.empty(N, C, _NBINROWS, _NBINROWS, dtype=acc, device=dev)
    for n in range(N):
        if f.stride(1) == 1:  # channels last: rows are [w*C] contiguous runs with a row stride
            rows = f[n].permute(1, 2, 0)  # [h, w, C]
            s1 = (my @ rows.reshape(h, w * C)).float().reshape(_NBINROWS, w, C)  # [12, w, C]
            s2 = torch.matmul(mx, s1)  # [12(y), 12(x), C]
            out[n] = s2.permute(2, 0, 1).to(acc)
        else:
            s1 = torch.matmul(my, f[n]).float()  # [C, 12, w]
            s2 = torch.matmul(s1, mx.t())  # [C, 12, 12]
            out[n] = s2.to(acc)
    return out / (sy * sx)


def pooled_from_sums(sums: torch.Tensor, full_hw: tuple[int, int]) -> list[torch.Tensor]:
    """Adaptive-average-pool outputs [N, C, b, b] (float32) of every bin from accumulated sums."""
    H, W = full_hw
    area = bin_sizes(H, sums.device)[:, None] * bin_sizes(W, sums.device)[None, :]
    means = sums / area
    return [means[:, :, o:o + b, o:o + b].float() for o, b in zip(_BIN_OFFSETS, PPM_BINS)]


def branch_outputs(fw: FastWeights, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each branch's 1x1 conv + PReLU, in float32: [N, 8, b, b]."""
    return [F.prelu(F.conv2d(p.to(fw.device, torch.float32), w), a)
            for p, w, a in zip(pooled, fw.branch_w, fw.branch_slope)]


def _shifted_rows(n: int, start: int, stop: int, device) -> torch.Tensor:
    """[stop-start, 36]: bilinear (align_corners) rows of all bins for the positions one
    above / at / one below each window position, zero outside the window (zero padding)."""
    geo = device if torch.device(device).type in ("cpu", "cuda") else "cpu"  # float64 maths inside
    r = torch.cat([bilinear_align_corners_weights(n, b, start, stop, torch.float32, geo) for b in PPM_BINS], 1)
    r = r.to(device)
    z = torch.zeros(1, _NBINROWS, dtype=r.dtype, device=device)
    ext = torch.cat([z, r, z], 0)
    h = stop - start
    return torch.cat([ext[0:h], ext[1:h + 1], ext[2:h + 2]], 1)


def context_map(fw: FastWeights, branches: list[torch.Tensor], full_hw: tuple[int, int],
                window: tuple[int, int, int, int]) -> torch.Tensor:
    """``conv3x3_zero(bilinear_up(branches)[window], W_ctx)``: the fuse conv's context term for a
    window, [N, 32, h, w] in the compute dtype and memory format."""
    H, W = full_hw
    y0, y1, x0, x1 = window
    h, w = y1 - y0, x1 - x0
    dev = fw.device
    N = branches[0].shape[0]
    cout = fw.fuse_ctx.shape[0]
    # M[n, o, (dy, bin row), (dx, bin col)]: block diagonal over pyramid levels
    m = torch.zeros(N, cout, 3, _NBINROWS, 3, _NBINROWS, dtype=torch.float32, device=dev)
    for k, (o, b) in enumerate(zip(_BIN_OFFSETS, PPM_BINS)):
        br = branches[k].to(dev, torch.float32)
        cin = br.shape[1]
        wk = fw.fuse_ctx[:, k * cin:(k + 1) * cin]  # [cout, 8, 3, 3]
        m[:, :, :, o:o + b, :, o:o + b] = torch.einsum("ocyx,ncij->noyixj", wk, br)
    m = m.reshape(N, cout, 3 * _NBINROWS, 3 * _NBINROWS)
    ay = _shifted_rows(H, y0, y1, dev)  # [h, 36]
    ax = _shifted_rows(W, x0, x1, dev)  # [w, 36]
    dt = fw.dtype
    if fw.channels_last:
        t = torch.einsum("nokl,xl->nkxo", m, ax).to(dt).reshape(N, 3 * _NBINROWS, w * cout)
        g = torch.matmul(ay.to(dt), t)  # [N, h, w*cout]
        return g.reshape(N, h, w, cout).permute(0, 3, 1, 2)
    t = torch.einsum("nokl,xl->nokx", m, ax).to(dt)  # [N, cout, 36, w]
    return torch.matmul(ay.to(dt), t)  # [N, cout, h, w]


# --------------------------------------------------------------------------- the forward pass
def pooling_branches(fw: FastWeights, sums: torch.Tensor, full_hw: tuple[int, int]) -> list[torch.Tensor]:
    """The pyramid pooling's branch outputs ([N, 8, b, b] per bin, float32) of a whole image of
    size ``full_hw`` from the bin sums of its stem features (:func:`partial_bin_sums`, added up)."""
    return branch_outputs(fw, pooled_from_sums(sums, full_hw))


def light_map(fw: FastWeights, x: torch.Tensor, branches: list[torch.Tensor] | None = None,
              full_hw: tuple[int, int] | None = None, windows: list[Window] | None = None,
              sides: Sides = ALL_SIDES) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's forward pass for inference: stem -> pyramid pooling context -> head.

    Returns (light map ``[N, 1, h, w]`` in ``fw.out_dtype``, the pooling branches used).

    * Whole image (``branches`` None): ``x`` is an RGB batch ``[N, 3, H, W]`` (H, W >= 2); its
      own stem features give the pooling context.
    * Windows of a larger image: ``x`` holds, stacked along the batch in the order of
      ``windows`` (image coordinates ``(y0, y1, x0, x1)``), the window of each of the N images
      of size ``full_hw`` whose pooling ``branches`` (:func:`pooling_branches`) were computed
      beforehand; ``sides`` says which window edges are image borders (the same for all).
      Only a window's core (away from inner edges by ``network.TOTAL_HALO``) is exact.
    """
    x = fw.prepare_input(x)
    feats = stem(fw, x, sides)
    del x
    if branches is None:
        full_hw = tuple(feats.shape[-2:])
        windows = [(0, full_hw[0], 0, full_hw[1])]
        branches = pooling_branches(fw, partial_bin_sums(feats, windows[0], (0, 0), full_hw), full_hw)
    parts = [context_map(fw, branches, full_hw, win) for win in windows]
    ctx = [parts.pop() if len(parts) == 1 else torch.cat(parts, 0)]
    box = [feats]
    del feats, parts
    return head(fw, box, ctx, sides), branches


def forward(fw: FastWeights, x: torch.Tensor) -> torch.Tensor:
    """Light map [N, 1, H, W] (``fw.out_dtype``) of a whole image batch (H, W >= 2)."""
    return light_map(fw, x)[0]


# --------------------------------------------------------------------------- defaults
def default_options(device, dtype: torch.dtype) -> dict:
    """FastWeights options (channels_last, pad_in, pad_out, fold_padding) for a device and dtype.

    CPU: channels-last, faster than NCHW (measured: docs/performance.md). CUDA: NCHW,
    until the GPU is measured (docs/performance.md, "GPU"); benchmarks/bench_inference.py
    --device cuda compares all variants by passing prepared FastWeights to enhance()."""
    channels_last = torch.device(device).type == "cpu"
    return {"channels_last": channels_last, "pad_in": 0, "pad_out": 0, "fold_padding": True}


def weights_for(net, device, dtype: torch.dtype) -> FastWeights:
    """``net`` prepared for inference on ``device`` in ``dtype`` with the measured best options
    (a prepared :class:`FastWeights` is returned as it is)."""
    if isinstance(net, FastWeights):
        return net
    return FastWeights(net, device, dtype, **default_options(device, dtype))
