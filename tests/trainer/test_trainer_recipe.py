"""``--recipe authors``: the schedule of the authors' train.py, checked against a replay of
their control flow (tests/support/authors_replay.py), at their data sizes, from their starting
point and from scratch, with phase extensions and with re-initialisations.

Three levels:
* ``--plan`` prints the iteration counts the issue's figures give (no model, no image);
* the schedule machine, driven by a scripted loss trace, gives the replay's sequence;
* the trainer itself, with its networks and losses stubbed to emit the same trace, gives
  the replay's sequence too, including what each phase starts from (the hand-off) and
  which network state made each ranked result set.
"""
from __future__ import annotations

import itertools
import json
import math

import pytest

from tests.support.authors_replay import Step, replay
from tests.support.stub_trainer import stub_trainer, trainer_config

AUTHORS_DEFAULT = dict(num_epochs=2000)
FROM_SCRATCH = dict(num_epochs=3000, num_clip_pretrained_iters=8000, num_reconstruction_iters=1000)


# --------------------------------------------------------------------------- traces
def quiet(kind, total, images=8):
    """Losses below both thresholds, PSNR above the re-initialisation bar; enhancement losses
    vary so that the best snapshot is not always the first one."""
    return 40.0 + 15.0 * math.sin(total * 0.37) + 0.00001 * total, 30.0


