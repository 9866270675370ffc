"""Does training with a lighting-aware CLIP make backlit photos better? A synthetic benchmark with ground truth.

(backlit, truth) pairs come from the physical model of ``tools.lightclip.lighting`` (the
subject under-exposed by a factor, the background over-exposed and clipped, sensor noise,
the camera's gamma; ``tools.lightclip.pairs``). The trainer (``python -m trainer``, called
in-process) learns from the backlit photos of the training scenes and well-lit photos of
other scenes, unpaired, with the lighting CLIP of ``tools.lightclip`` for the prompts,
``L_clip`` and the identity loss, scaled down to a CPU (:data:`SCALES`: image size,
iterations; the recipes' other settings are their defaults). Held-out pairs, whose scenes
nothing was trained on, measure PSNR and SSIM against the truth for:

* the input itself;
* a global gamma ``x ** g`` with ``g`` fitted on the training pairs (it sees their truth,
  which the networks never do);
* the authors' released network (``official_weights/enhancement_model.pth``);
* each trained network (:data:`RUNS`): ``--recipe authors`` from ``authors-init``,
  ``--recipe authors`` from scratch, ``--recipe paper`` (from scratch).

Gate (issue 20): the authors-recipe network from ``authors-init`` beats the input by at
least :data:`GATE_DB` dB PSNR. The figures and the command are in docs/training.md::

    python -m benchmarks.bench_train_quality --out bench_out/train_quality          # full scale
    python -m benchmarks.bench_train_quality --out /tmp/tq --scale ci --runs authors-init
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tests.support.data import INIT_WEIGHTS, OFFICIAL_WEIGHTS
from cliplit_core.command_line import OneLineParser

GATE_DB = 1.0
SEED = 0


@dataclass(frozen=True)
class Scale:
    """How far the recipes are scaled down (the authors': 380 photos at 512 px, 8000 + 1000 + rounds of
    2100 + 1000 iterations)."""

    train_photos: int  # backlit training photos, and as many well-lit ones
    heldout_pairs: int
    image_size: int  # --image-size and --prompt-image-size
    eval_size: int  # side of the held-out pairs
    batch_size: int
    prompt_batch_size: int
    prompt_init_iters: int
    reconstruction_iters: int  # runs from scratch only
    enhance_iters: int
    prompt_iters: int
    rounds: int
    clip_size: str  # the lighting CLIP's build size (tools.lightclip.build.SIZES)


SCALES = {
    "full": Scale(train_photos=64, heldout_pairs=32, image_size=64, eval_size=128, batch_size=4,
                  prompt_batch_size=16, prompt_init_iters=400, reconstruction_iters=100, enhance_iters=150,
                  prompt_iters=50, rounds=2, clip_size="full"),
    "ci": Scale(train_photos=16, heldout_pairs=12, image_size=48, eval_size=96, batch_size=4,
                prompt_batch_size=8, prompt_init_iters=60, reconstruction_iters=20, enhance_iters=40,
                prompt_iters=10, rounds=1, clip_size="ci"),
}
RUNS = {  # name -> the options that make the run what it is
    "authors-init": ["--recipe", "authors", "--init-enhancer", str(INIT_WEIGHTS)],
    "authors-scratch": ["--recipe", "authors"],
    "paper": ["--recipe", "paper"],
}
GATED_RUN = "authors-init"


# --------------------------------------------------------------------------- data
def write_training_photos(folder: Path, scale: Scale) -> tuple[Path, Path]:
    """backlit/ (photos of the training scenes) and welllit/ (other scenes), PNG, for the trainer."""
    from PIL import Image

    from tools.lightclip.pairs import make_pairs, make_photos, to_uint8

    backlit, welllit = folder / "backlit", folder / "welllit"
    sets = {backlit: make_pairs(SEED, "enhancer-train", scale.train_photos, scale.image_size).backlit,
            welllit: make_photos(SEED, "enhancer-welllit", scale.train_photos, "well-lit", scale.image_size)}
    for out, images in sets.items():
        out.mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(to_uint8(images)):
            Image.fromarray(pixels).save(out / f"{i:04d}.png")
    return backlit, welllit


def fit_gamma(backlit: torch.Tensor, truth: torch.Tensor) -> float:
    """The exponent ``g`` in 0.1..2 whose ``backlit ** g`` is closest to ``truth`` (mean squared error)."""
    candidates = torch.linspace(0.1, 2.0, 191)
    errors = torch.stack([(backlit.clamp_min(0) ** g - truth).square().mean() for g in candidates])
    return float(candidates[int(errors.argmin())])


# --------------------------------------------------------------------------- training
def trainer_argv(run: str, scale: Scale, data: tuple[Path, Path], out: Path, clip) -> list[str]:
    """The command line of one run (``python -m trainer`` options)."""
    argv = [*RUNS[run], "--backlit", str(data[0]), "--welllit", str(data[1]), "--out", str(out),
            "--clip-model", str(clip.config), "--clip-pretrained", str(clip.weights),
            "--identity-model", str(clip.config), "--identity-pretrained", str(clip.weights),
            "--image-size", str(scale.image_size), "--prompt-image-size", str(scale.image_size),
            "--batch-size", str(scale.batch_size), "--prompt-batch-size", str(scale.prompt_batch_size),
            "--prompt-init-iters", str(scale.prompt_init_iters), "--enhance-iters", str(scale.enhance_iters),
            "--prompt-iters", str(scale.prompt_iters), "--rounds", str(scale.rounds),
            "--device", "cpu", "--workers", "0", "--progress", "off", "--seed", str(SEED)]
    if "--init-enhancer" not in RUNS[run]:
        argv += ["--reconstruction-iters", str(scale.reconstruction_iters)]
    if "authors" in RUNS[run]:
        argv += ["--max-extensions", "0"]  # their phases grow without a cap: bound the CPU run
    return argv


def train(run: str, scale: Scale, data: tuple[Path, Path], out: Path, clip) -> Path:
    """Train one run into ``out``; returns its cliplit.safetensors."""
    from trainer.cli import main as trainer_main

    status = trainer_main(trainer_argv(run, scale, data, out, clip))
    if status != 0:
        raise RuntimeError(f"the trainer failed on run {run!r} (exit status {status}); see the messages above")
    return out / "cliplit.safetensors"


# --------------------------------------------------------------------------- evaluation
def network_enhancer(weights: Path):
    """images -> the network's results (exact, whole images, float32)."""
    from cliplit_core.engine.inference import enhance
    from cliplit_core.weights.checkpoint import load_network

    net = load_network(weights)
    return lambda images: enhance(net, images, tile=None, dtype=torch.float32).image


