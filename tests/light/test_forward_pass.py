"""One forward pass: the training execution (autograd, separable upsampling), the reference module and
the inference path (fastnet.light_map, whole image or windows with a given pooling context) agree."""
from __future__ import annotations

import torch

from cliplit_core.light import fastnet
from cliplit_core.light.network import HEAD_LAYERS, STEM_LAYERS, TOTAL_HALO, CLIPLITNet
from cliplit_core.light.tiling import window_sides


def _net(seed: int = 0, padding: str = "reflect") -> CLIPLITNet:
    torch.manual_seed(seed)
    net = CLIPLITNet(padding)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        net.cond_add1.bias.fill_(0.5)  # a light map well above 0 (no ReLU ties)
    return net.eval().requires_grad_(False)


def test_training_forward_equals_inference_forward():
    """The trainer's forward (CLIPLITNet with separable upsampling, what enhancer_forward runs) and
    the inference forward give the same light map on the same weights in eval mode."""
    from trainer.stages import enhancer_forward

    for padding in ("reflect", "zero"):
        net = _net(1, padding)
        x = torch.rand(2, 3, 37, 45)
        with torch.no_grad():
            train = net(x, separable_upsampling=True)
            assert torch.equal(enhancer_forward(net, x), train)
            ref = net(x)
        fast = fastnet.forward(fastnet.FastWeights(net, "cpu", torch.float32), x)
        assert torch.allclose(train, ref, atol=1e-5, rtol=1e-5)
        assert torch.allclose(fast, train, atol=1e-5, rtol=1e-5)


def test_training_forward_gradients_reach_every_parameter():
    net = _net(2).train().requires_grad_(True)
    net(torch.rand(1, 3, 24, 28), separable_upsampling=True).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_light_map_of_windows_equals_the_whole_image():
    """Windows stacked along the batch, with the whole image's pooling branches, give the
    whole-image light map on their cores (the form tiling and the preview's calibration use)."""
    net = _net(3)
    fw = fastnet.FastWeights(net, "cpu", torch.float32)
    x = torch.rand(2, 3, 60, 70)
    whole, branches = fastnet.light_map(fw, x)
    H, W = x.shape[-2:]
    h = TOTAL_HALO
    wins = [(5, 5 + 2 * h + 4, 8, 8 + 2 * h + 6), (20, 20 + 2 * h + 4, 30, 30 + 2 * h + 6)]
    xb = torch.cat([x[:, :, y0:y1, x0:x1] for y0, y1, x0, x1 in wins], 0)
    out, used = fastnet.light_map(fw, xb, branches, (H, W), wins, window_sides(wins[0], H, W))
    assert used is branches and out.shape == (4, 1, 2 * h + 4, 2 * h + 6)
    for k, (y0, y1, x0, x1) in enumerate(wins):
        core = out[2 * k:2 * k + 2, :, h:-h, h:-h]
        assert torch.allclose(core, whole[:, :, y0 + h:y1 - h, x0 + h:x1 - h], atol=1e-5, rtol=1e-5)


def test_one_layer_table_for_both_executions():
    """Both executions run network.STEM_LAYERS / HEAD_LAYERS: changing the table changes both."""
    names = [n for n, _ in STEM_LAYERS + HEAD_LAYERS]
    assert names == ["cond1", "ResidualBlock1", "ResidualBlock2", "condx", "ResidualBlock3", "ResidualBlock4",
                     "condy", "ResidualBlock5", "ResidualBlock6", "cond_add1"]
    fw = fastnet.FastWeights(_net(4), "cpu", torch.float32)
    assert len(fw.stem_layers) == len(STEM_LAYERS) and len(fw.head_layers) == len(HEAD_LAYERS)
    assert [a for _, a in fw.stem_layers + fw.head_layers] == [a for _, a in STEM_LAYERS + HEAD_LAYERS]
