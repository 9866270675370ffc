"""``python -m trainer``: train CLIP-LIT weights on your own unpaired photos.

The flags are generated from :class:`trainer.config.TrainConfig` (one place for
names, defaults and help texts).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from cliplit_core.command_line import OneLineParser, stdout_closed
from cliplit_core.errors import CLIPLITError
from cliplit_core.wording import COMMAND_LINE

from . import recipe
from .config import RUNTIME_FIELDS, TrainConfig, TrainerError, config_fields, training_differences

DESCRIPTION = """\
Train a CLIP-LIT enhancement network and prompt pair (Liang et al., ICCV 2023) on
unpaired backlit and well-lit photos: prompt initialisation -> reconstruction ->
rounds of (enhancement -> enhance the backlit set -> prompt refinement).
--recipe authors (default) runs what the authors' train.py runs (an epoch budget,
phases that grow while their loss is high); --recipe paper runs fixed rounds.
--plan prints the schedule and exits. The result, OUT/cliplit.safetensors, loads in
the Load CLIP-LIT node and in `python -m cliplit_core enhance/score --weights ...`.
Multi-GPU: torchrun --nproc_per_node=N -m trainer ... (same options)."""

EPILOG = """\
examples:
  python -m trainer --backlit data/backlit --welllit data/welllit --out runs/mine --plan
  python -m trainer --backlit data/backlit --welllit data/welllit --out runs/mine
  python -m trainer --out runs/mine --resume
  torchrun --nproc_per_node=4 -m trainer --backlit ... --welllit ... --out runs/mine --amp
"""

_GROUPS = {
    "data and output": ("backlit", "welllit", "out"),
    "CLIP backbones": ("clip_model", "clip_pretrained", "identity_model", "identity_pretrained"),
    "starting points": ("init_enhancer", "init_scheme", "init_prompt", "prompt_length", "padding"),
    "sizes and batches": ("image_size", "prompt_image_size", "batch_size", "prompt_batch_size"),
    "optimisation": ("lr", "prompt_lr", "weight_decay"),
    "schedule": ("recipe", "plan", "allow_untrained", "epochs", "rounds", "prompt_init_iters",
                 "reconstruction_iters", "enhance_iters", "prompt_iters", "thre_train", "thre_prompt",
                 "train_extension", "prompt_extension", "max_extensions", "ranking", "margins", "margin_no_results",
                 "handoff", "reinit_psnr", "reinit_after", "reinit_extension", "max_reinits", "psnr_channel",
                 "best_window", "best_every"),
    "runtime": ("device", "amp", "channels_last", "workers", "seed", "resume", "log_every", "save_every",
                "progress"),
}


def _field_type(f, default):
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return type(default)
    ann = str(f.type)
    if ann.startswith("int"):
        return int
    if ann.startswith("float"):
        return float
    return str


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m trainer", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    fields = {f.name: f for f in config_fields()}
    for title, names in _GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            f = fields.pop(name)
            meta = dict(f.metadata)
            kwargs = {"help": meta.pop("help"), "default": argparse.SUPPRESS, "dest": name}
            if meta.pop("flag_type", None) == "store_true":
                kwargs["action"] = "store_true"
            else:
                default = f.default if f.default is not dataclasses.MISSING else None
                typ = meta.pop("type", None)
                if typ is None:
                    typ = _field_type(f, default)
                kwargs["type"] = typ
                kwargs.update(meta)
            group.add_argument("--" + name.replace("_", "-"), **kwargs)
    assert not fields, f"options without a group: {sorted(fields)}"
    return parser


def resolve_config(given: dict, warn=None) -> tuple[TrainConfig, dict | None]:
    """(configuration, checkpoint or None) from the explicitly given options."""
    from . import state

    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    out = given.get("out")
    if not out:
        raise TrainerError("--out is required")
    from pathlib import Path

    if Path(out).exists() and not Path(out).is_dir():
        raise TrainerError(f"--out {out} is a file, not a folder; choose a folder for the run")
    resume = bool(given.get("resume"))
    ck = state.load_checkpoint(out, warn=lambda m: warn(m.removeprefix("warning: "))) if resume else None
    if ck is not None:
        cfg = TrainConfig.from_dict(ck["config"])
        diffs = training_differences(cfg, given)
        if diffs:
            raise TrainerError("--resume: these options differ from the checkpoint's and would change the "
                               "training: " + "; ".join(diffs) + ". Leave them out (the checkpoint's values are "
                               "used) or start a new run in another --out")
        for name in RUNTIME_FIELDS:
            if name in given:
                setattr(cfg, name, given[name])
        cfg.resume = True
        return cfg, ck
    if resume:
        warn(f"--resume: no checkpoint in {out}; starting a new run")
    elif state.find_checkpoint(out) is not None:
        raise TrainerError(f"{out} already holds a training run ({state.CHECKPOINT_NAME}); pass --resume to "
                           f"continue it, or choose another --out")
    cfg = TrainConfig(**{k: v for k, v in given.items()})
    return cfg, None


def print_plan(given: dict) -> int:
    """``--plan``: the schedule these options give, as JSON lines (no model, no image is read)."""
    from .budget import enhancement_iters, untrained_note
    from .data import list_folder
    from .schedule import plan_phases

    cfg = TrainConfig(**{k: v for k, v in given.items() if k not in ("resume",)})
    if not cfg.backlit or not cfg.welllit:
        raise TrainerError("--plan needs --backlit and --welllit (it counts their images)")
    cfg = recipe.resolve(cfg, set(given))
    cfg.out = cfg.out or "-"
    cfg.validate()
    nb, nw = len(list_folder(cfg.backlit, "backlit")), len(list_folder(cfg.welllit, "well-lit"))
    phases, summary = plan_phases(recipe.make_schedule(cfg, nb, nw))
    for p in phases:
        print(json.dumps(p))
    summary.update(recipe=cfg.recipe, epochs=cfg.epochs, backlit_images=nb, welllit_images=nw,
                   enhance_iters=enhancement_iters(phases), overrides=recipe.overrides(cfg),
                   assumes="no phase extensions and no re-initialisations (both can only add iterations)")
    untrained = untrained_note(cfg, phases, summary, nb, nw)
    if untrained is not None:
        summary.update(untrained=untrained[0], budget_to_train=untrained[1])
        print(f"warning: {untrained[0]}", file=sys.stderr)
    print(json.dumps(summary))
    sys.stdout.flush()  # a closed pipe fails here, inside main's handler, not at interpreter exit
    return 0


def main(argv: list[str] | None = None) -> int:
    from . import distributed

    args = build_parser().parse_args(argv)
    given = vars(args)
    info = None
    try:
        if given.get("plan"):
            try:
                return print_plan(given)
            except BrokenPipeError:  # `--plan | head`: the reader has what it wanted
                stdout_closed()
                return 0
        cfg, ck = resolve_config(given)
        cfg = recipe.resolve(cfg, set(given))
        cfg.validate()
        info = distributed.init(cfg.device)
        if info.enabled and min(cfg.batch_size, cfg.prompt_batch_size) < info.world:
            raise TrainerError(f"--batch-size and --prompt-batch-size are global batch sizes and must be at least "
                               f"the number of processes ({info.world})")
        from .stages import Trainer

        Trainer(cfg, info, checkpoint=ck).run()
        return 0
    except CLIPLITError as e:
        print(f"error: {e.worded(COMMAND_LINE)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (resume with --resume)", file=sys.stderr)
        return 130
    finally:
        if info is not None:
            distributed.shutdown(info)