@dataclass(frozen=True)
class Row:
    method: str
    psnr: float
    ssim: float
    gain_db: float  # PSNR over the input's


def evaluate(methods: dict, pairs) -> list[Row]:
    """Mean PSNR and SSIM of each method's results on ``pairs`` (method name -> images -> images)."""
    from tools.lightclip.quality import psnr, ssim

    base = float(psnr(pairs.backlit, pairs.truth).mean())
    rows = []
    for name, method in methods.items():
        with torch.no_grad():
            result = method(pairs.backlit).clamp(0, 1)
        p = float(psnr(result, pairs.truth).mean())
        rows.append(Row(name, p, float(ssim(result, pairs.truth).mean()), p - base))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| method | PSNR (dB) | SSIM | PSNR - input (dB) |", "|---|---|---|---|"]
    lines += [f"| {r.method} | {r.psnr:.2f} | {r.ssim:.3f} | {r.gain_db:+.2f} |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the benchmark
def light_clip_for(scale: Scale, folder: Path, given: Path | None):
    """The lighting CLIP: the one in ``given`` (a folder from tools.make_light_clip), else built into ``folder``."""
    from tools.lightclip.build import SIZES, LightClip, build

    if given is not None:
        clip = LightClip.in_folder(given)
        if not clip.exists():
            raise SystemExit(f"error: --clip {given}: no {clip.config.name} and {clip.weights.name} in it")
        return clip
    clip = LightClip.in_folder(folder)
    spec = SIZES[scale.clip_size]
    return clip if clip.built_with(SEED, spec) else build(folder, SEED, spec)


def run_benchmark(out: Path, scale: Scale, runs: list[str], clip) -> list[Row]:
    """Train ``runs`` and evaluate them with the baselines on the held-out pairs."""
    from tools.lightclip.pairs import make_pairs

    data = write_training_photos(out / "data", scale)
    methods = {"input": lambda x: x}
    fit = make_pairs(SEED, "enhancer-train", scale.train_photos, scale.image_size)
    g = fit_gamma(fit.backlit, fit.truth)
    methods[f"global gamma {g:.2f} (fitted on the training pairs' truth)"] = lambda x: x.clamp_min(0) ** g
    if OFFICIAL_WEIGHTS.exists():
        methods["authors' released network"] = network_enhancer(OFFICIAL_WEIGHTS)
    for run in runs:
        start = time.perf_counter()
        weights = train(run, scale, data, out / "runs" / run, clip)
        print(f"{run}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        methods[f"trained: {run}"] = network_enhancer(weights)
    return evaluate(methods, make_pairs(SEED, "pairs", scale.heldout_pairs, scale.eval_size))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m benchmarks.bench_train_quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="work folder: training photos, runs, results.json (runs already there are refused)")
    p.add_argument("--scale", choices=sorted(SCALES), default="full", help="full (default) or ci")
    p.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS), metavar="RUN",
                   help=f"which runs to train (default all: {', '.join(RUNS)})")
    p.add_argument("--clip", type=Path, default=None, metavar="DIR",
                   help="a lighting CLIP made by tools.make_light_clip (default: build one into OUT/light_clip)")
    p.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: PyTorch's)")
    args = p.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a folder")
    if (args.out / "runs").exists():
        p.error(f"--out {args.out} already holds runs; choose a new folder")
    if GATED_RUN in args.runs and not INIT_WEIGHTS.exists():
        p.error(f"run {GATED_RUN} needs {INIT_WEIGHTS} (set CLIPLIT_SHARED_DATA to the test data folder)")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = SCALES[args.scale]
    start = time.perf_counter()
    clip = light_clip_for(scale, args.out / "light_clip", args.clip)
    rows = run_benchmark(args.out, scale, args.runs, clip)
    seconds = time.perf_counter() - start
    print(table(rows))
    gated = next((r for r in rows if r.method == f"trained: {GATED_RUN}"), None)
    if gated is not None:
        verdict = "met" if gated.gain_db >= GATE_DB else "NOT met"
        print(f"gate ({GATED_RUN} >= input + {GATE_DB:g} dB): {verdict} ({gated.gain_db:+.2f} dB)")
    print(f"{args.scale} scale, {seconds:.0f} s, {torch.get_num_threads()} threads")
    record = {"scale": asdict(scale), "runs": args.runs, "seconds": round(seconds, 1),
              "rows": [asdict(r) for r in rows], "clip": str(clip.weights)}
    (args.out / "results.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