def extending(kind, total, images=8):
    """Now and then above the thresholds (90 / 60), so phases grow by 0, 1 or more steps."""
    base, psnr = quiet(kind, total)
    period = 100 if kind in ("enhance", "reconstruction") else 40
    return (120.0 if ((total + 1) // period) % 2 == 1 else base), psnr


def reinitialising(kind, total, images=8):
    """Reconstruction PSNR below 8 dB for its first 450 iterations: several re-initialisations."""
    loss, _ = extending(kind, total)
    return loss, (4.0 if total < 8000 + 450 else 20.0)


def batch_summed(kind, total, images=8):
    """Their enhancement loss holds a batch sum (the identity term): 20 per image here, so a full
    batch of 8 is above the threshold of 90 (160) and an epoch's last batch of 4 below it (80)."""
    base, psnr = quiet(kind, total)
    return (20.0 * images if kind == "enhance" else base), psnr


SCENARIOS = {
    "authors default (380/384, 2000 epochs)": (AUTHORS_DEFAULT, quiet),
    "from scratch (3000 epochs, 8000 + 1000)": (FROM_SCRATCH, quiet),
    "extensions": (dict(num_epochs=600), extending),
    "re-initialisations": (dict(FROM_SCRATCH, num_epochs=500), reinitialising),
    "partial batches": (dict(num_epochs=200), batch_summed),
}


def schedule_for(kw, **over):
    from trainer.schedule import AuthorsParams, AuthorsSchedule, LoaderSizes

    p = AuthorsParams(epochs=kw.get("num_epochs", 2000), rounds=None,
                      prompt_init_iters=kw.get("num_clip_pretrained_iters", 0),
                      reconstruction_iters=kw.get("num_reconstruction_iters", 0), enhance_iters=2100,
                      prompt_iters=1000, **over)
    return AuthorsSchedule(p, LoaderSizes.of(380, 384, 8, 16))


def drive_schedule(sched, trace, n_backlit=380, n_welllit=384, batch=8, prompt_batch=16):
    """The schedule machine alone, in the replay's terms (hand-off: the final state); each step's
    batch is the one the trainer's epoch loaders give its slot."""
    from trainer.data import EpochOrder

    longer = max(n_backlit, n_welllit)
    loaders = {"train": (n_backlit, batch), "init": (2 * longer, prompt_batch), "refine": (longer, prompt_batch)}
    orders = {name: EpochOrder(items, size, 0) for name, (items, size) in loaders.items()}
    steps, events = [], []
    version = {"net": 0, "prompt": 0}
    made_by: dict[int, int] = {}  # round -> network version of its result set
    snap = None
    total = 0
    while (st := sched.next_step()) is not None:
        images = len(orders[st.slot.loader].batch(st.slot.index))
        loss, psnr = trace(st.kind, total, images)
        model = "prompt" if st.kind in ("prompt_init", "prompt") else "net"
        terms = None
        if st.kind == "prompt":
            rk = sched.ranking
            name = {n: f"v{made_by[r]}" for n, r in rk.sets}
            terms = tuple((name.get(hi, hi), name.get(lo, lo), m) for hi, lo, m in rk.terms)
        build = st.slot.build if st.kind == "prompt" else 0
        steps.append(Step(st.kind, version[model], terms, st.slot.epoch, st.slot.index, images, build))
        version[model] += 1
        total += 1
        ev = sched.record(loss, psnr if st.kind == "reconstruction" else None)
        if ev.snapshot:
            snap = version["net"]
            events.append(("snapshot", total))
        if ev.reinit:
            events.append(("reinit", total))
            version["net"] = 0
        if ev.extended:
            events.append(("extend", total, ev.extended))
        if ev.results_into is not None:
            made_by[ev.results_into] = snap
    return steps, sorted(events, key=lambda e: (e[1], e[0]))


def _runs(steps):
    """Run-length summary for readable failures: [(kind, count), ...]."""
    return [(k, len(list(g))) for k, g in itertools.groupby(s[0] for s in steps)]


# --------------------------------------------------------------------------- --plan
def _empty_folders(tmp_path, nb=380, nw=384):
    for name, n in (("b", nb), ("w", nw)):
        (tmp_path / name).mkdir()
        for i in range(n):
            (tmp_path / name / f"{i}.png").touch()  # --plan only counts them
    return tmp_path / "b", tmp_path / "w"


@pytest.mark.parametrize("extra, total, rounds", [
    (["--epochs", "2000", "--prompt-init-iters", "0", "--reconstruction-iters", "0"], 71300, 23),
    (["--epochs", "3000", "--prompt-init-iters", "8000", "--reconstruction-iters", "1000"], 109448, 32),
    ([], 109448, 32),  # the defaults from scratch are the authors' README recipe
])
def test_plan_prints_the_authors_iteration_counts(tmp_path, capsys, extra, total, rounds):
    from trainer.cli import main

    b, w = _empty_folders(tmp_path)
    assert main(["--backlit", str(b), "--welllit", str(w), "--plan", "--recipe", "authors", *extra]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    summary, phases = lines[-1], lines[:-1]
    assert (summary["total_iters"], summary["rounds"]) == (total, rounds)
    assert "no phase extensions" in summary["assumes"]
    assert sum(p["iters"] for p in phases) == total
    refine = [p for p in phases if p["phase"] == "prompt"]
    assert refine[0]["margins"] == [0.9, 0.9, 0.2] and refine[0]["ranks"] == ["backlit", 1, "welllit"]
    assert refine[1]["margins"] == [0.9, 0.9, 0.1, 0.1] and refine[1]["ranks"] == ["backlit", 2, 1, "welllit"]
    assert not (tmp_path / "out").exists()


def test_plan_paper_recipe_and_init_files(tmp_path, capsys):
    from trainer.cli import main

    b, w = _empty_folders(tmp_path)
    assert main(["--backlit", str(b), "--welllit", str(w), "--plan", "--recipe", "paper"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert (lines[-1]["total_iters"], lines[-1]["rounds"]) == (8000 + 1000 + 3 * 3100, 3)
    assert lines[-2]["ranks"] == ["backlit", 2, 3, "welllit"]  # the paper: I_t-1 above I_t
    assert main(["--backlit", str(b), "--welllit", str(w), "--plan", "--init-enhancer", "x.pth",
                 "--init-prompt", "y.pth"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["total_iters"] == 71300
    assert main(["--backlit", str(b), "--welllit", str(w), "--plan", "--recipe", "paper", "--epochs", "5"]) == 2
    assert "--epochs applies to --recipe authors" in capsys.readouterr().err


# --------------------------------------------------------------------------- the schedule machine
@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_schedule_replays_the_authors_control_flow(name):
    kw, trace = SCENARIOS[name]
    want_steps, want_events = replay(trace, **kw)
    got_steps, got_events = drive_schedule(schedule_for(kw), trace)
    assert _runs(got_steps) == _runs(want_steps)
    assert got_events == sorted(want_events, key=lambda e: (e[1], e[0]))
    assert got_steps == want_steps
    if name.startswith("authors default"):
        assert len(want_steps) == 71300
    if name.startswith("from scratch"):
        assert len(want_steps) == 109448
    if name == "extensions":
        assert {e[2] for e in want_events if e[0] == "extend"} == {60, 100}  # both kinds of phase grew
    if name == "re-initialisations":
        assert sum(1 for e in want_events if e[0] == "reinit") >= 3
    if name == "partial batches":
        assert {s.images for s in want_steps if s.kind == "enhance"} == {8, 4}  # 380 = 47 x 8 + 4
        assert {s.images for s in want_steps if s.kind == "prompt"} == {16}  # 384 = 24 x 16


@pytest.mark.parametrize("change", ["ranking", "margins", "margin_no_results"])
def test_the_replay_sees_a_switched_ranking_or_margin(change):
    kw, trace = SCENARIOS["extensions"]
    over = {"ranking": dict(ranking="paper"), "margins": dict(margins=(0.9, 0.2, 0.2)),
            "margin_no_results": dict(margin_no_results=0.9)}[change]
    if change == "margin_no_results":  # only reachable when an enhancement phase has no snapshot
        kw = dict(kw, train_thre_len=15)
        want, _ = replay(trace, **kw)
        sched = schedule_for({"num_epochs": kw["num_epochs"]}, **over)
        sched.p = type(sched.p)(**{**sched.p.__dict__, "enhance_iters": 15})
        assert drive_schedule(sched, trace)[0] != want
        sched = schedule_for({"num_epochs": kw["num_epochs"]})
        sched.p = type(sched.p)(**{**sched.p.__dict__, "enhance_iters": 15})
        assert drive_schedule(sched, trace)[0] == want
        return
    want, _ = replay(trace, **kw)
    assert drive_schedule(schedule_for(kw, **over), trace)[0] != want


# --------------------------------------------------------------------------- the trainer, stubbed
@pytest.mark.slow
@pytest.mark.parametrize("name, epochs", [("authors default (380/384, 2000 epochs)", 600), ("extensions", 300),
                                         ("re-initialisations", 260), ("partial batches", 200)])
@pytest.mark.slow
def test_trainer_replays_the_authors_control_flow(tmp_path, monkeypatch, name, epochs):
    """The trainer with its real loaders (every batch, its epoch and its size), over fewer epochs than
    the schedule machine's test: 7, 3, 1 and 2 rounds."""
    kw, trace = SCENARIOS[name]
    kw = dict(kw, num_epochs=epochs)
    want_steps, want_events = replay(trace, **kw)
    trainer, got, _ = stub_trainer(trainer_config(tmp_path, kw), trace, monkeypatch)
    trainer.run()
    assert _runs(got) == _runs(want_steps)
    assert got == want_steps
    from trainer.logging_utils import read_log

    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [("extend", r["step"], r["by"]) for r in log if r.get("event") == "extend"] == \
        [e for e in want_events if e[0] == "extend"]
    assert [("reinit", r["step"]) for r in log if r.get("event") == "reinit"] == \
        [e for e in want_events if e[0] == "reinit"]
    assert {e[0] for e in want_events} >= ({"extend", "snapshot", "reinit"} if name == "re-initialisations" else
                                           {"snapshot"} if name.startswith("authors") else {"extend", "snapshot"})


def test_the_extension_check_falls_on_an_epochs_last_batch():
    """Their data: 380 backlit images are 47 batches of 8 and one of 4 per epoch. Round 1's
    enhancement ends at batch 36 of its 44th epoch; 60 more iterations end on the 4-image batch
    of the next epoch. With a loss that sums over the batch (their identity term) the first
    check extends (160 > 90) and the second does not (80): 2160 iterations. Full batches
    everywhere (the trainer before) made both checks see 8 images and extend twice."""
    kw, trace = SCENARIOS["partial batches"]
    steps, events = replay(trace, **kw)
    enhance_r1 = list(itertools.takewhile(lambda s: s.kind == "enhance", steps))
    assert len(enhance_r1) == 2160
    assert (enhance_r1[2099].images, enhance_r1[2159].images) == (8, 4)
    assert (enhance_r1[2099].epoch, enhance_r1[2099].batch, enhance_r1[2159].batch) == (43, 35, 47)
    assert [e for e in events if e[0] == "extend"][0] == ("extend", 2100, 60)
    assert ("extend", 2160, 60) not in events
    got, _ = drive_schedule(schedule_for(kw), trace)
    assert got == steps


@pytest.mark.slow
@pytest.mark.parametrize("switch", [dict(handoff="best"), dict(ranking="paper"), dict(margins=[0.9, 0.2, 0.2])])
def test_the_trainer_replay_fails_when_handoff_ranking_or_margins_switch(tmp_path, monkeypatch, switch):
    kw, trace = dict(num_epochs=300), extending
    want, _ = replay(trace, **kw)
    trainer, got, _ = stub_trainer(trainer_config(tmp_path, kw, **switch), trace, monkeypatch)
    trainer.run()
    assert _runs(got) == _runs(want)  # same phases ...
    assert got != want  # ... but not the same run


def test_rounds_count_refinements_that_a_reset_closes_early(tmp_path, monkeypatch):
    """With 432 backlit images a refinement epoch has 27 batches and 999 = 37 x 27: their reset
    epoch closes every refinement one iteration early. Those rounds are complete all the same."""
    from trainer.schedule import plan_phases

    kw = dict(num_epochs=200)
    want, _ = replay(quiet, n_backlit=432, **kw)
    trainer, got, _ = stub_trainer(trainer_config(tmp_path, kw), quiet, monkeypatch, n_backlit=432)
    trainer.run()
    assert got == want
    assert [n for k, n in _runs(got) if k == "prompt"] == [999, 999, 189]  # the third: cut by the budget
    assert trainer.pos["rounds_completed"] == 2
    sched = schedule_for(kw)
    from trainer.schedule import AuthorsSchedule, LoaderSizes

    assert plan_phases(AuthorsSchedule(sched.p, LoaderSizes.of(432, 384, 8, 16)))[1]["rounds"] == 2


def test_a_schedule_that_cannot_progress_ends(tmp_path, capsys):
    """--prompt-init-iters 1: their epoch head closes the phase before its first step, every
    epoch (0 steps, as their code). With a budget in rounds this must not loop forever."""
    from trainer.cli import main

    b, w = _empty_folders(tmp_path, 5, 4)
    rc = main(["--backlit", str(b), "--welllit", str(w), "--plan", "--prompt-init-iters", "1", "--rounds", "2"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["total_iters"] == 0
    steps, _ = replay(quiet, n_backlit=5, n_welllit=4, train_batch_size=2, prompt_batch_size=4, num_epochs=50,
                      num_clip_pretrained_iters=1)
    assert steps == []
