"""Load CLIP-LIT's lists offer the files that fit: enhancement networks in model_name, prompt pairs in
prompt_pair, CLIP weights in neither (the built-in entries stay first); the tooltips say where the
others go; a saved workflow naming any file of the folder still validates and runs; listing a folder
with a multi-GB file stays fast."""
from __future__ import annotations

import json
import os
import struct
import time

import pytest
import torch
from safetensors.torch import save_file
from tests.support.clip_fixtures import VIT_TINY
from tests.support.nodes_support import OFFICIAL_WEIGHTS, REPO, require

import nodes
from cliplit_core.light.network import CLIPLITNet
from cliplit_core.weights import file_contents
from cliplit_core.weights.checkpoint import save_weights
from nodes import comfy_env
from nodes import loader as ld
from nodes.errors import CLIPLITNodeError


@pytest.fixture
def folder(tmp_path, monkeypatch):
    d = tmp_path / "models" / "cliplit"
    (d / "sub").mkdir(parents=True)
    monkeypatch.setenv(comfy_env.MODELS_DIR_ENV, str(d))
    monkeypatch.setenv("CLIPLIT_CACHE", str(tmp_path / "cache"))
    os.symlink(require(OFFICIAL_WEIGHTS), d / "enhancement_model.pth")
    net = CLIPLITNet().state_dict()
    save_weights(d / "trained.safetensors", enhancer=net, prompt_pair=torch.zeros(2, 77, 32))
    save_weights(d / "sub" / "my_prompts.safetensors", prompt_pair=torch.zeros(2, 77, 32))
    torch.save({"module.embedding_prompt": torch.randn(2, 77, 512)}, d / "init_prompt_pair.pth")
    from open_clip.model import CLIP

    clip = CLIP(VIT_TINY["embed_dim"], VIT_TINY["vision_cfg"], VIT_TINY["text_cfg"]).state_dict()
    save_file({k: v.contiguous() for k, v in clip.items()}, str(d / "open_clip_model.safetensors"))
    torch.save(clip, d / "sub" / "clip_weights.pt")
    (d / "half_download.pth").write_bytes(b"")
    (d / "tiny_clip.json").write_text(json.dumps(VIT_TINY), encoding="utf-8")
    return d


def _lists():
    spec = nodes.CLIPLITLoader.INPUT_TYPES()
    return spec["required"]["model_name"][1], spec["optional"]["prompt_pair"][1]


def test_each_list_offers_only_the_files_that_fit(folder):
    model_name, prompt_pair = _lists()
    assert model_name["options"] == [ld.OFFICIAL, "enhancement_model.pth", "half_download.pth",
                                     "trained.safetensors"]
    assert model_name["default"] == ld.OFFICIAL
    assert prompt_pair["options"] == [ld.NO_PROMPT_FILE, "init_prompt_pair.pth", "sub/my_prompts.safetensors",
                                      "trained.safetensors"]
    assert prompt_pair["default"] == ld.NO_PROMPT_FILE


def test_the_tooltips_say_where_the_other_files_go(folder):
    model_name, prompt_pair = _lists()
    assert "prompt_pair" in model_name["tooltip"] and "clip_pretrained" in model_name["tooltip"]
    assert "model_name" in prompt_pair["tooltip"] and "clip_pretrained" in prompt_pair["tooltip"]


def test_a_file_added_later_appears_in_its_list(folder):
    save_weights(folder / "later.safetensors", prompt_pair=torch.zeros(2, 77, 32))
    assert "later.safetensors" in _lists()[1]["options"] and "later.safetensors" not in _lists()[0]["options"]


def test_a_file_replaced_under_the_same_name_moves_to_its_new_list(folder):
    path = folder / "trained.safetensors"
    assert "trained.safetensors" in _lists()[1]["options"]
    save_weights(path, enhancer=CLIPLITNet().state_dict())  # the same name, now without a prompt pair
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    model_name, prompt_pair = _lists()
    assert "trained.safetensors" in model_name["options"] and "trained.safetensors" not in prompt_pair["options"]


# ----------------------------------------------------------------------------- saved workflows
@pytest.mark.parametrize("model_name, prompt_pair", [
    ("enhancement_model.pth", ld.NO_PROMPT_FILE),
    (ld.OFFICIAL, "trained.safetensors"),
    ("open_clip_model.safetensors", ld.NO_PROMPT_FILE),   # a file saved before the lists were sorted out
    ("enhancement_model.pth", "enhancement_model.pth"),
    ("sub/clip_weights.pt", "sub/clip_weights.pt"),
])
def test_a_saved_workflow_naming_any_file_of_the_folders_validates(folder, model_name, prompt_pair):
    assert nodes.CLIPLITLoader.validate_inputs(model_name=model_name, prompt_pair=prompt_pair) is True


def test_a_saved_workflow_with_an_unlisted_file_runs_and_gets_the_loaders_own_error(folder):
    assert "init_prompt_pair.pth" not in _lists()[0]["options"]
    assert nodes.CLIPLITLoader.validate_inputs(model_name="init_prompt_pair.pth") is True
    with pytest.raises(CLIPLITNodeError, match="Load CLIP-LIT: .*init_prompt_pair.pth"):
        nodes.CLIPLITLoader.execute("init_prompt_pair.pth")
    m = nodes.CLIPLITLoader.execute("trained.safetensors", prompt_pair="init_prompt_pair.pth")[0]
    assert tuple(m.prompt_pair.embeddings.shape) == (2, 77, 512)


def test_a_name_that_is_no_file_is_refused_with_the_folders(folder):
    msg = nodes.CLIPLITLoader.validate_inputs(model_name="gone.pth")
    assert msg == f"model_name 'gone.pth' not found in the CLIP-LIT model folders: {folder}"
    msg = nodes.CLIPLITLoader.validate_inputs(model_name=ld.OFFICIAL, prompt_pair="gone.pth")
    assert msg.startswith("prompt_pair 'gone.pth' not found in the CLIP-LIT model folders")


def test_the_saved_example_workflows_validate(folder):
    for path in sorted((REPO / "example_workflows").glob("*.json")):
        for node in json.loads(path.read_text(encoding="utf-8"))["nodes"]:
            if node["type"] == "CLIPLITLoader":
                model_name, _, _, prompt_pair = node["widgets_values"]
                assert nodes.CLIPLITLoader.validate_inputs(model_name=model_name, prompt_pair=prompt_pair) is True


# ----------------------------------------------------------------------------- speed
def test_listing_a_folder_with_a_multi_gb_file_stays_fast(folder):
    header = json.dumps({"visual.proj": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 1 << 32]}}).encode()
    with open(folder / "big_clip.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + (4 << 30))  # 4 GB, sparse
    torch.save(CLIPLITNet().state_dict(), folder / "big_net.pth", _use_new_zipfile_serialization=False)
    with open(folder / "big_net.pth", "r+b") as f:
        f.truncate(3 << 30)
    file_contents._cache.clear()
    t0 = time.perf_counter()
    model_name, prompt_pair = _lists()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    _lists()
    again = time.perf_counter() - t0
    assert "big_net.pth" in model_name["options"] and "big_clip.safetensors" not in model_name["options"]
    assert first < 2.0 and again < 0.5, (first, again)
