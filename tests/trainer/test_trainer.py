"""Tests for the trainer (``python -m trainer``): data handling, the stage machine end to end,
kill-and-resume determinism, re-initialisation, options, outputs, and torchrun with gloo.

Everything runs on the CPU with tiny open_clip configs and random weights at 32 px:
the point is the machinery, not image quality.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.data import REPO, SHARED_DATA, synthetic_photo
from tests.support.clip_fixtures import single_thread as one_thread
from tests.support.imagefiles import write_png16
from tests.support.trainer_runs import run_trainer, save_photo, tiny_args, write_clip_configs, write_photo_folders

@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    return write_clip_configs(tmp_path_factory.mktemp("trainer_clip"))


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    """5 backlit-looking and 4 well-lit synthetic photos, 40 x 48 px."""
    return write_photo_folders(tmp_path_factory.mktemp("trainer_data"))


def train_synthetic(out: Path, synthetic_data: Path, configs: Path, **opts) -> Path:
    """Train on the synthetic folders into ``out`` (tiny_args with ``opts``); the run must succeed."""
    assert run_trainer(tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs, **opts)) == 0
    return out


def losses(out: Path) -> dict[int, float]:
    from trainer.logging_utils import read_log

    return {r["step"]: r["loss"] for r in read_log(out / "log.jsonl") if "loss" in r}


# --------------------------------------------------------------------------- options
def test_defaults_are_the_authors():
    from trainer.config import TrainConfig
    from trainer.recipe import resolve

    c = resolve(TrainConfig())
    assert c.recipe == "authors" and (c.epochs, c.rounds) == (3000, None)
    assert (c.prompt_init_iters, c.reconstruction_iters, c.enhance_iters, c.prompt_iters) == (8000, 1000, 2100, 1000)
    assert (c.thre_train, c.thre_prompt, c.max_extensions, c.max_reinits) == (90, 60, None, None)
    assert (c.ranking, c.handoff, c.psnr_channel, c.best_every, c.margin_no_results) == \
        ("authors", "final", "y", 20, 1.0)
    assert (c.batch_size, c.prompt_batch_size, c.image_size, c.prompt_image_size) == (8, 16, 512, 256)
    assert (c.lr, c.prompt_lr, c.weight_decay) == (2e-5, 5e-6, 1e-3)
    assert list(c.margins) == [0.9, 0.2, 0.1] and c.prompt_length == 16
    init = resolve(TrainConfig(init_enhancer="authors-init", init_prompt="p.pth"))
    assert (init.epochs, init.prompt_init_iters, init.reconstruction_iters) == (2000, 0, 0)
    paper = resolve(TrainConfig(recipe="paper"))
    assert (paper.rounds, paper.epochs, list(paper.margins), paper.handoff, paper.max_reinits) == \
        (3, None, [0.9, 0.2, 0.2], "best", 5)
    assert (c.clip_model, c.clip_pretrained, c.identity_model, c.identity_pretrained) == \
        ("ViT-B-32", "openai", "RN101", "openai")
    assert (c.reinit_psnr, c.reinit_after) == (8.0, 100)
    assert c.init_scheme == "identity" and c.padding == "reflect"  # our choices (docs/training.md)


def test_help_names_every_flag():
    from trainer.cli import build_parser

    text = build_parser().format_help()
    for flag in ("--backlit", "--welllit", "--out", "--clip-model", "--clip-pretrained", "--identity-model",
                 "--identity-pretrained", "--init-enhancer", "--init-prompt", "--prompt-length", "--image-size",
                 "--prompt-image-size", "--batch-size", "--prompt-batch-size", "--lr", "--prompt-lr",
                 "--weight-decay", "--prompt-init-iters", "--reconstruction-iters", "--enhance-iters",
                 "--prompt-iters", "--rounds", "--margins", "--device", "--amp", "--workers", "--seed", "--resume",
                 "--log-every", "--save-every", "--recipe", "--plan", "--epochs", "--thre-train", "--thre-prompt",
                 "--max-extensions", "--ranking", "--handoff", "--margin-no-results", "--psnr-channel",
                 "--best-every"):
        assert flag in text
    ns = build_parser().parse_args(["--out", "x", "--amp", "--margins", "1", "0.1", "0.1"])
    assert ns.amp == "bf16" and ns.margins == [1.0, 0.1, 0.1]


def test_python_m_trainer_help_runs():
    r = subprocess.run([sys.executable, "-m", "trainer", "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--reconstruction-iters" in r.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    rc = run_trainer(["--backlit", tmp_path, "--welllit", tmp_path, "--out", tmp_path / "o", "--device", "cuda"])
    assert rc == 2 and "CUDA is not available" in capsys.readouterr().err


# --------------------------------------------------------------------------- data
def test_scan_reads_formats_and_skips_corrupt(tmp_path):
    from trainer.data import scan_folder

    d = tmp_path / "imgs"
    d.mkdir()
    save_photo(d / "rgb.png", synthetic_photo(20, 30, 3))
    Image.fromarray((synthetic_photo(20, 30, 1)[..., 0] * 255).astype(np.uint8), "L").save(d / "gray.jpg")
    rgba = (np.concatenate([synthetic_photo(20, 30, 3), np.full((20, 30, 1), 0.5)], 2) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    ramp = np.linspace(0, 65535, 16 * 16 * 3).astype(np.uint16).reshape(16, 16, 3)
    write_png16(d / "deep.png", ramp)
    good = (d / "rgb.png").read_bytes()
    (d / "truncated.png").write_bytes(good[: len(good) // 2])
    (d / "text.jpg").write_text("not an image")
    (d / "empty.webp").write_bytes(b"")
    (d / "notes.txt").write_text("ignored: not an image extension")
    warnings = []
    s = scan_folder(d, "backlit", (16, 8), workers=2, warn=warnings.append)
    assert sorted(s.names) == ["deep.png", "gray.jpg", "rgb.png", "rgba.png"]
    assert sorted(p.name for p, _ in s.skipped) == ["empty.webp", "text.jpg", "truncated.png"]
    assert any("3 of 7 backlit images skipped" in w for w in warnings)
    assert sum("truncated.png" in w for w in warnings) == 1
    assert s.images[16].shape == (4, 3, 16, 16) and s.images[8].shape == (4, 3, 8, 8)
    deep = s.images[16][s.names.index("deep.png")].float()
    levels = torch.unique(torch.round(deep * 255) - deep * 255)
    assert len(levels) > 10  # 16-bit precision kept (not quantised to 8 bits)
    gray = s.images[16][s.names.index("gray.jpg")]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_empty_or_unreadable_folder_is_an_error_before_models_load(tmp_path, synthetic_data, capsys):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_text("junk")
    (bad / "b.jpg").write_bytes(b"\xff\xd8\xff")
    missing_model = tmp_path / "no_such_model.json"  # loading it would fail: the data error must come first
    common = dict(clip_model=missing_model, identity_model=missing_model)
    cfgs = Path("unused")
    rc = run_trainer(tiny_args(tmp_path / "o1", tmp_path / "empty", synthetic_data / "welllit", cfgs, **common))
    err = capsys.readouterr().err
    assert rc == 2 and "backlit folder" in err and "holds no images" in err
    rc = run_trainer(tiny_args(tmp_path / "o2", synthetic_data / "backlit", bad, cfgs, **common))
    err = capsys.readouterr().err
    assert rc == 2 and "none of its 2 image files could be read" in err
    assert "a.png" in err and "no_such_model" not in err
    rc = run_trainer(tiny_args(tmp_path / "o3", tmp_path / "nope", synthetic_data / "welllit", cfgs, **common))
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_augmentation_is_deterministic_and_exact_for_flips():
    from trainer.data import AugParams, augment, generator_for, sample_aug

    x = torch.rand(6, 3, 16, 16)
    p1 = sample_aug(6, generator_for(1, 2, 3), (0.5, 1.5))
    p2 = sample_aug(6, generator_for(1, 2, 3), (0.5, 1.5))
    assert torch.equal(augment(x, p1), augment(x, p2))
    off = torch.zeros(6, dtype=torch.bool)
    ones = torch.ones(6, dtype=torch.float64)
    flips = AugParams(hflip=~off, vflip=off, transpose=~off, zoom=off, zx=ones, zy=ones, rotate=off,
                      angle=ones * 0)
    assert torch.equal(augment(x, flips), x.flip(-1).transpose(-1, -2))
    warp = AugParams(hflip=off, vflip=off, transpose=off, zoom=~off, zx=ones * 0.6, zy=ones * 1.4, rotate=~off,
                     angle=ones * 45)
    y = augment(x, warp)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.allclose(y, x)
    # reflection border: no black corners after a 45-degree rotation of a constant image
    assert torch.allclose(augment(torch.full((6, 3, 16, 16), 0.7), warp), torch.full((6, 3, 16, 16), 0.7))
    # about 30 % of samples rotate, 30 % zoom, 50 % flip
    many = sample_aug(4000, generator_for(7), (0.7, 1.3))
    assert 0.25 < many.rotate.float().mean() < 0.35 and 0.45 < many.hflip.float().mean() < 0.55
    assert many.zx.min() >= 0.7 and many.zx.max() <= 1.3 and many.angle.abs().max() <= 90


def test_batches_are_a_function_of_the_iteration_and_shard_exactly():
    from trainer.data import PhaseBatches

    back = torch.rand(5, 3, 8, 8).half()
    well = torch.rand(3, 3, 8, 8).half()
    kw = dict(seed=3, phase_code=4, round_=1, batch_size=4, backlit=back, welllit=well,
              results={"current": (torch.rand(5, 3, 8, 8) * 255).to(torch.uint8)}, stop=50)
    a, b = PhaseBatches("prompt", **kw), PhaseBatches("prompt", **kw)
    for i in (0, 7, 31):
        ba, bb = a.make(i), b.make(i)
        assert all(torch.equal(ba.tensors[k], bb.tensors[k]) for k in ba.tensors)
    full = a.make(9)
    parts = [PhaseBatches("prompt", rank=r, world=2, **kw).make(9) for r in range(2)]
    for k in full.tensors:
        assert torch.equal(torch.cat([p.tensors[k] for p in parts]), full.tensors[k])
    assert parts[0].local_size == 2 and parts[0].global_size == 4
    init = PhaseBatches("prompt_init", seed=3, phase_code=1, round_=0, batch_size=16, backlit=back, welllit=well,
                        stop=10).make(0)
    assert init.labels.tolist().count(1) > 0 and init.labels.tolist().count(0) > 0  # both folders, mixed


# --------------------------------------------------------------------------- outputs
def test_loss_plot_and_sample_grid(tmp_path):
    from trainer.logging_utils import plot_losses, sample_grid

    recs = [{"step": i, "phase": "prompt_init" if i < 20 else "enhance", "round": i // 30, "loss": 1 / (i + 1)}
            for i in range(60)]
    plot_losses(recs, tmp_path / "loss.png")
    with Image.open(tmp_path / "loss.png") as im:
        assert im.size[0] == 900 and im.size[1] > 300
    sample_grid(torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16), torch.rand(3, 1, 16, 16) * 2,
                tmp_path / "grid.png")
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (3 * 16 + 8, 3 * 16 + 8)


def test_checkpoint_is_atomic_keeps_previous_and_falls_back(tmp_path):
    from trainer import state

    state.save_checkpoint(tmp_path, {"x": torch.ones(2), "n": 1, "rng": state.rng_state()})
    state.save_checkpoint(tmp_path, {"x": torch.zeros(2), "n": 2, "rng": state.rng_state()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    assert state.load_checkpoint(tmp_path)["n"] == 2
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut off")
    notes = []
    ck = state.load_checkpoint(tmp_path, warn=notes.append)
    assert ck["n"] == 1 and "checkpoint.prev.pt" in notes[0]
    state.set_rng_state(ck["rng"])  # the RNG states survive weights_only loading


# --------------------------------------------------------------------------- end to end
def light_scores(out: Path, configs: Path, folder: Path, size: int = 64):
    """(light scores of the inputs, of the trained enhancer's results) under the trained prompt pair,
    plus (inputs, results)."""
    from cliplit_core.weights.checkpoint import load_network
    from cliplit_core.files.images import list_images, read_image
    from cliplit_core.engine.inference import enhance
    from cliplit_core.clip.prompts import PromptPair
    from cliplit_core.clip.scores import score_images
    from trainer.data import resize_square
    from trainer.stages import load_clip_backbone

    paths, _ = list_images([folder])
    x = torch.stack([torch.from_numpy(resize_square(read_image(p)[..., :3], size)).permute(2, 0, 1)
                     for p in paths])
    net = load_network(out / "cliplit.safetensors")
    pair = PromptPair.load(out / "cliplit.safetensors")
    bb = load_clip_backbone(str(configs / "vit.json"), "none", "cpu")
    with torch.no_grad():
        y = enhance(net, x, tile=None).image
        return score_images(x, pair, bb), score_images(y, pair, bb), x, y


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory, configs):
    backlit = SHARED_DATA / "backlit_small"
    welllit = SHARED_DATA / "welllit"
    if not backlit.is_dir() or not welllit.is_dir():
        pytest.skip(f"test data not found at {SHARED_DATA} (clone the project with ../shared beside it)")
    out = tmp_path_factory.mktemp("e2e") / "run"
    t = time.perf_counter()
    rc = run_trainer(tiny_args(out, backlit, welllit, configs, prompt_init_iters=20, reconstruction_iters=8,
                               enhance_iters=10, prompt_iters=10, rounds=2, save_every=1000, log_every=2,
                               lr=2e-4))
    return out, rc, time.perf_counter() - t


def test_end_to_end_every_stage_and_outputs(e2e_run):
    from cliplit_core.weights.checkpoint import read_weights
    from trainer.logging_utils import read_log

    out, rc, _ = e2e_run
    assert rc == 0
    recs = read_log(out / "log.jsonl")
    phases = {(r["phase"], r["round"]) for r in recs if "loss" in r}
    assert phases == {("prompt_init", 0), ("reconstruction", 0), ("enhance", 1), ("prompt", 1), ("enhance", 2),
                      ("prompt", 2)}
    assert all("S_previous" in r for r in recs if r.get("phase") == "prompt" and r["round"] == 2)  # L_prompt2
    assert all("S_current" in r and "S_previous" not in r for r in recs
               if r.get("phase") == "prompt" and r["round"] == 1)  # L_prompt1
    assert recs[0]["event"] == "start" and recs[0]["backlit_images"] == 6 and recs[-1]["event"] == "done"
    assert all("img_s" in r for r in recs if "loss" in r)
    for name in ("samples/initial.png", "samples/round_01.png", "samples/round_02.png", "plots/loss_round_02.png",
                 "checkpoint.pt", "work/results_round2.pt"):
        assert (out / name).is_file(), name
    w = read_weights(out / "cliplit.safetensors")
    m = w.metadata
    assert w.enhancer is not None and tuple(w.prompt_pair.shape) == (2, 16, 32)
    assert (m["padding"], m["prompt_length"], m["clip_pretrained"], m["identity_pretrained"]) == \
        ("reflect", "6", "none", "none")
    assert m["clip_model"].endswith("vit.json") and m["identity_model"].endswith("rn.json")
    assert (m["backlit_images"], m["welllit_images"], m["rounds_completed"], m["enhance_iters"]) == \
        ("6", "5", "2", "10")
    assert int(m["total_iterations"]) == 20 + 8 + 2 * (10 + 10)


def test_end_to_end_output_loads_in_the_cli(e2e_run, tmp_path, capsys):
    from cliplit_core.cli.app import main as core_main

    out, rc, _ = e2e_run
    assert rc == 0
    img = SHARED_DATA / "backlit_small" / "c5b8b4070688114c602b27933c6699b6.png"
    with one_thread():
        assert core_main(["enhance", str(img), "-o", str(tmp_path), "--weights", str(out / "cliplit.safetensors"),
                          "--device", "cpu"]) == 0
    assert (tmp_path / (img.stem + ".png")).is_file()
    capsys.readouterr()
    with one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert core_main(["score", str(img), "--model", str(out / "cliplit.safetensors"), "--device", "cpu"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= line["light_score"] <= 1.0


def test_end_to_end_enhancer_raises_the_light_score(e2e_run, configs):
    out, rc, seconds = e2e_run
    assert rc == 0
    with one_thread():
        before, after, x, y = light_scores(out, configs, SHARED_DATA / "backlit_small")
        well = light_scores(out, configs, SHARED_DATA / "welllit")[0]
    # the prompt pair tells the folders apart ...
    assert well.mean() > before.mean() + 0.3, (well, before)
    # ... and the trained enhancer moves the backlit photos towards the well-lit side
    # (seeds 0, 1, 2, 5 all give +0.19 to +0.28 here)
    assert after.mean() > before.mean() + 0.1, (before, after)
    assert (after > before).float().mean() >= 0.5
    # by brightening them, not by washing them out (a collapsed light map gives white images)
    assert x.mean() + 0.03 < y.mean() < 0.9


# --------------------------------------------------------------------------- resume
RESUME_OPTS = dict(prompt_init_iters=6, reconstruction_iters=4, enhance_iters=4, prompt_iters=4, rounds=2,
                   save_every=3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synthetic_data, configs):
    return train_synthetic(tmp_path_factory.mktemp("uninterrupted") / "run", synthetic_data, configs, **RESUME_OPTS)


def assert_same_run(out: Path, reference: Path, steps: int) -> None:
    """Every logged loss of ``out`` is the reference run's, and so is the final network."""
    resumed, ref = losses(out), losses(reference)
    assert sorted(resumed) == sorted(ref) == list(range(1, steps + 1))
    for s in ref:
        assert resumed[s] == pytest.approx(ref[s], rel=1e-5, abs=1e-7), s
    a = torch.load(out / "checkpoint.pt", weights_only=True)["enhancer"]
    b = torch.load(reference / "checkpoint.pt", weights_only=True)["enhancer"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def kill_at(step: int, args, out: Path) -> None:
    """Run the trainer in a subprocess and SIGKILL it right after it logged global ``step``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.trainer_hang_driver", str(step), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        line = ""
        while time.time() < deadline:
            line = proc.stderr.readline()
            if f"HANGING at step {step}" in line or (not line and proc.poll() is not None):
                break
        assert "HANGING" in line, f"the run did not reach step {step} (exit {proc.poll()})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_losses(tmp_path, synthetic_data, configs, uninterrupted):
    """SIGKILL a run in round 2's enhancement (after its checkpoint at iteration 3, having logged
    iteration 4), resume it, and compare every logged loss with the uninterrupted run."""
    out = tmp_path / "run"
    args = tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs, **RESUME_OPTS)
    # steps: prompt init 1-6, reconstruction 7-10, enhance r1 11-14, prompt r1 15-18, enhance r2 19-22
    kill_at(22, args, out)
    killed = losses(out)
    assert max(killed) == 22  # logged past its last checkpoint (step 21)
    from trainer import state

    assert state.load_checkpoint(out)["position"]["global_step"] == 21
    # resume with only --out (the rest comes from the checkpoint); other workers on purpose
    rc = run_trainer(["--out", out, "--resume", "--workers", "2", "--progress", "off"])
    assert rc == 0
    assert_same_run(out, uninterrupted, steps=26)


def test_resume_refuses_changed_training_options(tmp_path, synthetic_data, configs, uninterrupted, capsys):
    rc = run_trainer(["--out", uninterrupted, "--resume", "--lr", "0.1", "--progress", "off"])
    assert rc == 2 and "--lr" in capsys.readouterr().err
    rc = run_trainer(tiny_args(uninterrupted, synthetic_data / "backlit", synthetic_data / "welllit", configs,
                               **RESUME_OPTS))
    assert rc == 2 and "--resume" in capsys.readouterr().err
    # a finished run resumed again has nothing left to do and leaves the output in place
    rc = run_trainer(["--out", uninterrupted, "--resume", "--progress", "off"])
    assert rc == 0 and "nothing left to train" in capsys.readouterr().err


def test_resume_with_more_rounds_extends_a_finished_run(tmp_path, uninterrupted):
    import shutil

    from cliplit_core.weights.checkpoint import read_weights
    from trainer.logging_utils import read_log

    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    assert run_trainer(["--out", out, "--resume", "--rounds", "3", "--progress", "off"]) == 0
    recs = read_log(out / "log.jsonl")
    r3 = [r for r in recs if r.get("round") == 3 and "loss" in r]
    assert [r["phase"] for r in r3] == ["enhance"] * 4 + ["prompt"] * 4
    assert all("S_previous" in r for r in r3 if r["phase"] == "prompt")  # uses round 2's results
    assert read_weights(out / "cliplit.safetensors").metadata["rounds_completed"] == "3"
    assert sorted(p.name for p in (out / "work").iterdir()) == ["results_round2.pt", "results_round3.pt"]


def test_reinitialisation_rule_and_give_up(tmp_path, synthetic_data, configs, capsys):
    out = tmp_path / "run"
    rc = run_trainer(tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs,
                               prompt_init_iters=0, reconstruction_iters=6, rounds=0, allow_untrained=True,
                               init_scheme="authors", reinit_psnr=200, reinit_after=2, max_reinits=2))
    err = capsys.readouterr().err
    assert rc == 2 and "after 2 re-initialisations" in err and "re-initialising the network (2 of at most 2)" in err
    from trainer.logging_utils import read_log

    events = [r for r in read_log(out / "log.jsonl") if r.get("event") == "reinit"]
    assert [e["reinits"] for e in events] == [1, 2, 3]
    # each restart begins at iteration 1 again
    iters = [r["iter"] for r in read_log(out / "log.jsonl") if "loss" in r]
    assert iters == [1, 2, 1, 2, 1, 2]


def test_initial_weights_skip_their_stages(tmp_path, synthetic_data, configs, uninterrupted):
    from trainer.logging_utils import read_log

    out = tmp_path / "run"
    init = uninterrupted / "cliplit.safetensors"
    rc = run_trainer(tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs,
                               init_enhancer=init, init_prompt=init, enhance_iters=2, prompt_iters=2, rounds=1,
                               prompt_init_iters=None, reconstruction_iters=None))
    assert rc == 0
    recs = read_log(out / "log.jsonl")
    assert recs[0]["plan"] == ["enhance r1", "prompt refine r1"]
    assert {r["phase"] for r in recs if "loss" in r} == {"enhance", "prompt"}


# --------------------------------------------------------------------------- torchrun
def torchrun(args, processes: int = 2) -> None:
    """``python -m torch.distributed.run --nproc_per_node=N -m trainer ARGS`` on CPUs (gloo); must succeed."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                        "--master_port", str(29500 + os.getpid() % 500), "-m", "trainer", *map(str, args)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def assert_same_losses(out: Path, reference: Path) -> None:
    got, ref = losses(out), losses(reference)
    assert sorted(got) == sorted(ref)
    for s in ref:
        assert got[s] == pytest.approx(ref[s], rel=1e-3, abs=1e-5), s


@pytest.mark.slow
def test_torchrun_two_processes_gloo_match_one_process(tmp_path, synthetic_data, configs, uninterrupted):
    """Two CPU processes (gloo) split each global batch; the summed gradients make the run the
    single-process one up to float rounding."""
    out = tmp_path / "ddp"
    torchrun(tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs, **RESUME_OPTS))
    assert_same_losses(out, uninterrupted)
    assert (out / "cliplit.safetensors").is_file()
    assert sorted(p.name for p in out.glob("checkpoint*.pt")) == ["checkpoint.prev.pt", "checkpoint.pt"]


