"""Messages the nodes show speak ComfyUI, not the command line: which folder to put a file in, which
list entry to choose, which input of Load CLIP-LIT to set. Each message is written once in the core
(an Advice at the end) and worded by each host (cliplit_core/wording.py, nodes/wording.py)."""
from __future__ import annotations

import ast
import json
import re
import urllib.error

import pytest
import torch
from tests.support.nodes_support import OFFICIAL_WEIGHTS, REPO, TINY_CLIP_CONFIG, require, write_tiny_clip

import nodes
from cliplit_core import wording
from cliplit_core.clip import weights as clip_weights
from nodes import comfy_env
from nodes import loader as ld
from nodes import wording as node_wording
from nodes.errors import CLIPLITNodeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # random-weights CLIP warnings

# what the command line says and a node never should
CLI_WORDS = re.compile(r"(?<![\w-])--[a-z]|\bpass (the|its|a) |\bcommand line\b|\bpython -m\b")


def _node_error(fn, *args, **kw) -> str:
    with pytest.raises(CLIPLITNodeError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert not CLI_WORDS.search(msg), f"command-line wording {CLI_WORDS.search(msg).group(0)!r} in: {msg}"
    assert "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------- every kind of advice
@pytest.mark.parametrize("kind", sorted(wording.ADVICE))
def test_every_kind_of_advice_has_node_words_and_command_line_words(kind):
    facts = {"source": "official", "target": "/m/cliplit/enhancement_model.pth", "folder": "/m/cliplit",
             "model": "ViT-B-32"}
    advice = wording.Advice(kind, {k: facts[k] for k in wording.ADVICE[kind]})
    node_text = node_wording.NODES.advise(advice)
    assert not CLI_WORDS.search(node_text), node_text
    assert node_text != wording.COMMAND_LINE.advise(advice) and "{" not in node_text
    assert re.search(r"\b(model_name|clip_model|clip_pretrained)\b", node_text), node_text  # names the input


def test_a_wording_must_phrase_every_kind_and_an_advice_must_carry_its_facts():
    with pytest.raises(ValueError, match="no phrase for"):
        wording.HostWording("partial", {"named_file_by_hand": "x"})
    with pytest.raises(ValueError, match="needs the facts folder"):
        wording.Advice("clip_weights_into_folder", {})
    with pytest.raises(ValueError, match="unknown kind"):
        wording.Advice("reboot", {})


def test_an_error_keeps_its_advice_across_processes():
    import pickle

    from cliplit_core.errors import WeightsDownloadError

    e = WeightsDownloadError("x", advice=wording.Advice("clip_weights_path"))
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is WeightsDownloadError and back.worded(node_wording.NODES) == e.worded(node_wording.NODES)
    assert str(back) == str(e)


# ----------------------------------------------------------------------------- Load CLIP-LIT
def test_missing_official_weights_say_which_folder_and_which_list_entry(folder, monkeypatch):
    monkeypatch.setattr(ld.weights.urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("no internet")))
    msg = _node_error(nodes.CLIPLITLoader.execute, ld.OFFICIAL)
    assert msg.startswith("Load CLIP-LIT: could not download the official CLIP-LIT weights")
    assert f"put it at {folder / 'enhancement_model.pth'}" in msg and ld.weights.OFFICIAL_URL in msg
    assert f"model_name '{ld.OFFICIAL}'" in msg and "choose the file itself in model_name" in msg
    assert "instead of 'official'" not in msg


def test_a_wrong_official_file_says_what_to_do_in_the_nodes_words(folder):
    (folder / "enhancement_model.pth").write_bytes(b"not the authors' file")
    msg = _node_error(nodes.CLIPLITLoader.execute, ld.OFFICIAL)
    assert "exists but its sha256 is not the expected one" in msg
    assert "choose it by its file name in model_name" in msg


def test_the_command_line_keeps_its_own_words(folder, monkeypatch, capsys, tmp_path):
    from PIL import Image

    from cliplit_core.cli.app import main

    monkeypatch.setattr(ld.weights.urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("no internet")))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", "official"]) == 2
    err = capsys.readouterr().err
    assert "could not download the official CLIP-LIT weights" in err
    assert "(or pass the file itself instead of 'official')" in err and "model_name" not in err


# ----------------------------------------------------------------------------- CLIP Light Score
def test_offline_clip_weights_say_which_folder_and_which_input(folder, monkeypatch):
    m = ld.load_cliplit_model(str(require(OFFICIAL_WEIGHTS)))  # ViT-B-32 / openai
    monkeypatch.setattr(clip_weights, "cached_tag_file", lambda cfg: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_weights.socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    msg = _node_error(nodes.CLIPLITLightScore.execute, m, torch.rand(1, 32, 32, 3))
    assert msg.endswith(f", then put it into {folder} and type its file name into clip_pretrained in Load CLIP-LIT")


def test_a_prompt_pair_for_another_clip_says_which_input_to_set(folder):
    write_tiny_clip(folder)
    torch.save({"module.embedding_prompt": torch.randn(2, 77, 512)}, folder / "vitb32_pair.pth")
    m = ld.load_cliplit_model(str(require(OFFICIAL_WEIGHTS)), prompt_pair="vitb32_pair.pth",
                              clip_model="tiny_clip.json", clip_pretrained="none")
    msg = _node_error(nodes.CLIPLITLightScore.execute, m, torch.rand(1, 32, 32, 3))
    assert "does not fit CLIP model" in msg and msg.endswith(": set clip_model in Load CLIP-LIT to 'ViT-B-32'")


def test_clip_weights_of_another_model_say_which_input_to_check(folder):
    import open_clip

    write_tiny_clip(folder)
    wider = json.loads(json.dumps(TINY_CLIP_CONFIG))
    wider["embed_dim"] = 48
    (folder / "wider_clip.json").write_text(json.dumps(wider), encoding="utf-8")
    open_clip.add_model_config(str(folder / "wider_clip.json"))
    other = open_clip.create_model("wider_clip", pretrained=None)
    torch.save(other.state_dict(), folder / "wider_weights.pt")
    m = ld.load_cliplit_model(str(require(OFFICIAL_WEIGHTS)), clip_model="tiny_clip.json",
                              clip_pretrained="wider_weights.pt")
    msg = _node_error(nodes.CLIPLITLightScore.execute, m, torch.rand(1, 32, 32, 3))
    assert "weights do not fit CLIP model" in msg and "check clip_model in Load CLIP-LIT" in msg


# ----------------------------------------------------------------------------- no fixed CLI words left
CLI_ONLY = ("cli/", "files/", "sharding.py")  # modules that only the command line and the trainer use


def _raised_texts(path):
    """The string pieces of every ``raise`` and ``warn(...)`` in a module, with their line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        call = node.exc if isinstance(node, ast.Raise) else node
        if isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "warn"):
            for sub in ast.walk(call) if call is not None else ():
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def test_no_message_the_nodes_can_show_has_fixed_command_line_words():
    core = REPO / "cliplit_core"
    found = []
    for path in sorted(core.rglob("*.py")):
        rel = path.relative_to(core).as_posix()
        if rel.startswith(CLI_ONLY) or rel == "wording.py":
            continue
        for line, text in _raised_texts(path):
            if CLI_WORDS.search(text):
                found.append(f"cliplit_core/{rel}:{line}: {text!r}")
    assert not found, "command-line words in messages the nodes can show (use an Advice):\n" + "\n".join(found)
