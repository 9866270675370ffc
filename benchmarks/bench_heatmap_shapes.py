"""Whole-process cost of ``score --heatmap`` on a thin strip vs a photo.

Runs ``python -m cliplit_core score IMAGE --heatmap DIR`` as a fresh process on a
512 x 384 photo-sized image and on a 2048 x 8 strip, alternating, ``--repeats``
times each, and prints the median wall time of each and their ratio (strip /
photo), together with the number of heatmap windows each image gets.

CLIP is ViT-B-32 with random weights (``--clip-pretrained none``: only the shapes
matter for timing, nothing is downloaded), with a random prompt pair of 16
tokens; ``--tiny`` uses a tiny config instead (a quick smoke run).

    python -m benchmarks.bench_heatmap_shapes --repeats 3
    python -m benchmarks.bench_heatmap_shapes --tiny --repeats 1

``--baseline-repo DIR`` also times the same commands with the code in DIR (another
checkout, e.g. ``git archive 022b383 | tar -x -C /tmp/cliplit_before``), so that
the two rules are compared in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from cliplit_core.clip.heatmap import heatmap_grid  # noqa: E402

TINY = {"embed_dim": 32,
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16}}
SHAPES = {"photo 512x384": (384, 512), "strip 2048x8": (8, 2048)}


def previous_rule_windows(h: int, w: int, window: float = 0.5) -> int:
    """Windows of the previous, unbounded rule (squares of ``window`` x the shorter side, stride
    half a window), for the baseline's line."""
    win = max(1, round(window * min(h, w)))
    step = max(1, round(win / 2))

    def count(length):
        n = len(range(0, length - win + 1, step))
        return n + (0 if (n - 1) * step == length - win else 1)

    return count(h) * count(w)


def make_model(folder: Path, tiny: bool) -> list[str]:
    """Write a prompt-pair file for the CLIP used; returns the score options that select it."""
    from cliplit_core.clip.backbone import RandomWeightsWarning, build_backbone
    from cliplit_core.clip.prompts import PromptPair

    clip = "ViT-B-32"
    if tiny:
        clip = str(folder / "tiny_clip.json")
        Path(clip).write_text(json.dumps(TINY), encoding="utf-8")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        backbone = build_backbone(clip, "none")
    pair = PromptPair.random(backbone, 16, generator=torch.Generator().manual_seed(0))
    pair.save(folder / "prompt.safetensors")
    return ["--model", str(folder / "prompt.safetensors"), "--clip-model", clip, "--clip-pretrained", "none"]


def write_image(path: Path, h: int, w: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    arr = np.clip(ramp + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)


def run_once(image: Path, options: list[str], out: Path, repo: Path) -> float:
    cmd = [sys.executable, "-m", "cliplit_core", "score", str(image), *options, "--device", "cpu",
           "--heatmap", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"score failed ({res.returncode}):\n{res.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="tiny CLIP config instead of ViT-B-32")
    ap.add_argument("--baseline-repo", type=Path, default=None, metavar="DIR",
                    help="also time the score command of another checkout")
    args = ap.parse_args()
    repos = {"this checkout": REPO}
    if args.baseline_repo is not None:
        repos["baseline " + str(args.baseline_repo)] = args.baseline_repo.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        options = make_model(tmp, args.tiny)
        images = {}
        for name, (h, w) in SHAPES.items():
            images[name] = tmp / f"{name.split()[0]}.png"
            write_image(images[name], h, w)
        times = {(repo, name): [] for repo in repos for name in SHAPES}
        for _ in range(args.repeats):  # alternate, so that machine load hits all cases alike
            for repo, path in repos.items():
                for name in SHAPES:
                    times[repo, name].append(run_once(images[name], options, tmp / "heat", path))
                    print(f"  ({repo}, {name}: {times[repo, name][-1]:.2f} s)", file=sys.stderr, flush=True)
    clip = "tiny config" if args.tiny else "ViT-B-32"
    print(f"score --heatmap, whole process, CLIP {clip} (random weights), cpu, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    for repo in repos:
        print(f" {repo}:")
        med = {}
        for name, (h, w) in SHAPES.items():
            med[name] = statistics.median(times[repo, name])
            n = len(heatmap_grid(h, w)) if repo == "this checkout" else previous_rule_windows(h, w)
            print(f"  {name:14s} {n:5d} windows  {med[name]:7.2f} s  "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times[repo, name])})")
        print(f"  strip / photo = {med['strip 2048x8'] / med['photo 512x384']:.2f}x")


if __name__ == "__main__":
    main()
