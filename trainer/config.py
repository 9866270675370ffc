"""Every trainer option in one dataclass.

Options whose default depends on ``--recipe`` default to ``None`` here and are filled in
by :func:`trainer.recipe.resolve`.

The command line (:mod:`trainer.cli`) is generated from the fields below: each
field's ``metadata`` holds its help text, and ``flag`` / ``nargs`` / ``choices``
where they differ from the plain ``--field-name VALUE`` form. A checkpoint
stores :meth:`TrainConfig.to_dict`, so ``--resume`` can restore the whole
configuration from the output folder alone.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from cliplit_core.errors import CLIPLITError

# Fields that may differ on --resume without changing the training mathematics
# (device and precision change the numerics slightly; --rounds extends or
# shortens the schedule; the output and data folders may have moved -- the trainer
# warns if the image listing changed).
RUNTIME_FIELDS = frozenset({"device", "amp", "workers", "log_every", "save_every", "rounds", "epochs", "resume",
                            "channels_last", "progress", "out", "backlit", "welllit", "plan", "allow_untrained"})


class TrainerError(CLIPLITError):
    """A training run cannot start or continue (bad data, options or checkpoint)."""


def _opt(default, help: str, **extra):
    meta = {"help": help, **extra}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # ------------------------------------------------------------------ data and output
    backlit: str | None = _opt(None, "folder of backlit photos (png, jpg, webp, bmp, tiff; 8/16-bit, gray, RGBA)",
                               metavar="DIR")
    welllit: str | None = _opt(None, "folder of well-lit photos (unpaired with the backlit ones)", metavar="DIR")
    out: str | None = _opt(None, "output folder: cliplit.safetensors, checkpoint.pt, log.jsonl, samples/, plots/",
                           metavar="DIR")
    # ------------------------------------------------------------------ backbones
    clip_model: str = _opt("ViT-B-32", "CLIP model for prompts and L_clip: open_clip name or model-config .json "
                           "(default ViT-B-32)", metavar="NAME|JSON")
    clip_pretrained: str = _opt("openai", "weights of --clip-model: open_clip tag, local file, or 'none' for random "
                                "weights (tests only) (default openai)", metavar="TAG|FILE|none")
    identity_model: str = _opt("RN101", "ResNet CLIP model for the identity loss: open_clip name or model-config "
                               ".json (default RN101)", metavar="NAME|JSON")
    identity_pretrained: str = _opt("openai", "weights of --identity-model: tag, file or 'none' (default openai)",
                                    metavar="TAG|FILE|none")
    # ------------------------------------------------------------------ starting points
    init_enhancer: str = _opt("none", "start the enhancement network from this file (.pth or .safetensors), "
                              "'authors-init' (the authors' training starting point, downloaded and cached) or "
                              "'official' (the released model); skips reconstruction. 'none' = from scratch "
                              "(default)", metavar="FILE|authors-init|official|none")
    init_prompt: str = _opt("none", "start the prompt pair from this file (authors' .pth or our .safetensors); "
                            "skips prompt initialisation. 'none' = learn it from scratch (default)",
                            metavar="FILE|none")
    init_scheme: str = _opt("identity", "initialisation of a network trained from scratch: 'identity' (the "
                            "authors' conv weights N(0, 0.02), but the last bias set to 1, so the light map starts "
                            "near 1 and the output near the input; default) or 'authors' (exactly their weights_init: "
                            "the light map starts near 0, the output white, and only the re-initialisation rule "
                            "gets it out)", choices=("identity", "authors"))
    prompt_length: int = _opt(16, "number of learnable prompt tokens N (default 16)", metavar="N")
    padding: str = _opt("reflect", "padding of the network's outer convolutions: 'reflect' (what inference uses, "
                        "default) or 'zero' (the authors' training variant); recorded in the output",
                        choices=("reflect", "zero"))
    # ------------------------------------------------------------------ sizes and batches
    image_size: int = _opt(512, "enhancement training resolution: backlit photos are resized to SxS "
                           "(default 512)", metavar="S")
    prompt_image_size: int = _opt(256, "prompt learning resolution, also used for the per-round results "
                                  "(default 256)", metavar="S")
    batch_size: int = _opt(8, "images per reconstruction / enhancement step, over all GPUs (default 8)", metavar="B")
    prompt_batch_size: int = _opt(16, "images (initialisation) or samples (refinement) per prompt step, over all "
                                  "GPUs (default 16)", metavar="B")
    # ------------------------------------------------------------------ optimisation
    lr: float = _opt(2e-5, "Adam learning rate of the enhancement network (default 2e-5)", metavar="LR")
    prompt_lr: float = _opt(5e-6, "Adam learning rate of the prompt pair (default 5e-6)", metavar="LR")
    weight_decay: float = _opt(1e-3, "Adam weight decay of both optimisers (default 1e-3)", metavar="WD")
    # ------------------------------------------------------------------ schedule
    recipe: str = _opt("authors", "the schedule: 'authors' (what the authors' train.py runs: an epoch budget, "
                       "phases that grow while their loss is high, their ranking and hand-off) or 'paper' (fixed "
                       "rounds as the paper describes them); sets the defaults of the options below "
                       "(default authors)", choices=("authors", "paper"))
    plan: bool = _opt(False, "print the schedule these options give, one JSON line per phase, and exit "
                      "(loads no model and no image)", flag_type="store_true")
    allow_untrained: bool = _opt(False, "run and write cliplit.safetensors even when the budget trains no "
                                 "enhancement network (without it such a run is refused; --plan names the "
                                 "budget that would train one)", flag_type="store_true")
    epochs: int | None = _opt(None, "authors: budget in their epochs (one pass of the current phase's loader); "
                              "the run always ends there; default 2000 with both --init-enhancer and "
                              "--init-prompt, else 3000", metavar="N")
    rounds: int | None = _opt(None, "budget in complete rounds of (enhancement -> results -> refinement); "
                              "authors: the run ends at --epochs or after R rounds, whichever comes first "
                              "(paper: default 3)", metavar="R")
    prompt_init_iters: int | None = _opt(None, "prompt initialisation iterations (cross-entropy; default 8000, "
                                         "0 with --init-prompt)", metavar="N")
    reconstruction_iters: int | None = _opt(None, "reconstruction iterations (identity loss only; default "
                                            "1000, 0 with --init-enhancer)", metavar="N")
    enhance_iters: int = _opt(2100, "enhancement iterations per round (L_clip + identity; default 2100)",
                              metavar="N")
    prompt_iters: int = _opt(1000, "prompt refinement iterations per round (margin ranking; default 1000)",
                             metavar="N")
    thre_train: float = _opt(90.0, "authors: an enhancement phase grows by 60 iterations while its last loss "
                             "is above this (default 90)", metavar="LOSS")
    thre_prompt: float = _opt(60.0, "authors: a prompt phase grows by 100 iterations while its last loss is "
                              "above this (default 60)", metavar="LOSS")
    train_extension: int = _opt(60, "authors: iterations an enhancement extension adds (default 60)", metavar="N")
    prompt_extension: int = _opt(100, "authors: iterations a prompt extension adds (default 100)", metavar="N")
    max_extensions: int | None = _opt(None, "authors: at most this many extensions per phase (default: no "
                                      "limit, as theirs)", metavar="N")
    ranking: str | None = _opt(None, "refinement ranking: 'authors' (backlit > I_t > I_t-1 > well-lit) or "
                               "'paper' (backlit > I_t-1 > I_t > well-lit) (default: the recipe's)",
                               choices=("authors", "paper"))
    margins: list | None = _opt(None, "ranking margins M0 M1 M2. authors: large margin, small margin with one "
                                "result set, small margin with two (default 0.9 0.2 0.1); paper: m0 m1 m2 "
                                "(default 0.9 0.2 0.2)", nargs=3, type=float, metavar=("M0", "M1", "M2"))
    margin_no_results: float | None = _opt(None, "margin of a refinement that has no result set yet "
                                           "(authors 1.0, paper M0)", metavar="M")
    handoff: str | None = _opt(None, "what a phase hands on: 'final' (its last state; authors) or 'best' (its "
                               "best state; paper). The ranked results always come from the best state",
                               choices=("final", "best"))
    reinit_psnr: float = _opt(8.0, "reconstruction re-initialisation: a new random network while the mean "
                              "PSNR(output, input) of the last 30 steps is below this (dB) (default 8)",
                              metavar="DB")
    reinit_after: int = _opt(100, "... checked once this many reconstruction iterations are done (default 100)",
                             metavar="N")
    reinit_extension: int = _opt(100, "authors: reconstruction iterations each re-initialisation adds "
                                 "(default 100)", metavar="N")
    max_reinits: int | None = _opt(None, "give up after this many re-initialisations (authors: no limit; "
                                   "paper: 5)", metavar="N")
    psnr_channel: str | None = _opt(None, "PSNR of the re-initialisation rule: 'y' (luma, authors) or 'rgb' "
                                    "(paper)", choices=("y", "rgb"))
    best_window: int = _opt(30, "the best state of a phase has the best mean loss over this many recent "
                            "iterations (default 30)", metavar="N")
    best_every: int = _opt(20, "authors: the best state is checked every N global iterations (default 20)",
                           metavar="N")
    # ------------------------------------------------------------------ runtime
    device: str | None = _opt(None, "cpu, cuda, cuda:1 ... (default: cuda if available; under torchrun the "
                              "local rank's GPU)", metavar="DEV")
    amp: str = _opt("off", "mixed precision on GPU: --amp alone = bf16; or fp16 / off (default off)",
                    nargs="?", const="bf16", choices=("off", "bf16", "fp16"))
    channels_last: str = _opt("auto", "channels_last memory format for the identity ResNet: auto (on with "
                              "--amp on GPU), on, off", choices=("auto", "on", "off"))
    workers: int = _opt(2, "worker processes assembling batches (and threads decoding images) (default 2)",
                        metavar="N")
    seed: int = _opt(0, "random seed: initialisation, data order and augmentation are functions of it "
                     "(default 0)", metavar="S")
    resume: bool = _opt(False, "continue the run in --out from its checkpoint (options not given are taken "
                        "from the checkpoint)", flag_type="store_true")
    log_every: int = _opt(10, "write the loss to log.jsonl every N iterations (default 10)", metavar="N")
    save_every: int = _opt(500, "write checkpoint.pt every N iterations (and at every stage end) (default 500)",
                           metavar="N")
    progress: str = _opt("auto", "progress bar: auto (when stderr is a terminal), on, off",
                         choices=("auto", "on", "off"))

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.margins is not None:
            d["margins"] = [float(m) for m in self.margins]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        problems = []
        for name in ("backlit", "welllit", "out"):
            if not getattr(self, name):
                problems.append(f"--{name} is required")
        positive = ("prompt_length", "image_size", "prompt_image_size", "batch_size", "prompt_batch_size",
                    "log_every", "save_every", "best_window", "best_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("prompt_init_iters", "reconstruction_iters", "enhance_iters", "prompt_iters", "rounds",
                     "epochs", "workers", "max_reinits", "reinit_after", "max_extensions", "train_extension",
                     "prompt_extension", "reinit_extension"):
            v = getattr(self, name)
            if v is not None and int(v) < 0:
                problems.append(f"--{name.replace('_', '-')} must not be negative")
        floats = ["lr", "prompt_lr", "weight_decay", "thre_train", "thre_prompt", "reinit_psnr", "margin_no_results"]
        for name in floats:
            v = getattr(self, name)
            if v is not None and not math.isfinite(float(v)):
                problems.append(f"--{name.replace('_', '-')} must be a finite number (got {v})")
            elif v is not None and name in ("lr", "prompt_lr", "weight_decay") and float(v) < 0:
                problems.append(f"--{name.replace('_', '-')} must not be negative")
        if self.lr is not None and math.isfinite(float(self.lr)) and float(self.lr) > 1.0:
            problems.append(f"--lr {self.lr} is far above any useful learning rate (at most 1)")
        if self.margins is not None:
            if len(self.margins) != 3:
                problems.append("--margins takes three values M0 M1 M2")
            elif not all(math.isfinite(float(m)) and 0 <= float(m) <= 1 for m in self.margins):
                problems.append("--margins must be between 0 and 1 (they compare probabilities)")
        if self.image_size < 8 or self.prompt_image_size < 8:
            problems.append("--image-size and --prompt-image-size must be at least 8 pixels")
        if problems:
            raise TrainerError("; ".join(problems))


def config_fields():
    return dataclasses.fields(TrainConfig)


def training_differences(saved: TrainConfig, given: dict) -> list[str]:
    """Options explicitly given on the command line that differ from the checkpoint's
    and would change the training (everything except RUNTIME_FIELDS)."""
    out = []
    for name, value in given.items():
        if name in RUNTIME_FIELDS:
            continue
        old = getattr(saved, name)
        if name == "margins" and value is not None and old is not None:
            same = [float(v) for v in value] == [float(v) for v in old]
        elif name in ("backlit", "welllit", "out"):
            from pathlib import Path

            same = Path(str(value)).resolve() == Path(str(old)).resolve()
        else:
            same = value == old
        if not same:
            out.append(f"--{name.replace('_', '-')} {value!r} (checkpoint: {old!r})")
    return out
