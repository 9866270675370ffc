#!/usr/bin/env python
"""Whole-process images per second of ``python -m cliplit_core enhance FOLDER -o OUT`` (fresh
processes: importing torch and loading the weights are included), the pipelined folder run
(``--jobs`` default: the cores) against one image after another (``--jobs 1``), same run.

The folder is made from the real backlit photos in ../shared/data/backlit (0.5 to 3.1 MP JPEGs):
``--photos`` files, cycling through them, each resized to ``--megapixels`` (0 keeps the sizes, a
mix) and saved as a JPEG. Runs alternate between the variants (``--rounds``); the median is
reported, with the load average (``uptime``) before each run: other jobs on the machine make the
seconds longer, the ratio within one run is the figure. Every variant's files are checked to be
the same bytes as the sequential run's (``--fast`` and exact separately).

    python benchmarks/bench_folder_throughput.py                          # small: 6 photos as they are
    python benchmarks/bench_folder_throughput.py --photos 12 --megapixels 3 --modes fast,exact --rounds 3

``--torch-threads 1`` adds both variants with torch's intra-op threads set to 1 (``OMP_NUM_THREADS=1``),
to see whether the reader and writer threads compete with the network's threads.

``--openmp-default`` adds the pipelined run with OpenMP's own wait policy (threads spin a while
before they sleep) instead of the command's choice for pipelined runs (they sleep at once,
``OMP_WAIT_POLICY=PASSIVE``): torch is imported before the command starts, so it leaves OpenMP
as it is.

``--baseline REV`` adds the code of an earlier commit with its own defaults (``git archive REV``,
run from a temporary folder with the same Python): the "code of today" an issue measured against. Its files
may differ in bytes (other PNG settings), so for it the benchmark reports the largest pixel
difference to the sequential run's images instead of requiring the same bytes::

    python benchmarks/bench_folder_throughput.py --photos 12 --megapixels 3 --rounds 3 --baseline cfdd949^
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_env import DATA, ROOT, WEIGHTS, load


def make_folder(folder: Path, photos: int, megapixels: float, source: Path) -> float:
    from PIL import Image

    srcs = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not srcs:
        raise SystemExit(f"no photos in {source}")
    folder.mkdir(parents=True)
    total = 0.0
    for k in range(photos):
        with Image.open(srcs[k % len(srcs)]) as im:
            im = im.convert("RGB")
            if megapixels > 0:
                s = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
                im = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC)
            im.save(folder / f"photo{k:02d}.jpg", quality=95)
            total += im.width * im.height / 1e6
    return total


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if not p.name.startswith("."):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def max_pixel_difference(a: Path, b: Path) -> int:
    """The largest difference, in levels, between the same-named images of two output folders."""
    import numpy as np
    from PIL import Image

    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    other = sorted(p.name for p in b.iterdir() if not p.name.startswith("."))
    if names != other:
        raise SystemExit(f"error: the baseline wrote other files: {sorted(set(names) ^ set(other))}")
    worst = 0
    for n in names:
        with Image.open(a / n) as x, Image.open(b / n) as y:
            u, v = np.asarray(x, np.int32), np.asarray(y, np.int32)
            if u.shape != v.shape:
                raise SystemExit(f"error: {n}: the baseline's image is {v.shape}, ours {u.shape}")
            worst = max(worst, int(np.abs(u - v).max()))
    return worst


def extract(rev: str, dest: Path) -> Path:
    """The project's files at commit ``rev`` (git archive), unpacked into ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


# the command with torch already imported: its OpenMP settings are OpenMP's own (see --openmp-default)
TORCH_FIRST = ["-c", "import sys, torch; from cliplit_core.cli import main; sys.exit(main(sys.argv[1:]))"]