@pytest.mark.slow
def test_torchrun_with_partial_batches_that_leave_a_process_without_images(tmp_path, synthetic_data, configs):
    """--recipe authors, 5 backlit images in batches of 2: every epoch ends with a batch of 1, and
    refinement (5 samples in batches of 4) with a batch of 1: the second process has no image
    then. It adds zero gradients, and the run is the single-process one."""
    opts = dict(RESUME_OPTS, recipe="authors", max_extensions=0, save_every=1000)
    b, w = synthetic_data / "backlit", synthetic_data / "welllit"
    one = train_synthetic(tmp_path / "one", synthetic_data, configs, **opts)
    from trainer.logging_utils import read_log

    sizes = {}
    for r in read_log(one / "log.jsonl"):
        if "loss" in r:
            sizes.setdefault(r["phase"], set()).add(r["images"])
    assert sizes == {"prompt_init": {4, 2}, "reconstruction": {2, 1}, "enhance": {2, 1}, "prompt": {4, 1}}
    torchrun(tiny_args(tmp_path / "two", b, w, configs, **opts))
    assert_same_losses(tmp_path / "two", one)


# --------------------------------------------------------------------------- --recipe authors, for real
EXTENDING = dict(recipe="authors", thre_train=0, thre_prompt=0, max_extensions=1, rounds=1, prompt_init_iters=0,
                 reconstruction_iters=0, enhance_iters=4, prompt_iters=4, save_every=3)


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory, synthetic_data, configs):
    return train_synthetic(tmp_path_factory.mktemp("extended") / "run", synthetic_data, configs, **EXTENDING)


