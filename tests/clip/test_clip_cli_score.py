"""``python -m cliplit_core score``: one JSON object per image, heatmaps, clear errors (no tracebacks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.support.clip_fixtures import REPO, VIT_TINY, build_random, write_config, one_thread  # noqa: F401
from PIL import Image

from cliplit_core.cli import score as cli_score
from cliplit_core.weights.checkpoint import save_weights
from cliplit_core.light.network import CLIPLITNet
from cliplit_core.clip.prompts import PromptPair
from cliplit_core.clip.scores import score_images

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("score_cli")
    cfg = write_config(d, "vit_tiny", VIT_TINY)
    backbone = build_random(cfg, seed=0)
    weights = d / "clip.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in backbone.model.state_dict().items()}, str(weights))
    pair = PromptPair.random(backbone, 8, generator=torch.Generator().manual_seed(5))
    pair.clip_pretrained = str(weights)  # our file records the backbone it was trained with
    pair.save(d / "model.safetensors", enhancer=CLIPLITNet().state_dict())
    rng = np.random.default_rng(0)
    imgs = d / "imgs"
    imgs.mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(imgs / "a.png")
    Image.fromarray(rng.integers(0, 255, (90, 30, 3), dtype=np.uint8)).save(imgs / "b.jpg")
    Image.fromarray(rng.integers(0, 255, (33, 33), dtype=np.uint8)).save(imgs / "c_gray.png")
    Image.fromarray(rng.integers(0, 255, (20, 50, 4), dtype=np.uint8)).save(imgs / "d_rgba.png")
    (d / "notes.txt").write_text("not an image")
    return {"dir": d, "cfg": cfg, "weights": weights, "pair": pair, "backbone": backbone, "imgs": imgs}


def _run(args, capsys):
    from cliplit_core.cli.app import main

    rc = main(["score", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def _expected(setup, files):
    rgb = []
    for f in files:
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0
        rgb.append(torch.from_numpy(a.copy()).permute(2, 0, 1))
    return score_images(rgb, setup["pair"], setup["backbone"]).tolist()


def test_scores_every_image_in_order(setup, capsys):
    rc, recs, err = _run([setup["imgs"], "--model", setup["dir"] / "model.safetensors", "--device", "cpu"], capsys)
    assert rc == 0, err
    files = sorted(setup["imgs"].iterdir())
    assert [r["file"] for r in recs] == [str(f) for f in files]
    assert set(recs[0]) == {"file", "light_score"}
    got = [r["light_score"] for r in recs]
    assert got == pytest.approx(_expected(setup, files), abs=2e-6)
    assert all(0.0 <= s <= 1.0 for s in got)


def test_heatmaps_have_the_image_size(setup, capsys, tmp_path):
    rc, recs, err = _run([setup["imgs"] / "a.png", setup["imgs"] / "b.jpg", "--model",
                          setup["dir"] / "model.safetensors", "--heatmap", tmp_path / "heat", "--batch-size", "1"],
                         capsys)
    assert rc == 0, err
    assert [os.path.basename(r["heatmap"]) for r in recs] == ["a_light.png", "b_light.png"]
    assert Image.open(recs[0]["heatmap"]).size == (70, 40)
    assert Image.open(recs[1]["heatmap"]).size == (30, 90)
    # the same file name in two folders keeps both maps
    other = tmp_path / "other"
    other.mkdir()
    Image.open(setup["imgs"] / "a.png").save(other / "a.png")
    rc, recs, err = _run([setup["imgs"] / "a.png", other / "a.png", "--model", setup["dir"] / "model.safetensors",
                          "--heatmap", tmp_path / "heat2"], capsys)
    assert rc == 0, err
    assert [os.path.basename(r["heatmap"]) for r in recs] == ["a_light.png", "a_2_light.png"]


def test_authors_prompt_file_with_clip_model(setup, capsys, tmp_path):
    torch.save({"module.embedding_prompt": setup["pair"].embeddings.detach(),
                "module.text_encoder.ln_final.weight": torch.ones(32)}, tmp_path / "prompt_pair.pth")
    args = [setup["imgs"] / "a.png", "--model", tmp_path / "prompt_pair.pth", "--clip-model", setup["cfg"],
            "--clip-pretrained", setup["weights"], "--prompt-length", "8"]
    rc, recs, err = _run(args, capsys)
    assert rc == 0, err
    assert recs[0]["light_score"] == pytest.approx(_expected(setup, [setup["imgs"] / "a.png"])[0], abs=2e-6)


def test_random_clip_weights_warn(setup, capsys):
    rc, recs, err = _run([setup["imgs"] / "a.png", "--model", setup["dir"] / "model.safetensors",
                          "--clip-pretrained", "none"], capsys)
    assert rc == 0 and len(recs) == 1
    assert "warning:" in err and "RANDOM WEIGHTS" in err


def test_unreadable_images_are_reported_and_the_rest_scored(setup, capsys):
    args = [setup["imgs"] / "a.png", setup["dir"] / "missing.png", setup["dir"] / "notes.txt",
            "--model", setup["dir"] / "model.safetensors"]
    rc, recs, err = _run(args, capsys)
    assert rc == 1
    assert [os.path.basename(r["file"]) for r in recs] == ["a.png"]
    assert "missing.png: no such file" in err
    assert "notes.txt: cannot read image" in err


def test_model_errors(setup, capsys, tmp_path):
    img = setup["imgs"] / "a.png"
    save_weights(tmp_path / "enh.safetensors", enhancer=CLIPLITNet().state_dict())
    torch.save({"module.embedding_prompt": torch.zeros(2, 77, 512)}, tmp_path / "big_prompt.pth")
    cases = [
        ([img, "--model", tmp_path / "nope.safetensors"], "model file not found"),
        ([img, "--model", setup["dir"] / "notes.txt"], "not a checkpoint"),
        ([img, "--model", tmp_path / "enh.safetensors"], "holds no prompt pair"),
        ([img, "--model", tmp_path / "big_prompt.pth", "--clip-model", setup["cfg"], "--clip-pretrained", "none"],
         "does not fit CLIP model"),
        ([img, "--model", setup["dir"] / "model.safetensors", "--clip-pretrained", tmp_path / "x.safetensors"],
         "weights file not found"),
        ([img, "--model", setup["dir"] / "model.safetensors", "--clip-model", "ViT-Nope"], "unknown CLIP model"),
        ([tmp_path / "nothing_here", "--model", setup["dir"] / "model.safetensors"], "no input images"),
        ([img, "--model", setup["dir"] / "model.safetensors", "--batch-size", "0"], "--batch-size"),
    ]
    for args, message in cases:
        rc, recs, err = _run(args, capsys)
        assert rc == 2, (args, err)
        assert message in err, (message, err)
        assert recs == []


def test_official_enhancement_weights_are_not_a_prompt_pair(setup, capsys):
    from tests.support.clip_fixtures import require_shared

    path = require_shared("official_weights/enhancement_model.pth")
    rc, _, err = _run([setup["imgs"] / "a.png", "--model", path], capsys)
    assert rc == 2 and "enhancement network checkpoint, not a prompt pair" in err


def test_standalone_entry_point(setup, capsys):
    rc = cli_score.main(["score", str(setup["imgs"] / "a.png"), "--model", str(setup["dir"] / "model.safetensors")])
    out, _ = capsys.readouterr()
    assert rc == 0 and json.loads(out)["file"].endswith("a.png")


@pytest.mark.slow
def test_python_dash_m_subprocess(setup):
    """The real command: registered in ``python -m cliplit_core``; a bad input is an error line, not a traceback."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "cliplit_core", "score", str(setup["imgs"] / "b.jpg"),
                           str(setup["dir"] / "missing.png"), "--model", str(setup["dir"] / "model.safetensors"),
                           "--device", "cpu"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "missing.png: no such file" in proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["light_score"] == pytest.approx(_expected(setup, [setup["imgs"] / "b.jpg"])[0], abs=2e-6)


