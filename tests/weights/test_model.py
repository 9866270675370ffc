"""The core model object (cliplit_core.model): capabilities that hold, CLIP settings, shared weights
that no run can change, and CLIP weights looked up in the model's folders with exact messages."""
from __future__ import annotations

import json

import pytest
import torch
from tests.support.data import OFFICIAL_WEIGHTS, require_shared

from cliplit_core.weights import checkpoint
from cliplit_core.clip import weights as clip_weights
from cliplit_core.engine import inference
from cliplit_core.errors import CLIPBackboneError
from cliplit_core.model import AUTO, Capabilities, CLIPLITModel, SizeRequirements, Tiling, load_model
from cliplit_core.weights.model_files import ModelFiles, ModelFileNotFoundError
from cliplit_core.light.network import CLIPLITNet

VIT_B32_URL = "https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors"
TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "cliplit"
    d.mkdir()
    (d / "tiny_clip.json").write_text(json.dumps(TINY_CLIP), encoding="utf-8")
    return d


@pytest.fixture
def random_model():
    torch.manual_seed(0)
    return CLIPLITModel(net=CLIPLITNet().eval().requires_grad_(False), source="random")


# ----------------------------------------------------------------------------- capabilities
def test_capabilities_values(random_model):
    caps = random_model.capabilities
    assert caps == Capabilities(padding="reflect")
    assert caps.scale == 1 and caps.input_channels == (1, 2, 3, 4) and caps.network_channels == (3, 1)
    assert caps.dtypes == (torch.float32, torch.float16, torch.bfloat16)
    assert caps.size == SizeRequirements(minimum=1, multiple_of=1, square=False)
    assert caps.tiling is Tiling.EXACT and caps.tile_minimum == 1 and caps.tile_halo == 17
    zero = CLIPLITModel(net=CLIPLITNet("zero").eval(), source="z", padding="zero")
    assert zero.capabilities.padding == "zero"
    with pytest.raises(ValueError, match="padding must be one of"):
        Capabilities(padding="circular")


def test_declared_sizes_and_channels_run(random_model):
    """The smallest declared size and every declared channel count enhance, keeping the channels."""
    caps = random_model.capabilities
    net = random_model.working_net(torch.device("cpu"))
    m = caps.size.minimum
    for c, (h, w) in zip(caps.input_channels, ((m, m), (m, 5), (6, m), (m, m))):
        assert caps.size.check(h, w)
        out = inference.enhance(net, torch.rand(1, c, h, w), tile=None)
        assert out.image.shape == (1, c, h, w) and torch.isfinite(out.image).all()
    assert not caps.size.check(0, 4)