def _phase_iters(out: Path) -> dict:
    from trainer.logging_utils import read_log

    counts: dict = {}
    for r in read_log(out / "log.jsonl"):
        if "loss" in r:
            counts[(r["phase"], r["round"])] = counts.get((r["phase"], r["round"]), 0) + 1
    return counts


@pytest.mark.slow
def test_authors_phases_grow_while_the_loss_is_high(extended_run, tmp_path, synthetic_data, configs):
    from cliplit_core.weights.checkpoint import read_weights
    from trainer.logging_utils import read_log

    assert _phase_iters(extended_run) == {("enhance", 1): 4 + 60, ("prompt", 1): 4 + 100}
    recs = read_log(extended_run / "log.jsonl")
    ext = [(r["phase"], r["by"], r["length"]) for r in recs if r.get("event") == "extend"]
    assert ext == [("enhance", 60, 64), ("prompt", 100, 104)]
    meta = read_weights(extended_run / "cliplit.safetensors").metadata
    assert meta["recipe"] == "authors" and meta["handoff"] == "final" and meta["ranking"] == "authors"
    over = json.loads(meta["recipe_overrides"])
    assert (over["thre_train"], over["thre_prompt"], over["max_extensions"], over["rounds"]) == (0, 0, 1, 1)
    # the paper's recipe has no extensions: the plain counts
    paper = dict(EXTENDING, recipe="paper", thre_train=None, thre_prompt=None, max_extensions=None)
    out = train_synthetic(tmp_path / "paper", synthetic_data, configs, **paper)
    assert _phase_iters(out) == {("enhance", 1): 4, ("prompt", 1): 4}


