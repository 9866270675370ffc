"""How many of the core's modules one command-line photo enters, and how often control returns to a
module it had left (the "walk" of issue 21), measured with a profiler hook on a tiny photo.

    python tools/module_walk.py [--repo PATH] [--fast] [--weights FILE]

``--repo`` measures another checkout (e.g. an older commit in a git worktree) with the same photo.
Prints JSON: the modules in order of first entry, their count, and the re-entries.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def walk(repo: Path, weights: Path, fast: bool) -> dict:
    sys.path.insert(0, str(repo))
    from PIL import Image

    from cliplit_core.cli.app import main

    seq: list[str] = []

    def hook(frame, event, arg):
        if event != "call" or frame.f_code.co_name == "<module>":  # imports are not the walk
            return
        name = frame.f_globals.get("__name__", "")
        if name.startswith("cliplit_core") and (not seq or seq[-1] != name):
            seq.append(name)

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        rng = np.random.default_rng(0)
        Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(photo)
        argv = ["enhance", str(photo), "-o", str(Path(tmp) / "out"), "--weights", str(weights), "--device", "cpu",
                "--jobs", "1"] + (["--fast"] if fast else [])
        main(argv[:3] + [str(Path(tmp) / "warm")] + argv[4:])  # every module imported: only the walk is traced
        sys.setprofile(hook)
        try:
            status = main(argv)
        finally:
            sys.setprofile(None)
    first = list(dict.fromkeys(seq))
    seen, reentries = set(), 0
    for m in seq:
        reentries += m in seen
        seen.add(m)
    return {"status": status, "modules": len(first), "reentries": reentries, "order": first}


def main_(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--weights", type=Path, help="enhancement weights (default: the authors', from ../shared/data)")
    args = ap.parse_args(argv)
    weights = args.weights or Path(__file__).resolve().parents[2] / "shared" / "data" / "official_weights" / \
        "enhancement_model.pth"
    print(json.dumps(walk(args.repo.resolve(), weights, args.fast), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main_())