def run_once(folder: Path, out: Path, weights: Path, extra: list[str], env_extra: dict,
             device: str = "cpu", root: Path = ROOT, launcher: list[str] | None = None) -> float:
    inherited = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # each variant's own policy
    env = dict(inherited, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra)
    cmd = [sys.executable] + (launcher or ["-m", "cliplit_core"]) + ["enhance", str(folder), "-o", str(out), "--weights", str(weights),
           "--device", device] + extra
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    dt = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"failed ({' '.join(extra)}):\n{p.stderr[-2000:]}")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=6, help="files in the folder (default 6)")
    ap.add_argument("--megapixels", type=float, default=0.0,
                    help="resize every photo to this size; 0 keeps the photos' own sizes (default)")
    ap.add_argument("--modes", default="fast", help="comma-separated: fast, exact (default fast)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each variant, alternating (default 1)")
    ap.add_argument("--jobs", type=int, default=None, help="--jobs of the pipelined variant (default: the cores)")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="also run the pipelined variant with this many torch threads (OMP_NUM_THREADS)")
    ap.add_argument("--source", type=Path, default=DATA / "backlit")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--device", default="cpu", help="--device of the runs (default cpu)")
    ap.add_argument("--openmp-default", action="store_true",
                    help="also run the pipelined variant with OpenMP's own wait policy")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also run the sequential code of this git commit (e.g. the code an issue measured)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    for p in (args.source, args.weights):
        if not p.exists():
            print(f"error: {p} not found (the test data lives in ../shared/data)", file=sys.stderr)
            return 2

    pipelined = ["--jobs", str(args.jobs)] if args.jobs else []
    args.weights = args.weights.resolve()  # the runs start in other folders
    # (name, command-line options, environment, project root, launcher)
    variants = [("sequential (--jobs 1)", ["--jobs", "1"], {}, ROOT, None),
                (f"pipelined ({' '.join(pipelined) or '--jobs default'})", pipelined, {}, ROOT, None)]
    if args.torch_threads:
        env = {"OMP_NUM_THREADS": str(args.torch_threads)}
        variants += [(f"sequential, {args.torch_threads} torch threads", ["--jobs", "1"], env, ROOT, None),
                     (f"pipelined, {args.torch_threads} torch threads", pipelined, env, ROOT, None)]
    if args.openmp_default:
        variants.append(("pipelined, OpenMP's own wait policy", pipelined, {}, ROOT, TORCH_FIRST))
    rows = []
    with tempfile.TemporaryDirectory(prefix="cliplit-bench-folder-") as tmp:
        tmp = Path(tmp)
        baseline = None
        if args.baseline:
            baseline = f"code of {args.baseline} (its defaults)"
            variants.append((baseline, [], {}, extract(args.baseline, tmp / "baseline"), None))
        mp = make_folder(tmp / "in", args.photos, args.megapixels, args.source)
        print(f"# {args.photos} photos, {mp:.1f} MP in all, from {args.source.name}; whole-process runs; "
              f"{os.cpu_count()} CPUs, --device {args.device}\n")
        print("| mode | variant | seconds (median) | images/s | x sequential | "
              + (f"x {args.baseline} | " if baseline else "") + "load before runs |\n"
              + "|---|---|---|---|---|" + ("---|" if baseline else "") + "---|")
        summary = []
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            flag = ["--fast"] if mode == "fast" else []
            times: dict[str, list[float]] = {v[0]: [] for v in variants}
            loads: dict[str, list[str]] = {v[0]: [] for v in variants}
            digests, pixels = {}, {}
            for _ in range(args.rounds):
                for name, extra, env, root, launcher in variants:
                    out = tmp / "out"
                    if out.exists():
                        for f in out.iterdir():
                            f.unlink()
                        out.rmdir()
                    loads[name].append(load())
                    times[name].append(run_once(tmp / "in", out, args.weights, flag + extra, env, args.device, root,
                                                launcher))
                    digests[name] = digest(out)
                    if name == variants[0][0]:
                        keep = tmp / f"sequential-{mode}"
                        if not keep.exists():
                            out.rename(keep)
                    elif name == baseline:
                        pixels[name] = max_pixel_difference(out, tmp / f"sequential-{mode}")
            base = statistics.median(times[variants[0][0]])
            old = statistics.median(times[baseline]) if baseline else None
            for name, *_ in variants:
                t = statistics.median(times[name])
                row = {"mode": mode, "variant": name, "seconds": t, "images_per_s": args.photos / t,
                       "ratio": base / t, "loads": loads[name], "same_files": digests[name] == digests[variants[0][0]]}
                if baseline:
                    row["ratio_to_baseline"] = old / t
                if name == baseline:
                    row["max_level_difference"] = pixels[name]
                rows.append(row)
                print(f"| {mode} | {name} | {t:.1f} | {args.photos / t:.3f} | {base / t:.2f}x | "
                      + (f"{old / t:.2f}x | " if baseline else "") + f"{'; '.join(loads[name])} |", flush=True)
                if name == baseline:
                    continue
                if not row["same_files"]:
                    print(f"error: {name} wrote other files than the sequential run", file=sys.stderr)
                    return 1
            pipe = statistics.median(times[variants[1][0]])
            summary.append(f"{mode} {base / pipe:.2f}x" + (f" ({old / pipe:.2f}x the code of {args.baseline}; its images "
                                                          f"differ by at most {pixels[baseline]} levels)"
                                                          if baseline else ""))
    print(f"\nsummary: pipelined vs sequential, whole process, {args.photos} photos ({mp:.1f} MP): "
          + ", ".join(summary) + " (pipelined and sequential: same files)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