@pytest.mark.slow
def test_kill_inside_an_extension_and_resume(tmp_path, synthetic_data, configs):
    """SIGKILL during the enhancement phase's first extension, resume: every loss is the
    uninterrupted run's, and so is the final network."""
    opts = dict(EXTENDING, train_extension=6, prompt_extension=6, max_extensions=2)
    ref = train_synthetic(tmp_path / "reference", synthetic_data, configs, **opts)
    assert _phase_iters(ref) == {("enhance", 1): 4 + 12, ("prompt", 1): 4 + 12}
    out = tmp_path / "run"
    kill_at(8, tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs, **opts), out)
    from trainer import state

    ck = state.load_checkpoint(out)  # written at iteration 6, inside the extension (5-10)
    assert ck["position"]["global_step"] == 6 and ck["schedule"]["extensions"] == 1
    assert run_trainer(["--out", out, "--resume", "--progress", "off"]) == 0
    assert_same_run(out, ref, steps=32)


def test_trainer_option_errors_are_one_line(tmp_path, synthetic_data, capsys):
    b, w = synthetic_data / "backlit", synthetic_data / "welllit"
    (tmp_path / "afile").write_text("x")
    cases = [
        (["--out", tmp_path / "afile"], "is a file, not a folder"),
        (["--out", tmp_path / "o", "--lr", "nan"], "--lr must be a finite number"),
        (["--out", tmp_path / "o", "--prompt-lr", "inf"], "--prompt-lr must be a finite number"),
        (["--out", tmp_path / "o", "--margins", "0.9", "nan", "0.1"], "--margins must be between 0 and 1"),
        (["--out", tmp_path / "o", "--epochs", "-1"], "--epochs must not be negative"),
        (["--out", tmp_path / "o", "--recipe", "paper", "--thre-train", "5"], "applies to --recipe authors"),
    ]
    for extra, msg in cases:
        rc = run_trainer(["--backlit", b, "--welllit", w, *extra])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (extra, err)
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_authors_reinitialisation_adds_iterations(tmp_path, synthetic_data, configs, capsys):
    """Their rule: a new network and --reinit-extension more reconstruction iterations, the
    iteration count going on (the paper recipe restarts the stage instead)."""
    from trainer.logging_utils import read_log

    opts = dict(recipe="authors", prompt_init_iters=0, reconstruction_iters=4, rounds=0, allow_untrained=True,
                init_scheme="authors", reinit_psnr=200, reinit_after=2, reinit_extension=2)
    out = train_synthetic(tmp_path / "run", synthetic_data, configs, **opts)
    recs = read_log(out / "log.jsonl")
    # checked after more than 2 iterations since the last (re-)initialisation: steps 3 and 6;
    # each adds 2 iterations, so the 4-iteration reconstruction ends at 8, before a third check
    assert [(e["reinits"], e["step"]) for e in recs if e.get("event") == "reinit"] == [(1, 3), (2, 6)]
    assert [r["iter"] for r in recs if "loss" in r] == list(range(1, 9))
    assert all(r["psnr_y"] < 200 for r in recs if "loss" in r)
    capsys.readouterr()
    out = tmp_path / "capped"
    assert run_trainer(tiny_args(out, synthetic_data / "backlit", synthetic_data / "welllit", configs,
                                 max_reinits=1, **opts)) == 2
    err = capsys.readouterr().err
    assert "after 1 re-initialisations" in err and "Y-channel PSNR" in err
    assert [r["iter"] for r in read_log(out / "log.jsonl") if "loss" in r] == list(range(1, 7))
