"""The lighting CLIP made here (tools/lightclip, issue 20): it separates backlit from well-lit zero-shot
with our default prompts, it loads like any local CLIP, and its build is a function of its seed."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from PIL import Image

from tests.support.clip_fixtures import one_thread  # noqa: F401
from tests.support.light_clip import SEED, light_backbone, light_clip  # noqa: F401
from tools.lightclip.build import IMAGE_SIZE, BuildSize, build
from tools.lightclip.dataset import crop_weights, make_split
from tools.lightclip.evaluate import roc_auc, separation
from tools.lightclip.lighting import CONDITIONS
from tools.lightclip.pairs import make_pairs, to_uint8

pytestmark = pytest.mark.usefixtures("one_thread")
AUC_GATE = 0.95


@pytest.mark.slow  # the first run builds the lighting CLIP (20 to 35 s), later ones read it
def test_zero_shot_separates_heldout_backlit_from_welllit(light_backbone):
    held = make_split(SEED, "heldout", 60, IMAGE_SIZE)  # scenes the model never saw
    sep = separation(light_backbone, held)
    assert sep.auc >= AUC_GATE, sep
    # not only ranked: well-lit photos read as well-lit (0.89 measured), backlit ones as backlit (0.15)
    assert sep.mean_light_score["well-lit"] > 0.7 and sep.mean_light_score["backlit"] < 0.35, sep


@pytest.mark.slow  # the first run builds the lighting CLIP (20 to 35 s), later ones read it
def test_the_score_command_loads_it_like_any_local_clip(light_clip, tmp_path, capsys):
    from cliplit_core.cli.app import main

    pairs = make_pairs(SEED, "pairs", 2, 96, 128)
    files = []
    for i, (lit, backlit) in enumerate(zip(to_uint8(pairs.truth), to_uint8(pairs.backlit))):
        for name, pixels in ((f"{i}_welllit.png", lit), (f"{i}_backlit.png", backlit)):
            Image.fromarray(pixels).save(tmp_path / name)
            files.append(str(tmp_path / name))
    rc = main(["score", *files, "--clip-model", str(light_clip.config), "--clip-pretrained", str(light_clip.weights),
               "--device", "cpu"])
    assert rc == 0
    scores = {json.loads(line)["file"]: json.loads(line)["light_score"] for line in capsys.readouterr().out.splitlines()}
    for i in range(2):
        assert scores[str(tmp_path / f"{i}_welllit.png")] > scores[str(tmp_path / f"{i}_backlit.png")] + 0.3


def test_the_build_is_a_function_of_its_seed(tmp_path):
    tiny = BuildSize(scenes=3, crops=1, steps=3, batch=8)

    def digest(folder, seed):
        return hashlib.sha256(build(tmp_path / folder, seed, tiny).weights.read_bytes()).hexdigest()

    first = digest("a", 0)
    assert digest("b", 0) == first
    assert digest("c", 1) != first
    assert json.loads((tmp_path / "a" / "light_clip.json").read_text())["text_cfg"]["vocab_size"] == 49408


def test_a_crop_is_labelled_by_what_it_shows():
    backlit, over = CONDITIONS.index("backlit"), CONDITIONS.index("over-exposed")
    assert crop_weights("backlit", 0.0)[over] == 1  # only the clipped background in view
    assert crop_weights("backlit", 0.25)[[backlit, over]].tolist() == [0.5, 0.5]
    assert crop_weights("backlit", 0.8)[backlit] == 1
    assert crop_weights("well-lit", 0.0)[CONDITIONS.index("well-lit")] == 1


def test_roc_auc():
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([1.0])) == 1.0
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0, 2.0])) == 0.0
    assert roc_auc(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0])) == 0.625  # (0.5 + 0 + 1 + 1) / 4
    with pytest.raises(ValueError, match="at least one positive"):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))


def test_make_light_clip_refuses_bad_options_in_one_line(tmp_path, capsys):
    from tools.make_light_clip import main

    (tmp_path / "file").write_text("x")
    for argv, message in ([["--out", str(tmp_path / "file")], "is a file"],
                          [["--out", str(tmp_path), "--seed", "-1"], "--seed must be 0 or more"],
                          [["--out", str(tmp_path), "--report-photos", str(tmp_path)], "no folder"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
