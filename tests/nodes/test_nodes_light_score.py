"""CLIP Light Score without ComfyUI (tiny random-weights CLIP config: fast, offline)."""
from __future__ import annotations

import importlib
import re
import time
import types

import pytest
import torch
from tests.support.nodes_support import OFFICIAL_WEIGHTS, require, write_tiny_clip

import nodes
from cliplit_core.clip import weights as clip_weights
from nodes import comfy_env
from nodes.errors import CLIPLITNodeError
from nodes.loader import load_cliplit_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random-weights warnings are expected here


@pytest.fixture
def folder(tmp_path, monkeypatch):
    d = tmp_path / "cliplit"
    monkeypatch.setenv(comfy_env.MODELS_DIR_ENV, str(d))
    write_tiny_clip(d)
    return d


@pytest.fixture
def tiny_model(folder):
    return load_cliplit_model(str(require(OFFICIAL_WEIGHTS)), clip_model="tiny_clip.json", clip_pretrained="none")


def test_clip_is_loaded_only_when_a_score_is_asked_for(tiny_model):
    x = torch.rand(1, 48, 64, 3)
    nodes.CLIPLITBacklitEnhance.execute(tiny_model, x)
    assert tiny_model._backbone is None
    nodes.CLIPLITLightScore.execute(tiny_model, x)
    assert tiny_model._backbone is not None


def test_outputs(tiny_model, monkeypatch):
    shown = []
    monkeypatch.setattr(comfy_env, "show_text_on_node", lambda node_id, text: shown.append((node_id, text)))
    # ComfyUI runs a copy of the node class whose ``hidden`` holds the node's id in the graph
    run = type("RunCopy", (nodes.CLIPLITLightScore,), {"hidden": types.SimpleNamespace(unique_id="9")})
    x = torch.rand(3, 48, 64, 3)
    out = run.execute(tiny_model, x)
    mean, text, heat = out.result
    assert isinstance(mean, float) and 0.0 <= mean <= 1.0
    lines = text.splitlines()
    assert [ln.split(":")[0] for ln in lines[:4]] == ["image 1", "image 2", "image 3", "mean"]
    assert "random weights" in lines[-1]
    assert out.ui.as_dict() == {"text": (text,)}  # in the "executed" message and /history
    assert shown == [("9", text)]  # shown on the node itself
    assert heat.shape == (3, 48, 64) and heat.dtype == torch.float32
    assert 0.0 <= float(heat.min()) and float(heat.max()) <= 1.0
    assert nodes.CLIPLITLightScore.OUTPUT_NODE is True


def test_scores_match_the_core(tiny_model):

    scores = importlib.import_module("cliplit_core.clip.scores")
    x = torch.rand(2, 40, 52, 3)
    mean, text, heat, per_image = nodes.light_score.score_batch(tiny_model, x)
    bb = tiny_model.backbone()
    ref = scores.score_images(x.movedim(-1, 1), tiny_model.text_features(bb), bb)
    tol = 1e-5 if comfy_env.compute_device().type == "cpu" else 1e-3  # the node runs on the GPU, ref on CPU
    assert torch.allclose(torch.tensor(per_image), ref, atol=tol)
    assert abs(mean - float(ref.mean())) < tol
    hm = importlib.import_module("cliplit_core.clip.heatmap").light_score_heatmap(x.movedim(-1, 1), tiny_model.text_features(bb), bb)
    assert torch.allclose(heat, 1 - hm, atol=tol)  # the MASK shows where it looks backlit


def test_heatmap_off_gives_zeros(tiny_model):
    _, _, heat = nodes.CLIPLITLightScore.execute(tiny_model, torch.rand(1, 30, 40, 3), heatmap=False).result
    assert heat.shape == (1, 30, 40) and not heat.any()


def test_learned_prompt_pair_is_used(folder, tiny_model):

    prompts = importlib.import_module("cliplit_core.clip.prompts")
    bb = tiny_model.backbone()
    torch.manual_seed(0)
    pair = prompts.PromptPair.random(bb, prompt_length=8)
    pair.save(folder / "pair.safetensors")
    m = load_cliplit_model(str(OFFICIAL_WEIGHTS), prompt_pair="pair.safetensors", clip_model="tiny_clip.json",
                           clip_pretrained="none")
    assert m.prompt_pair is not None and "learned" in m.prompt_description
    x = torch.rand(1, 32, 32, 3)
    _, _, _, got = nodes.light_score.score_batch(m, x, heatmap=False)
    ref = importlib.import_module("cliplit_core.clip.scores").score_images(x.movedim(-1, 1), pair, bb)
    assert abs(got[0] - float(ref[0])) < (1e-5 if comfy_env.compute_device().type == "cpu" else 1e-3)


def test_gray_and_alpha_images(tiny_model):
    for c in (1, 4):
        mean, _, heat = nodes.CLIPLITLightScore.execute(tiny_model, torch.rand(1, 32, 40, c)).result
        assert 0 <= mean <= 1 and heat.shape == (1, 32, 40)


