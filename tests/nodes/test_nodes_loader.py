"""Load CLIP-LIT without ComfyUI: model folder, official weights, our .safetensors, prompt pairs,
and clear node errors for bad files."""
from __future__ import annotations

import os
import pickle
import shutil
import time
import urllib.error

import pytest
import torch
from tests.support.nodes_support import OFFICIAL_WEIGHTS, require

import nodes
from nodes import comfy_env
from nodes import loader as ld
from nodes.errors import CLIPLITNodeError

OFFICIAL_IN_LIST = ld.OFFICIAL


@pytest.fixture
def official_in_folder(folder):
    src = require(OFFICIAL_WEIGHTS)
    os.symlink(src, folder / "enhancement_model.pth")
    return folder / "enhancement_model.pth"


def load(name, **kw):
    return nodes.CLIPLITLoader.execute(name, **kw)[0]


def test_folder_lists_weights_files_only(folder, official_in_folder):
    (folder / "sub").mkdir()
    (folder / "sub" / "mine.safetensors").write_bytes(b"x")
    (folder / "notes.txt").write_text("hi")
    (folder / "tiny.json").write_text("{}")
    assert comfy_env.list_model_files() == ["enhancement_model.pth", "sub/mine.safetensors"]
    assert comfy_env.list_config_files() == ["tiny.json"]
    spec = nodes.CLIPLITLoader.INPUT_TYPES()
    assert spec["required"]["model_name"][0] == "COMBO"
    assert spec["required"]["model_name"][1]["options"] == [OFFICIAL_IN_LIST, "enhancement_model.pth",
                                                            "sub/mine.safetensors"]
    assert spec["required"]["model_name"][1]["default"] == OFFICIAL_IN_LIST


def test_loads_the_authors_pth_from_the_folder(official_in_folder):
    m = load("enhancement_model.pth")
    assert isinstance(m, nodes.CLIPLITModel)
    assert m.padding == "reflect" and m.prompt_pair is None and m._backbone is None  # CLIP not loaded
    assert next(m.net.parameters()).device == comfy_env.offload_device()
    assert not any(p.requires_grad for p in m.net.parameters())


