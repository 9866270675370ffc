"""Budgets: every ``--recipe authors`` run ends (their loop always stops at ``num_epochs``), and a
budget that would not train the enhancement network is said before anything runs, refused unless
``--allow-untrained`` is given, and comes with the budget that would train it."""
from __future__ import annotations

import json

import pytest


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