@pytest.mark.slow
def test_declared_exact_tiling_holds_at_the_smallest_tile(random_model):
    caps = random_model.capabilities
    x = torch.rand(1, 3, 3, 4)
    net = random_model.working_net(torch.device("cpu"))
    whole = inference.predict_light(net, x, tile=None, dtype=torch.float32)
    tiled = inference.predict_light(net, x, tile=caps.tile_minimum, dtype=torch.float32)
    assert torch.allclose(whole, tiled, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- shared weights
def test_working_net_never_changes_the_shared_weights(random_model):
    before = {k: v.clone() for k, v in random_model.net.state_dict().items()}
    for dtype in (torch.float16, torch.bfloat16):
        net = random_model.working_net(torch.device("cpu"), dtype)
        assert net is not random_model.net and next(net.parameters()).dtype == dtype
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(0)  # whatever a run does to its copy
        inference.predict_light(net, torch.rand(1, 3, 8, 8), dtype=dtype)
    same = random_model.working_net(torch.device("cpu"), torch.float32)
    assert same is random_model.net  # float32 on its own device: no copy needed, the fast path never writes
    inference.predict_light(same, torch.rand(1, 3, 8, 8), dtype=torch.float16)
    after = random_model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert random_model.net_bytes() == 4 * sum(p.numel() for p in random_model.net.parameters())


def test_working_net_refuses_an_undeclared_dtype(random_model):
    with pytest.raises(ValueError, match="dtype must be one of"):
        random_model.working_net(torch.device("cpu"), torch.float64)


# ----------------------------------------------------------------------------- loading
def test_load_model_reads_the_file_and_its_prompt_pair(folder):
    w = checkpoint.read_weights(require_shared(OFFICIAL_WEIGHTS))
    pair = torch.randn(2, 77, 32) * 0.02
    checkpoint.save_weights(folder / "mine.safetensors", enhancer=w.enhancer, prompt_pair=pair,
                            metadata={"clip_model": "tiny_clip.json", "clip_pretrained": "none",
                                      "prompt_length": "8"})
    files = ModelFiles(folders=(folder,))
    m = load_model(folder / "mine.safetensors", files=files)
    assert m.padding == "reflect" and m.prompt_source == str(folder / "mine.safetensors")
    assert torch.equal(m.prompt_pair.embeddings, pair) and not m.prompt_pair.embeddings.requires_grad
    assert not any(p.requires_grad for p in m.net.parameters()) and m._backbone is None
    plain = load_model(OFFICIAL_WEIGHTS, files=files)
    assert plain.prompt_pair is None and "zero-shot" in plain.prompt_description
    with pytest.raises(ModelFileNotFoundError) as e:
        load_model(OFFICIAL_WEIGHTS, prompt_pair="gone.pth", files=files)
    assert str(e.value) == f"prompt-pair file 'gone.pth' not found in the CLIP-LIT model folders: {folder}"


# ----------------------------------------------------------------------------- CLIP settings
def test_auto_clip_settings(folder, random_model):
    """'auto' is what the prompt pair records, else ViT-B-32 / openai; a recorded path from another
    computer falls back to the same file name in the model folders, explicit settings are kept."""
    from cliplit_core.clip.prompts import PromptPair

    files = ModelFiles(folders=(folder,))
    assert random_model.clip_settings() == ("ViT-B-32", "openai")
    (folder / "weights.safetensors").write_bytes(b"x")
    pair = PromptPair(torch.zeros(2, 77, 32), 8, clip_model="/home/someone/clip/tiny_clip.json",
                      clip_pretrained="/elsewhere/weights.safetensors")
    m = CLIPLITModel(net=random_model.net, source="x", prompt_pair=pair, files=files)
    assert m.clip_settings() == ("tiny_clip.json", "weights.safetensors")
    m = CLIPLITModel(net=random_model.net, source="x", prompt_pair=pair, files=ModelFiles())
    assert m.clip_settings() == ("/home/someone/clip/tiny_clip.json", "/elsewhere/weights.safetensors")
    m = CLIPLITModel(net=random_model.net, source="x", prompt_pair=pair, files=files, clip_model="RN101",
                     clip_pretrained=" Auto ")
    assert m.clip_settings() == ("RN101", "weights.safetensors")
    assert AUTO == "auto"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_backbone_is_built_from_the_model_folders(folder, random_model, monkeypatch):
    m = CLIPLITModel(net=random_model.net, source="x", files=ModelFiles(folders=(folder,)),
                     clip_model="tiny_clip.json", clip_pretrained="none")
    monkeypatch.chdir(folder.parent)  # the config is found in the folder, not next to the process
    bb = m.backbone()
    assert bb.name == str(folder / "tiny_clip.json") and bb.embed_dim == 32 and m.backbone() is bb


def test_cached_tag_weights_are_used_without_network(monkeypatch, tmp_path):
    f = tmp_path / "open_clip_model.safetensors"
    f.write_bytes(b"x")
    monkeypatch.setattr(clip_weights, "cached_tag_file", lambda cfg: str(f))
    monkeypatch.setattr(clip_weights, "can_reach_download_server", lambda: pytest.fail("probed the network"))
    assert clip_weights.resolve_clip("ViT-B-32", "openai") == ("ViT-B-32", str(f), True)


def test_offline_message_names_the_url_the_file_and_the_folder(folder, random_model, monkeypatch):
    monkeypatch.setattr(clip_weights, "cached_tag_file", lambda cfg: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_weights.socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    m = CLIPLITModel(net=random_model.net, source="x", files=ModelFiles(folders=(folder,)))
    with pytest.raises(clip_weights.CLIPWeightsUnavailableError) as e:
        m.backbone()
    msg = str(e.value)
    assert msg.startswith("the CLIP weights ViT-B-32 / 'openai' are not on this computer and the download server "
                          "(huggingface.co) cannot be reached.")
    assert f"Download the file open_clip_model.safetensors from {VIT_B32_URL}" in msg
    assert msg.endswith(f"then put it into {folder} and set clip_pretrained to its file name")


@pytest.mark.parametrize("clip_model, clip_pretrained, expected", [
    ("no_such_config.json", "none", "CLIP model config 'no_such_config.json' not found (looked in {folder} "
                                    "and as an absolute path)"),
    ("tiny_clip.json", "missing.safetensors", "CLIP weights file 'missing.safetensors' not found (looked in "
                                              "{folder} and as an absolute path)"),
    ("tiny_clip.json", "openai", "CLIP model {folder}/tiny_clip.json is a config file: give its weights as a "
                                 "local file, or 'none' for random weights"),
])
def test_bad_clip_settings_name_the_folders(folder, clip_model, clip_pretrained, expected):
    with pytest.raises(CLIPBackboneError) as e:
        clip_weights.resolve_clip(clip_model, clip_pretrained, ModelFiles(folders=(folder,)))
    assert str(e.value) == expected.format(folder=folder)


def test_local_weights_found_in_the_folders(folder):
    (folder / "w.safetensors").write_bytes(b"x")
    got = clip_weights.resolve_clip("tiny_clip.json", "w.safetensors", ModelFiles(folders=(folder,)))
    assert got == (str(folder / "tiny_clip.json"), str(folder / "w.safetensors"), None)
