"""CLIP backbones: built from a config JSON or a name, weights from a tag, a file or none; frozen; cached."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from tests.support.clip_fixtures import (RN_TINY, VIT_TINY, build_random, clip_config_dir, one_thread, tiny_rn,  # noqa: F401
                           tiny_vit, write_config)
from safetensors.torch import save_file

from cliplit_core.clip import backbone as cb
from cliplit_core.clip import weights as clip_weights
from cliplit_core.clip.backbone import CLIPBackboneError, RandomWeightsWarning, build_backbone, load_backbone
from cliplit_core.errors import CLIPLITError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_sizes_come_from_the_config(tiny_vit, tiny_rn):
    assert tiny_vit.image_size == (64, 64)
    assert (tiny_vit.context_length, tiny_vit.text_width, tiny_vit.embed_dim) == (20, 32, 32)
    assert not tiny_vit.is_resnet and tiny_rn.is_resnet
    assert tiny_vit.dtype == torch.float32 and tiny_vit.device == torch.device("cpu")


def test_frozen_and_in_eval_mode(tiny_vit, tiny_rn):
    for bb in (tiny_vit, tiny_rn):
        assert not any(p.requires_grad for p in bb.model.parameters())
        assert not any(m.training for m in bb.model.modules())
    assert not isinstance(tiny_vit, torch.nn.Module)  # never registered as a sub-module of a trainable model


def test_random_weights_warn_loudly(clip_config_dir):
    with pytest.warns(RandomWeightsWarning, match="RANDOM WEIGHTS"):
        build_backbone(str(clip_config_dir / "vit_tiny.json"), "none")


def test_cache_shares_one_backbone_per_settings(clip_config_dir):
    path = str(clip_config_dir / "rn_tiny.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        a = load_backbone(path, "none")
        b = load_backbone(path, "none", device="cpu")
        c = load_backbone(path, "none", precision="bf16")
    assert a is b
    assert c is not a and c.dtype == torch.bfloat16
    cb.clear_backbone_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        assert load_backbone(path, "none") is not a


def test_hub_style_config_wrapper(tmp_path):
    path = tmp_path / "open_clip_config.json"
    path.write_text(json.dumps({"model_cfg": VIT_TINY, "preprocess_cfg": {}}))
    bb = build_random(path)
    assert bb.context_length == 20


def test_encode_embeddings_equals_open_clip_encode_text(tiny_vit):
    """Our text path from embeddings == open_clip's encode_text from token ids."""
    ids = tiny_vit.tokenize(["X X X X X", "a photo of a backlit scene"])
    with torch.no_grad():
        ref = tiny_vit.model.encode_text(ids, normalize=True)
        eot = ids.argmax(dim=-1)
        ours = tiny_vit.encode_embeddings(tiny_vit.token_embeddings(ids), eot)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_local_weights_file_round_trip(tmp_path, clip_config_dir, tiny_rn):
    cfg = clip_config_dir / "rn_tiny.json"
    sd = {k: v.contiguous() for k, v in tiny_rn.model.state_dict().items()}
    for name, writer in (("w.safetensors", lambda p: save_file(sd, p)), ("w.pth", lambda p: torch.save(sd, p))):
        writer(str(tmp_path / name))
        bb = build_backbone(str(cfg), str(tmp_path / name))
        for k, v in bb.model.state_dict().items():
            assert torch.equal(v, sd[k]), k
        assert not any(p.requires_grad for p in bb.model.parameters())


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_openai_torchscript_file(tmp_path, clip_config_dir, tiny_vit):
    """OpenAI's original release is a TorchScript archive (e.g. ~/.cache/clip/ViT-B-32.pt)."""
    path = tmp_path / "scripted.pt"
    torch.jit.script(tiny_vit.model).save(str(path))
    bb = build_backbone(str(clip_config_dir / "vit_tiny.json"), str(path))
    for (k, v), w in zip(bb.model.state_dict().items(), tiny_vit.model.state_dict().values()):
        assert torch.equal(v, w), k


def test_quick_gelu_follows_the_weights(tmp_path):
    vit_b32 = cb._read_config("ViT-B-32")[0]
    assert cb._auto_quick_gelu("ViT-B-32", "openai", vit_b32) is True  # the OpenAI weights need QuickGELU
    assert cb._auto_quick_gelu("RN101", "openai", cb._read_config("RN101")[0]) is True
    assert cb._auto_quick_gelu("ViT-B-32", "none", vit_b32) is False
    assert cb._auto_quick_gelu("ViT-B-32", str(tmp_path / "ViT-B-32.pt"), vit_b32) is True  # local OpenAI file
    assert cb._auto_quick_gelu("ViT-B-32", "laion2b_s34b_b79k", vit_b32) is False
    # and the flag really changes the architecture
    from open_clip.transformer import QuickGELU

    bb = build_random(write_config(tmp_path, "v", VIT_TINY), quick_gelu=True)
    assert bb.quick_gelu and any(isinstance(m, QuickGELU) for m in bb.model.modules())


def test_bf16_precision_is_close_to_fp32(tmp_path, clip_config_dir, tiny_vit):
    sd = {k: v.contiguous() for k, v in tiny_vit.model.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    low = build_backbone(str(clip_config_dir / "vit_tiny.json"), str(tmp_path / "w.safetensors"), precision="bf16")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = tiny_vit.image_features(x), low.image_features(x)
    assert b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.98


@pytest.mark.parametrize("model, pretrained, message", [
    ("ViT-Nope-99", "none", "unknown CLIP model 'ViT-Nope-99'"),
    ("missing_config.json", "none", "config file not found"),
    ("ViT-B-32", "no-such-tag", "neither an open_clip pretrained tag"),
    ("ViT-B-32", "/nonexistent/clip.safetensors", "weights file not found"),
])
def test_clear_errors(model, pretrained, message):
    with pytest.raises(CLIPBackboneError, match=message):
        build_backbone(model, pretrained)
    assert issubclass(CLIPBackboneError, CLIPLITError)


def test_bad_config_and_mismatched_weights(tmp_path, clip_config_dir, tiny_vit):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CLIPBackboneError, match="not a readable open_clip model config"):
        build_backbone(str(bad), "none")
    (tmp_path / "other.json").write_text(json.dumps({"vision_cfg": {}}))
    with pytest.raises(CLIPBackboneError, match="needs 'embed_dim'"):
        build_backbone(str(tmp_path / "other.json"), "none")
    # ViT weights into the ResNet config
    save_file({k: v.contiguous() for k, v in tiny_vit.model.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    with pytest.raises(CLIPBackboneError, match="do not fit CLIP model"):
        build_backbone(str(clip_config_dir / "rn_tiny.json"), str(tmp_path / "vit.safetensors"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CLIPBackboneError, match="cannot read CLIP weights"):
        build_backbone(str(clip_config_dir / "rn_tiny.json"), str(tmp_path / "junk.pth"))


def test_cached_hub_weights_are_used_without_network(tmp_path, monkeypatch):
    """A tag whose file is already in the Hugging Face cache never touches the network."""
    import huggingface_hub.constants as hc

    snap = tmp_path / "models--timm--resnet50_clip.openai" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0" * 40)
    (snap / "open_clip_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tag = clip_weights.tag_config("RN50", "openai")
    assert clip_weights.cached_tag_file(tag) == str(snap / "open_clip_model.safetensors")
