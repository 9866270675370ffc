"""Recipes: the defaults each ``--recipe`` gives, and the schedule a configuration runs.

``resolve(cfg)`` fills every option left at ``None`` with the recipe's value (options the
user gave always win); ``overrides(cfg)`` lists the resolved options that differ from
the recipe's defaults (recorded in ``cliplit.safetensors``); ``make_schedule`` builds the
schedule machine of :mod:`trainer.schedule` for a resolved configuration.
"""
from __future__ import annotations

import dataclasses

from .config import TrainConfig, TrainerError
from .schedule import AuthorsParams, AuthorsSchedule, LoaderSizes, PaperParams, PaperSchedule

AUTHORS_EPOCHS_FROM_INIT = 2000  # their num_epochs default, with both init files
AUTHORS_EPOCHS_FROM_SCRATCH = 3000  # their README's from-scratch recipe
PROMPT_INIT_ITERS = 8000
RECONSTRUCTION_ITERS = 1000
PAPER_ROUNDS = 3

RECIPE_DEFAULTS = {
    "authors": {"ranking": "authors", "margins": [0.9, 0.2, 0.1], "margin_no_results": 1.0, "handoff": "final",
                "max_reinits": None, "psnr_channel": "y", "max_extensions": None},
    "paper": {"ranking": "paper", "margins": [0.9, 0.2, 0.2], "margin_no_results": 0.9, "handoff": "best",
              "max_reinits": 5, "psnr_channel": "rgb", "max_extensions": 0},
}
AUTHORS_ONLY = ("epochs", "thre_train", "thre_prompt", "max_extensions", "best_every", "train_extension",
                "prompt_extension", "reinit_extension")


def defaults_for(cfg: TrainConfig) -> dict:
    """The recipe's value of every option that depends on it, for this configuration."""
    d = dict(RECIPE_DEFAULTS[cfg.recipe])
    from_init_enh = cfg.init_enhancer != "none"
    from_init_prompt = cfg.init_prompt != "none"
    d["prompt_init_iters"] = 0 if from_init_prompt else PROMPT_INIT_ITERS
    d["reconstruction_iters"] = 0 if from_init_enh else RECONSTRUCTION_ITERS
    if cfg.recipe == "authors":
        d["rounds"] = None
        d["epochs"] = AUTHORS_EPOCHS_FROM_INIT if (from_init_enh and from_init_prompt) else AUTHORS_EPOCHS_FROM_SCRATCH
    else:
        d["rounds"] = PAPER_ROUNDS
        d["epochs"] = None
    return d


def resolve(cfg: TrainConfig, given: set[str] | None = None) -> TrainConfig:
    """A copy of ``cfg`` with the recipe's defaults filled in. ``given``: the options the user
    set explicitly. Under ``authors`` a budget in rounds never replaces the epoch budget: their
    loop always stops at ``num_epochs``, so the run ends at whichever comes first."""
    given = set(given or ())
    out = dataclasses.replace(cfg)
    defaults = defaults_for(cfg)
    if cfg.recipe == "paper":
        bad = [n for n in AUTHORS_ONLY if n in given and getattr(cfg, n) is not None]
        if bad:
            raise TrainerError(f"--{bad[0].replace('_', '-')} applies to --recipe authors only")
    for name, value in defaults.items():
        if getattr(out, name) is None:
            setattr(out, name, list(value) if isinstance(value, list) else value)
    return out


def overrides(cfg: TrainConfig) -> dict:
    """Resolved options that differ from what the recipe alone would give."""
    base = defaults_for(cfg)
    plain = TrainConfig()
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("backlit", "welllit", "out", "resume", "plan", "allow_untrained", "progress", "log_every",
                      "save_every", "workers", "device", "recipe"):
            continue
        ref = base[f.name] if f.name in base else getattr(plain, f.name)
        val = getattr(cfg, f.name)
        if isinstance(ref, (list, tuple)) and isinstance(val, (list, tuple)):
            if [float(v) for v in ref] == [float(v) for v in val]:
                continue
        elif ref == val:
            continue
        out[f.name] = val
    return out


def loader_sizes(cfg: TrainConfig, n_backlit: int, n_welllit: int) -> LoaderSizes:
    return LoaderSizes.of(n_backlit, n_welllit, cfg.batch_size, cfg.prompt_batch_size)


def make_schedule(cfg: TrainConfig, n_backlit: int, n_welllit: int, state: dict | None = None):
    """The schedule machine of a resolved configuration (``state``: from a checkpoint)."""
    sizes = loader_sizes(cfg, n_backlit, n_welllit)
    m0, m1, m2 = (float(m) for m in cfg.margins)
    if cfg.recipe == "authors":
        p = AuthorsParams(
            epochs=cfg.epochs, rounds=cfg.rounds, prompt_init_iters=int(cfg.prompt_init_iters),
            reconstruction_iters=int(cfg.reconstruction_iters), enhance_iters=cfg.enhance_iters,
            prompt_iters=cfg.prompt_iters, thre_train=float(cfg.thre_train), thre_prompt=float(cfg.thre_prompt),
            max_extensions=cfg.max_extensions, enhance_extension=cfg.train_extension,
            prompt_extension=cfg.prompt_extension, reinit_extension=cfg.reinit_extension, reinit_psnr=float(cfg.reinit_psnr), reinit_after=cfg.reinit_after,
            max_reinits=cfg.max_reinits, best_window=cfg.best_window, best_every=cfg.best_every,
            margin_no_results=float(cfg.margin_no_results), margins=(m0, m1, m2), ranking=cfg.ranking)
        return AuthorsSchedule(p, sizes, state)
    p = PaperParams(
        rounds=cfg.rounds, prompt_init_iters=int(cfg.prompt_init_iters),
        reconstruction_iters=int(cfg.reconstruction_iters), enhance_iters=cfg.enhance_iters,
        prompt_iters=cfg.prompt_iters, margins=(m0, m1, m2), margin_no_results=float(cfg.margin_no_results),
        ranking=cfg.ranking, reinit_psnr=float(cfg.reinit_psnr), reinit_after=cfg.reinit_after,
        max_reinits=cfg.max_reinits, best_window=cfg.best_window)
    return PaperSchedule(p, sizes, state)
