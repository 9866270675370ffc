"""Whether a plan trains the enhancement network, and which budget would.

A plan without a single enhancement iteration ends with a network that was never trained to
enhance (the one it started from, or the reconstruction's near-identity). ``--plan`` says so, and
a run refuses to start unless ``--allow-untrained`` is given (trainer.stages). Both name the
smallest budget that completes one round (enhancement, then refinement) with the other options
unchanged.
"""
from __future__ import annotations

import dataclasses
import math

from . import recipe
from .config import TrainConfig
from .schedule import phase_title, plan_phases


def enhancement_iters(phases: list[dict]) -> int:
    return sum(p["iters"] for p in phases if p["phase"] == "enhance")


def _rounds_planned(cfg: TrainConfig, n_backlit: int, n_welllit: int) -> int:
    return plan_phases(recipe.make_schedule(cfg, n_backlit, n_welllit))[1]["rounds"]


def _first_round_epochs(cfg: TrainConfig, n_backlit: int, n_welllit: int) -> int | None:
    """The smallest ``--epochs`` whose plan completes a round (authors), or None when none does."""
    # every epoch that is not a reset runs a step; their corners can run a stage's steps twice over
    p = 2 * (cfg.prompt_init_iters + cfg.reconstruction_iters + cfg.enhance_iters + cfg.prompt_iters) + 16
    sched = recipe.make_schedule(dataclasses.replace(cfg, epochs=p, rounds=None), n_backlit, n_welllit)
    while (step := sched.next_step()) is not None:
        ev = sched.record(-math.inf, math.inf)
        if step.kind == "prompt" and step.round >= 1 and ev.completed:
            for epochs in range(sched.state["epoch"], sched.state["epoch"] + 3):  # a reset may close it
                if _rounds_planned(dataclasses.replace(cfg, epochs=epochs, rounds=None), n_backlit, n_welllit):
                    return epochs
            return None
    return None


def budget_to_train(cfg: TrainConfig, n_backlit: int, n_welllit: int) -> str | None:
    """The options that give one complete round, the others unchanged (None: no budget does)."""
    if cfg.enhance_iters == 0:
        return "--enhance-iters above 0"
    opts = []
    if cfg.rounds is not None and cfg.rounds < 1:
        opts.append("--rounds 1")
    if cfg.recipe == "authors":
        epochs = _first_round_epochs(cfg, n_backlit, n_welllit)
        if epochs is None:
            return None
        if epochs > cfg.epochs:
            opts.append(f"--epochs {epochs}")
    return " ".join(opts) or None


def _budget_text(cfg: TrainConfig) -> str:
    parts = [f"--epochs {cfg.epochs}"] if cfg.recipe == "authors" else []
    if cfg.rounds is not None:
        parts.append(f"--rounds {cfg.rounds}")
    return " ".join(parts) or "this budget"


def untrained_note(cfg: TrainConfig, phases: list[dict], summary: dict, n_backlit: int,
                   n_welllit: int) -> tuple[str, str | None] | None:
    """``(one line saying why, the options that would train it)`` when the plan trains no
    enhancement network; None when it does (or when the plan was cut short before its end)."""
    if summary.get("truncated") or enhancement_iters(phases):
        return None
    if not phases:
        where = "runs no iteration"
    else:
        last = phases[-1]
        where = f"ends in {phase_title(last['phase'], last['round'])} after {summary['total_iters']} iterations"
    fix = budget_to_train(cfg, n_backlit, n_welllit)
    why = "--enhance-iters 0" if cfg.enhance_iters == 0 else \
        f"{n_backlit} backlit and {n_welllit} well-lit images, {_budget_text(cfg)}"
    note = f"this plan trains no enhancement network ({why}): it {where}; " + \
        (f"{fix} would train it (one complete round)" if fix else "no --epochs value completes a round")
    return note, fix