def test_heatmaps_into_the_input_folder_keep_user_files_and_are_not_scored_next_time(setup, capsys, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for name in ("a.png", "b.jpg"):
        (d / name).write_bytes((setup["imgs"] / name).read_bytes())
    Image.fromarray(np.full((10, 10), 7, dtype=np.uint8)).save(d / "b_light.png")  # the user's own file
    user_file = (d / "b_light.png").read_bytes()
    for _ in range(2):
        rc, recs, err = _run([d, "--model", setup["dir"] / "model.safetensors", "--heatmap", d], capsys)
        assert rc == 0, err
        assert [os.path.basename(r["file"]) for r in recs] == ["a.png", "b.jpg", "b_light.png"]  # not our maps
        assert [os.path.basename(r["heatmap"]) for r in recs] == ["a_light.png", "b_2_light.png",
                                                                  "b_light_light.png"]
        assert (d / "b_light.png").read_bytes() == user_file
        assert "writing b_2_light.png instead" in err


def test_the_heatmap_folder_keeps_files_it_did_not_make_and_a_broken_manifest_stops_it(setup, capsys, tmp_path):
    """``--heatmap DIR`` removed any ``.NAME.tmp-<pid>`` whose pid was not running; a folder at the
    manifest's path gave maps that were written but not recorded."""
    from cliplit_core.files.outputs import MANIFEST_NAME

    heat = tmp_path / "heat"
    heat.mkdir()
    (heat / ".draft.tmp-99999.txt").write_text("the user's draft")
    (heat / ".a_light.png.tmp-99999.png").write_bytes(b"another program's")
    args = [setup["imgs"] / "a.png", "--model", setup["dir"] / "model.safetensors", "--heatmap", heat]
    rc, recs, err = _run(args, capsys)
    assert rc == 0, err
    assert sorted(p.name for p in heat.iterdir()) == [".a_light.png.tmp-99999.png", ".cliplit-outputs.jsonl",
                                                       ".draft.tmp-99999.txt", "a_light.png"]
    (heat / MANIFEST_NAME).unlink()
    (heat / MANIFEST_NAME).mkdir()
    rc, recs, err = _run(args, capsys)
    assert rc == 2 and recs == [] and err.count("\n") == 1 and "is a folder" in err and MANIFEST_NAME in err


def test_zero_shot_without_a_model(setup, capsys):
    """No --model: the images are scored with the zero-shot text prompts (the nodes' prompts)."""
    from cliplit_core.clip.prompts import ZERO_SHOT_PROMPTS, zero_shot_text_features

    files = [setup["imgs"] / "a.png", setup["imgs"] / "b.jpg"]
    rc, recs, err = _run([*files, "--clip-model", setup["cfg"], "--clip-pretrained", setup["weights"]], capsys)
    assert rc == 0, err
    text = zero_shot_text_features(setup["backbone"])
    want = [float(s) for s in _expected({**setup, "pair": text}, files)]
    assert [r["light_score"] for r in recs] == pytest.approx(want, abs=2e-6)
    # the prompts matter: the learned pair in model.safetensors gives other scores
    assert [r["light_score"] for r in recs] != pytest.approx(_expected(setup, files), abs=1e-3)
    assert ZERO_SHOT_PROMPTS == ("a backlit photo with a dark underexposed subject", "a well-lit photo")
