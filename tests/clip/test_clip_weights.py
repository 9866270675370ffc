"""CLIP weights of a pretrained tag: found in the caches without network, and offline a fast, exact message."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from cliplit_core.clip import weights as clip_weights
from cliplit_core.cli.app import main

VIT_B32_URL = "https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors"
OPENAI_VIT_B32 = "https://openaipublic.azureedge.net/clip/models/"


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No weights on this computer: an empty Hugging Face cache and an empty ~/.cache/clip."""
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(clip_weights.socket, "create_connection", refuse)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(path)
    return path


def test_download_url_names_the_file():
    tag = clip_weights.tag_config("ViT-B-32", "openai")
    assert clip_weights.download_url(tag) == (VIT_B32_URL, "open_clip_model.safetensors")
    assert clip_weights.hub_files(tag) == ("timm/vit_base_patch32_clip_224.openai",
                                           ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])


def test_score_offline_fails_within_seconds_naming_the_file(empty_caches, no_network, image, capsys):
    t0 = time.monotonic()
    rc = main(["score", str(image), "--device", "cpu"])  # the default CLIP: ViT-B-32 / openai
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 2 and elapsed < 5, (elapsed, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: the CLIP weights ViT-B-32 / 'openai' are not on this computer and the download "
                          "server (huggingface.co) cannot be reached")
    assert f"Download the file open_clip_model.safetensors from {VIT_B32_URL} (or the original ViT-B-32.pt " \
           f"from {OPENAI_VIT_B32}" in err
    assert "--clip-pretrained FILE" in err


def test_hf_hub_offline_is_honoured_without_probing(empty_caches, monkeypatch, image, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(clip_weights.socket, "create_connection", lambda *a, **k: pytest.fail("probed the network"))
    t0 = time.monotonic()
    rc = main(["score", str(image), "--device", "cpu", "--clip-model", "RN101"])
    err = capsys.readouterr().err
    assert rc == 2 and time.monotonic() - t0 < 5
    assert "downloads are switched off (HF_HUB_OFFLINE)" in err
    assert "https://huggingface.co/timm/resnet101_clip.openai/resolve/main/open_clip_model.safetensors" in err


def test_openai_original_in_the_legacy_cache_is_used_without_network(empty_caches, no_network):
    tag = clip_weights.tag_config("ViT-B-32", "openai")
    legacy = empty_caches / "home" / ".cache" / "clip" / "ViT-B-32.pt"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"x")
    assert clip_weights.tag_weights("ViT-B-32", "openai") == (str(legacy), True)
    assert clip_weights.cached_tag_file(tag) == str(legacy)


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(clip_weights.CLIPBackboneError, match=r"'nope' for ViT-B-32: .*known tags: .*openai"):
        clip_weights.tag_weights("ViT-B-32", "nope")
