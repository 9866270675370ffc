"""Phases of ``--recipe authors`` as the trainer reports and caps them: the length a phase's header
announces is the number of iterations it runs, and ``--max-extensions`` caps each phase once."""
from __future__ import annotations

import math
import random

import pytest


def _schedule(nb, nw, batch, prompt_batch, **params):
    from trainer.schedule import AuthorsParams, AuthorsSchedule, LoaderSizes

    p = dict(epochs=60, rounds=None, prompt_init_iters=0, reconstruction_iters=0, enhance_iters=4, prompt_iters=4)
    p.update(params)
    return AuthorsSchedule(AuthorsParams(**p), LoaderSizes.of(nb, nw, batch, prompt_batch))


def _drive(sched, loss=lambda step: -math.inf):
    """[(phase, round, length announced at its first iteration, iterations run, extensions)]."""
    phases = []
    while (step := sched.next_step()) is not None:
        if not phases or phases[-1][:2] != [step.kind, step.round]:
            phases.append([step.kind, step.round, step.length, 0, 0])
        phases[-1][3] += 1
        phases[-1][4] += bool(sched.record(loss(step), math.inf).extended)
    return phases


# --------------------------------------------------------------------------- --max-extensions
@pytest.mark.parametrize("cap", [1, 2, 3])
def test_max_extensions_caps_a_prompt_initialisation_that_spills_into_round_0_once(cap):
    """5 + 4 images, prompt batch 4: 3 prompt-initialisation batches per epoch, and 9 iterations end
    with an epoch. With the loss above the threshold the 9th grows the phase by 100, which run as
    refinement steps of round 0 (their loop, without reconstruction): the same extension, so they
    share its cap (before: the count started again at 0 there, and the cap applied twice)."""
    def high_in_round_0(step):
        return 1e9 if step.round == 0 else -math.inf

    phases = _drive(_schedule(5, 4, 2, 4, prompt_init_iters=9, max_extensions=cap, epochs=400), high_in_round_0)
    assert [p[:2] for p in phases[:3]] == [["prompt_init", 0], ["prompt", 0], ["enhance", 1]]
    (_, _, _, init_iters, init_ext), (_, _, _, spill_iters, spill_ext) = phases[:2]
    assert (init_iters, init_ext) == (9, 1)
    assert init_ext + spill_ext == cap
    assert 100 * (cap - 1) < spill_iters <= 100 * cap


@pytest.mark.parametrize("cap", [0, 1, 3])
def test_max_extensions_caps_every_phase(cap):
    phases = _drive(_schedule(5, 4, 2, 4, prompt_init_iters=9, reconstruction_iters=0, max_extensions=cap,
                              epochs=300), loss=lambda step: 1e9)
    per_phase = {}
    for kind, rnd, _, _, ext in phases:
        key = ("prompt_init", 0) if (kind, rnd) == ("prompt", 0) else (kind, rnd)
        per_phase[key] = per_phase.get(key, 0) + ext
    complete = [k for k in per_phase if k != (phases[-1][0], phases[-1][1])]  # the last one: cut by the budget
    assert {k: per_phase[k] for k in complete if k[0] != "reconstruction"} == \
        {k: cap for k in complete if k[0] != "reconstruction"}
