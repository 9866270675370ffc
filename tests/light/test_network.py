import pytest
import torch

from cliplit_core.light.network import CLIPLITNet


def test_parameter_count_and_keys_match_the_authors(official_weights_path):
    from cliplit_core.weights.checkpoint import safe_torch_load

    net = CLIPLITNet()
    assert sum(p.numel() for p in net.parameters()) == 278_790
    authors = safe_torch_load(official_weights_path)
    assert all(k.startswith("module.") for k in authors)
    assert sorted(k[len("module."):] for k in authors) == sorted(net.state_dict())


@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_padding_variants_differ_only_at_outer_convs(padding):
    net = CLIPLITNet(padding)
    outer = {"cond1", "condx", "condy", "cond_add1"}
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
            if name in outer:
                assert m.padding_mode == ("reflect" if padding == "reflect" else "zeros"), name
            elif name.startswith("PPM1"):
                assert m.padding_mode == "zeros", name  # the fuse conv
            else:
                assert m.padding_mode == "reflect", name


def test_unknown_padding_is_refused():
    with pytest.raises(ValueError, match="padding"):
        CLIPLITNet("replicate")


def test_stem_head_split_equals_forward(random_net):
    x = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        assert torch.equal(random_net(x), random_net.head(random_net.stem(x)))


def test_ppm_context_crop_equals_whole_interpolation(random_net):
    """The tile-window context is exactly the crop of the whole-image bilinear upsampling."""
    import torch.nn.functional as F

    feats = torch.rand(1, 32, 23, 41)
    ppm = random_net.PPM1
    with torch.no_grad():
        whole = torch.cat([F.interpolate(f(feats), feats.shape[-2:], mode="bilinear", align_corners=True)
                           for f in ppm.features], 1)
        pooled = [F.adaptive_avg_pool2d(feats, b) for b in ppm.bins]
        crop = ppm.context(ppm.branch_outputs(pooled), (23, 41), (3, 17, 10, 40))
    assert torch.allclose(crop, whole[:, :, 3:17, 10:40], atol=1e-6)