def test_official_option_uses_the_verified_file_without_network(official_in_folder, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("must not download: the verified file is already in the folder")

    monkeypatch.setattr(ld.weights.urllib.request, "urlopen", no_network)
    m = load(OFFICIAL_IN_LIST)
    assert m.source == str(official_in_folder)


def test_official_option_offline_says_where_to_put_the_file(folder, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(ld.weights.urllib.request, "urlopen", offline)
    with pytest.raises(CLIPLITNodeError) as e:
        load(OFFICIAL_IN_LIST)
    msg = str(e.value)
    assert msg.startswith("Load CLIP-LIT: could not download the official CLIP-LIT weights")
    assert str(folder / "enhancement_model.pth") in msg and ld.weights.OFFICIAL_URL in msg
    assert not any(folder.iterdir())  # no partial file left behind


def test_official_option_reuses_the_core_cache(folder, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(require(OFFICIAL_WEIGHTS), cache / "enhancement_model.pth")
    monkeypatch.setattr(ld.weights.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded"))
    assert load(OFFICIAL_IN_LIST).source == str(cache / "enhancement_model.pth")


def test_our_safetensors_with_prompt_pair(folder, official_in_folder):
    from cliplit_core.weights import checkpoint

    w = checkpoint.read_weights(official_in_folder)
    pair = torch.randn(2, 77, 32) * 0.02
    checkpoint.save_weights(folder / "mine.safetensors", enhancer=w.enhancer, prompt_pair=pair,
                            metadata={"clip_model": "tiny.json", "clip_pretrained": "none", "prompt_length": "8"})
    m = load("mine.safetensors")
    assert m.prompt_pair is not None and m.prompt_pair.prompt_length == 8
    assert torch.equal(m.prompt_pair.embeddings.detach(), pair)
    ref = load("enhancement_model.pth")
    x = torch.rand(1, 40, 56, 3)
    a = nodes.CLIPLITBacklitEnhance.execute(m, x)[0]
    b = nodes.CLIPLITBacklitEnhance.execute(ref, x)[0]
    assert torch.allclose(a, b, atol=1e-6 if comfy_env.compute_device().type == "cpu" else 5e-4)


def test_separate_prompt_pair_files(folder, official_in_folder):
    torch.save({"module.embedding_prompt": torch.randn(2, 77, 512), "module.text_encoder.x": torch.zeros(1)},
               folder / "init_prompt_pair.pth")
    m = load("enhancement_model.pth", prompt_pair="init_prompt_pair.pth")
    assert tuple(m.prompt_pair.embeddings.shape) == (2, 77, 512) and m.prompt_pair.prompt_length == 16
    with pytest.raises(CLIPLITNodeError, match="enhancement network checkpoint, not a prompt pair"):
        load("enhancement_model.pth", prompt_pair="enhancement_model.pth")
    with pytest.raises(CLIPLITNodeError, match="prompt-pair file 'gone.pth' not found"):
        load("enhancement_model.pth", prompt_pair="gone.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _bad_files(folder):
    sd = torch.load(require(OFFICIAL_WEIGHTS), map_location="cpu", weights_only=True)
    full = (folder / "full.pth")
    torch.save(sd, full)
    data = full.read_bytes()
    from safetensors.torch import save_file

    files = {
        "empty.pth": (b"", "file is empty"),
        "text.pth": (b"hello, I am a text file\n" * 10, "not a checkpoint"),
        "random.safetensors": (os.urandom(256), "not a checkpoint"),
        "truncated.pth": (data[: len(data) // 2], "truncated or corrupted"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    save_file({"model.diffusion_model.input_blocks.0.weight": torch.zeros(4, 4)}, str(folder / "sd.safetensors"))
    files["sd.safetensors"] = (None, "not a CLIP-LIT enhancement checkpoint -- missing keys")
    save_file({"prompt_pair": torch.zeros(2, 77, 32)}, str(folder / "prompt_only.safetensors"),
              metadata={"format": "cliplit"})
    files["prompt_only.safetensors"] = (None, "holds no enhancement network")
    with open(folder / "evil.pth", "wb") as f:
        pickle.dump({"x": _Evil()}, f, protocol=2)
    files["evil.pth"] = (None, "refused to load")
    bad = dict(sd)
    bad["cond1.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(bad, folder / "wrong_shape.pth")
    files["wrong_shape.pth"] = (None, "wrong shapes: cond1.weight")
    return {k: v[1] for k, v in files.items()}


def test_bad_files_give_clear_node_errors(folder, monkeypatch):
    bad = _bad_files(folder)
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("pickle code was executed"))
    for name, expected in bad.items():
        t0 = time.monotonic()
        with pytest.raises(CLIPLITNodeError) as e:
            load(name)
        msg = str(e.value)
        assert msg.startswith("Load CLIP-LIT: ") and expected in msg and name in msg, (name, msg)
        assert time.monotonic() - t0 < 5
    assert type(e.value).__module__ == "CLIP-LIT"  # ComfyUI shows "CLIP-LIT.CLIPLITNodeError: ..."


def test_missing_model_name(folder):
    with pytest.raises(CLIPLITNodeError, match=r"model file 'nope.pth' not found in the CLIP-LIT model folders: "):
        load("nope.pth")


def test_is_changed_follows_the_file_on_disk(folder, official_in_folder):
    f = folder / "copy.pth"
    shutil.copyfile(official_in_folder, f)
    a = nodes.CLIPLITLoader.fingerprint_inputs("copy.pth")
    assert a == nodes.CLIPLITLoader.fingerprint_inputs("copy.pth")
    time.sleep(0.01)
    f.write_bytes(f.read_bytes())
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert nodes.CLIPLITLoader.fingerprint_inputs("copy.pth") != a
    assert nodes.CLIPLITLoader.fingerprint_inputs("copy.pth", clip_model="RN101") != nodes.CLIPLITLoader.fingerprint_inputs("copy.pth")