def test_offline_clip_download_fails_fast_and_clearly(folder, monkeypatch):
    m = load_cliplit_model(str(OFFICIAL_WEIGHTS))  # ViT-B-32 / openai, as in the example workflow
    monkeypatch.setattr(clip_weights, "cached_tag_file", lambda cfg: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_weights.socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    t0 = time.monotonic()
    with pytest.raises(CLIPLITNodeError) as e:
        nodes.CLIPLITLightScore.execute(m, torch.rand(1, 32, 32, 3))
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert msg.startswith("CLIP Light Score: the CLIP weights ViT-B-32 / 'openai' are not on this computer")
    assert ("Download the file open_clip_model.safetensors from "
            "https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors"
            ) in msg
    assert str(folder) in msg and "clip_pretrained" in msg


@pytest.mark.parametrize("clip_model, clip_pretrained, expected", [
    ("no_such_config.json", "none", "CLIP model config 'no_such_config.json' not found"),
    ("ViT-Nope-99", "none", "unknown CLIP model 'ViT-Nope-99'"),
    ("tiny_clip.json", "missing_weights.safetensors", "CLIP weights file 'missing_weights.safetensors' not found"),
    ("tiny_clip.json", "openai", "is a config file: give its weights as a local file"),
])
def test_bad_clip_settings_give_clear_errors(folder, clip_model, clip_pretrained, expected):
    m = load_cliplit_model(str(OFFICIAL_WEIGHTS), clip_model=clip_model, clip_pretrained=clip_pretrained)
    with pytest.raises(CLIPLITNodeError, match="^CLIP Light Score: .*" + re.escape(expected)):
        nodes.CLIPLITLightScore.execute(m, torch.rand(1, 32, 32, 3))


def test_prompt_pair_of_another_clip_gives_a_clear_error(folder):
    torch.save({"module.embedding_prompt": torch.randn(2, 77, 512)}, folder / "vitb32_pair.pth")
    m = load_cliplit_model(str(OFFICIAL_WEIGHTS), prompt_pair="vitb32_pair.pth", clip_model="tiny_clip.json",
                           clip_pretrained="none")
    with pytest.raises(CLIPLITNodeError, match=r"does not fit CLIP model"):
        nodes.CLIPLITLightScore.execute(m, torch.rand(1, 32, 32, 3))


def test_auto_clip_follows_the_prompt_pair_metadata(folder):
    """A trained file records its CLIP; 'auto' (the default) uses it, also when the recorded
    path is from another computer and the file sits in models/cliplit/ under the same name."""
    from cliplit_core.weights import checkpoint

    w = checkpoint.read_weights(OFFICIAL_WEIGHTS)
    checkpoint.save_weights(folder / "trained.safetensors", enhancer=w.enhancer, prompt_pair=torch.randn(2, 77, 32),
                            metadata={"clip_model": "/home/someone/clip/tiny_clip.json", "clip_pretrained": "none",
                                      "prompt_length": "16"})
    m = load_cliplit_model("trained.safetensors")
    assert m.clip_settings() == ("tiny_clip.json", "none")
    mean, _, _ = nodes.CLIPLITLightScore.execute(m, torch.rand(1, 32, 32, 3), heatmap=False).result
    assert 0 <= mean <= 1
    plain = load_cliplit_model(str(OFFICIAL_WEIGHTS))  # no prompt pair: the authors' CLIP
    assert plain.clip_settings() == ("ViT-B-32", "openai")


# ----------------------------------------------------------------------------- progress and Cancel
class Stop(Exception):
    pass


def _count_clip_calls(monkeypatch) -> list[int]:
    """Images (whole images or heatmap windows) per CLIP image-tower call."""

    backbone_cls = importlib.import_module("cliplit_core.clip.backbone").CLIPBackbone
    calls = []
    real = backbone_cls.image_features

    def counting(self, images, **kw):
        calls.append(len(images))
        return real(self, images, **kw)

    monkeypatch.setattr(backbone_cls, "image_features", counting)
    return calls


def test_cancel_stops_the_heatmap_within_one_batch_of_windows(tiny_model, monkeypatch):
    """A 512 x 384 photo at the finest window: ComfyUI's interrupt flag is checked after the
    whole-image score and after every batch of windows, not once after the whole heatmap."""
    calls = _count_clip_calls(monkeypatch)
    checks = []

    def interrupted():
        checks.append(1)
        if len(checks) == 3:
            raise Stop("interrupted")

    monkeypatch.setattr(comfy_env, "throw_if_interrupted", interrupted)
    with pytest.raises(Stop):
        nodes.CLIPLITLightScore.execute(tiny_model, torch.rand(1, 384, 512, 3), heatmap_window=0.1)
    assert calls == [1, 16, 16]  # the whole image, two batches of 16 windows, then nothing more


def test_progress_bar_moves_per_batch_of_windows(tiny_model, monkeypatch):
    bars = []
    real = comfy_env.progress_bar
    monkeypatch.setattr(comfy_env, "progress_bar", lambda total: bars.append(real(total)) or bars[-1])
    nodes.CLIPLITLightScore.execute(tiny_model, torch.rand(2, 384, 512, 3), heatmap_window=0.1)
    # 63 windows per image (the 64-window budget), 16 per CLIP call, after the whole-image score
    assert bars[0].updates == [(1, 128), (17, 128), (33, 128), (49, 128), (64, 128),
                               (65, 128), (81, 128), (97, 128), (113, 128), (128, 128)]
