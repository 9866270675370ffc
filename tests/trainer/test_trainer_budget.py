"""Budgets: every ``--recipe authors`` run ends (their loop always stops at ``num_epochs``), and a
budget that would not train the enhancement network is said before anything runs, refused unless
``--allow-untrained`` is given, and comes with the budget that would train it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.trainer_runs import run_trainer, tiny_args, write_clip_configs, write_photo_folders
from tests.support.trainer_runs import plan_folders


def _resolved(**opts):
    from trainer.config import TrainConfig
    from trainer.recipe import resolve

    cfg = TrainConfig(backlit="b", welllit="w", out="o", **opts)
    return resolve(cfg, set(opts))


# --------------------------------------------------------------------------- --rounds keeps the epoch bound
def test_rounds_alone_keep_the_epoch_bound():
    assert (_resolved(rounds=2).epochs, _resolved(rounds=2).rounds) == (3000, 2)
    both = _resolved(rounds=2, init_enhancer="e.pth", init_prompt="p.pth")
    assert (both.epochs, both.rounds) == (2000, 2)
    assert _resolved(rounds=2, epochs=7).epochs == 7


def test_a_loss_that_never_falls_ends_at_the_epoch_bound():
    """Loss 1e9 at every step: every phase extends at every end, without a cap. Their loop stops
    after num_epochs all the same; so must ours, with a budget in rounds too."""
    from trainer.recipe import make_schedule

    cfg = _resolved(rounds=1, prompt_init_iters=0, reconstruction_iters=0, enhance_iters=4,
                    prompt_iters=4, batch_size=2, prompt_batch_size=4)
    sched = make_schedule(cfg, 5, 4)
    steps = extensions = 0
    while (sched.next_step()) is not None and steps < 100_000:
        extensions += bool(sched.record(1e9, 30.0).extended)
        steps += 1
    assert sched.next_step() is None
    assert cfg.epochs == 3000 and sched.state["epoch"] == 3000
    assert extensions >= 1 and steps <= 3000 * 3  # at most one loader pass (3 batches of 5 images) per epoch


def test_the_authors_schedule_needs_an_epoch_budget():
    from trainer.schedule import AuthorsParams

    with pytest.raises(ValueError, match="epoch"):
        AuthorsParams(epochs=None, rounds=3, prompt_init_iters=0, reconstruction_iters=0, enhance_iters=4,
                      prompt_iters=4)


# --------------------------------------------------------------------------- plans that train no enhancement network


def _plan(capsys, b, w, *args) -> tuple[list[dict], dict, str]:
    from trainer.cli import main

    assert main(["--backlit", str(b), "--welllit", str(w), "--plan", *map(str, args)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(x) for x in out.strip().splitlines()]
    return lines[:-1], lines[-1], err


def test_a_small_folder_with_the_default_budget_is_said_with_the_budget_that_trains(tmp_path, capsys):
    """2 backlit + 5 well-lit images: one prompt-initialisation step per epoch, so the default 3000 epochs
    end inside prompt initialisation (8000 iterations)."""
    b, w = plan_folders(tmp_path, 2, 5)
    phases, summary, err = _plan(capsys, b, w)
    assert [p["phase"] for p in phases] == ["prompt_init"] and summary["rounds"] == 0
    assert summary["enhance_iters"] == 0
    note = summary["untrained"]
    assert "trains no enhancement network" in note and "prompt init" in note and "--epochs 3000" in note
    assert err.count("\n") == 1 and err.startswith("warning: ") and note in err
    suggested = int(note.split("--epochs ")[-1].split()[0])
    assert suggested > 8000 + 1000 + 2100 + 1000  # one step per epoch in every phase, plus the resets
    # the budget it names is the smallest that completes one round
    _, enough, err = _plan(capsys, b, w, "--epochs", suggested)
    assert enough["rounds"] == 1 and enough["enhance_iters"] > 2100 and "untrained" not in enough and err == ""
    _, short, _ = _plan(capsys, b, w, "--epochs", suggested - 1)
    assert short["rounds"] == 0


@pytest.mark.parametrize("args, ends, fix", [
    (["--epochs", "0"], "it runs no iteration", "--epochs"),
    (["--epochs", "6"], "it ends in reconstruction after 10 iterations", "--epochs 10"),
    (["--rounds", "0"], "it ends in reconstruction after 10 iterations", "--rounds 1"),
    (["--recipe", "paper", "--rounds", "0"], "it ends in reconstruction after 10 iterations", "--rounds 1"),
    (["--enhance-iters", "0", "--epochs", "50"], "(--enhance-iters 0)", "--enhance-iters above 0"),
    (["--recipe", "paper", "--enhance-iters", "0"], "(--enhance-iters 0)", "--enhance-iters above 0"),
])
def test_every_untrained_budget_is_said_with_one_that_trains(tmp_path, capsys, args, ends, fix):
    b, w = plan_folders(tmp_path, 5, 4)
    common = ["--batch-size", "2", "--prompt-batch-size", "4", "--prompt-init-iters", "6",
              "--reconstruction-iters", "4", "--enhance-iters", "4", "--prompt-iters", "4"]
    phases, summary, err = _plan(capsys, b, w, *common, *args)
    assert summary["enhance_iters"] == 0
    note, budget = summary["untrained"], summary["budget_to_train"]
    assert ends in note and budget.startswith(fix) and f"{budget} would train it" in note, note
    assert err == f"warning: {note}\n"
    if budget.startswith("--enhance-iters"):
        return
    _, trained, _ = _plan(capsys, b, w, *common, *args, *budget.split())
    assert trained["rounds"] == 1 and trained["enhance_iters"] > 0 and "untrained" not in trained
    if budget.startswith("--epochs"):  # the smallest such budget
        fewer = int(budget.split()[1]) - 1
        assert _plan(capsys, b, w, *common, *args, "--epochs", fewer)[1]["rounds"] == 0


# --------------------------------------------------------------------------- runs that would not train it
@pytest.fixture(scope="module")
def small_folders(tmp_path_factory):
    """2 backlit and 5 well-lit photos (real files: a run decodes them)."""
    return write_photo_folders(tmp_path_factory.mktemp("small"), n_backlit=2, n_welllit=5)


DEFAULT_BUDGET = dict(recipe="authors", rounds=None, prompt_init_iters=None, reconstruction_iters=None,
                      enhance_iters=None, prompt_iters=None, batch_size=None, prompt_batch_size=None)


@pytest.mark.parametrize("opts, says", [
    ({}, "it ends in prompt init after 3000 iterations; --epochs 13102 would train it"),
    ({"epochs": 0}, "it runs no iteration; --epochs"),
    ({"rounds": 0}, "it ends in prompt init after 3000 iterations; --rounds 1 --epochs 13102 would train it"),
])
def test_a_run_that_would_not_train_is_refused_before_anything_loads(tmp_path, small_folders, capsys, opts, says):
    missing = tmp_path / "no_such_model.json"  # loading it would fail: the refusal must come first
    out = tmp_path / "run"
    args = tiny_args(out, small_folders / "backlit", small_folders / "welllit", Path("unused"),
                     clip_model=missing, identity_model=missing, **{**DEFAULT_BUDGET, **opts})
    rc = run_trainer(args)
    err = capsys.readouterr().err
    assert rc == 2 and says in err and "--allow-untrained" in err, err
    assert err.strip().splitlines()[-1].startswith("error: this plan trains no enhancement network")
    assert err.count("error") == 1 and "no_such_model" not in err, err
    assert not out.exists()  # nothing written, no model file claiming to be trained


def test_allow_untrained_runs_it_and_says_so(tmp_path, small_folders, capsys):
    from cliplit_core.weights.checkpoint import read_weights

    configs = write_clip_configs(tmp_path)
    out = tmp_path / "run"
    args = tiny_args(out, small_folders / "backlit", small_folders / "welllit", configs,
                     **{**DEFAULT_BUDGET, "epochs": 3, "allow_untrained": True})
    assert run_trainer(args) == 0
    err = capsys.readouterr().err
    assert "warning: this plan trains no enhancement network" in err and "running it as --allow-untrained" in err
    meta = read_weights(out / "cliplit.safetensors").metadata
    assert (meta["total_iterations"], meta["rounds_completed"]) == ("3", "0")
