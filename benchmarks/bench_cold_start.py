#!/usr/bin/env python
"""Time to the first enhanced image, whole process, next to the in-process figures.

Each round starts fresh processes, interleaved (a busy machine hits all of them alike):

* ``python -c "import torch"``: the floor every command pays (the baseline);
* ``python -m cliplit_core enhance PHOTO -o DIR --device cpu`` (exact);
* the same with ``--fast``;

and reports the medians and the ratio exact / ``--fast`` of the whole-process times.
Then one fresh process per mode repeats the command's steps with a clock around
each (imports, weights, reading, the network's first call, the PNG write, then
``--warm`` further calls of the network alone: the in-process figures), and the PNG
write of the exact result at zlib level 6 (Pillow's default) against ours::

    python -m benchmarks.bench_cold_start                  # 3 rounds on the 3.1 MP backlit photo
    python -m benchmarks.bench_cold_start --rounds 5 --json cold.json
    python -m benchmarks.bench_cold_start --threads 1     # CPU seconds that a busy machine barely moves
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from tests.support.data import SHARED_DATA as DATA  # noqa: E402  (CLIPLIT_SHARED_DATA or ../shared/data)
PHOTO = DATA / "backlit" / "pexels-daniel-torobekov-5320051.jpg"
WEIGHTS = DATA / "official_weights" / "enhancement_model.pth"

# one fresh process: the command's steps one by one (as cliplit_core.cli.enhance runs them)
STEPS = r"""
import sys, time, json
t = [("start", time.perf_counter(), time.process_time())]
def mark(name): t.append((name, time.perf_counter(), time.process_time()))
import torch
mark("import torch")
from cliplit_core.cli.app import build_parser
from cliplit_core.weights.checkpoint import load_network
from cliplit_core.cli.enhance import enhance_files
from cliplit_core.files.images import PNG_COMPRESS_LEVEL, read_image_info, write_image
from cliplit_core.engine.api import enhance
from cliplit_core.engine.memory import default_budget
from cliplit_core.engine.options import EnhanceOptions
from cliplit_core.engine.run_context import RunContext
mark("import cliplit_core")
photo, weights, out, fast, warm = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
net = load_network(weights)
mark("load weights")
arr, info = read_image_info(photo)
x = torch.from_numpy(arr).permute(2, 0, 1)[None]
mark("read photo")
dev = torch.device("cpu")
options = EnhanceOptions(mode="preview" if fast else "exact", precision="auto")
def run():
    return enhance(net, x, options, RunContext(device=dev, memory_budget=default_budget(dev)))
res = run()
mark("network, first call")
img = res[0][0].permute(1, 2, 0).numpy()
write_image(out + "/result.png", img, info=info)
mark("write PNG")
steady, steady_cpu = [], []
for _ in range(warm):
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    steady.append(time.perf_counter() - t0)
    steady_cpu.append(time.process_time() - c0)
png = {}
if not fast:
    for level in (6, PNG_COMPRESS_LEVEL):
        best = []
        for _ in range(3):
            t0 = time.perf_counter()
            write_image(out + f"/level{level}.png", img, info=info, png_compression=level)
            best.append(time.perf_counter() - t0)
        png[level] = {"s": min(best), "bytes": __import__("os").path.getsize(out + f"/level{level}.png")}
steps = {name: b - a for (_, a, _), (name, b, _) in zip(t, t[1:])}
steps_cpu = {name: b - a for (_, _, a), (name, _, b) in zip(t, t[1:])}
print("RESULT=" + json.dumps({"steps": steps, "steps_cpu": steps_cpu, "steady": steady, "steady_cpu": steady_cpu,
                              "png": png, "threads": torch.get_num_threads(), "torch": torch.__version__}))
"""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process, all threads)."""
    c0, t0 = _child_cpu(), time.perf_counter()
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    dt, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if run.returncode != 0:
        raise SystemExit(f"failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-2000:]}")
    return dt, cpu


def steps(photo: Path, weights: str, fast: bool, warm: int, out: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", STEPS, str(photo), weights, str(out), "1" if fast else "0",
                          str(warm)], cwd=ROOT, capture_output=True, text=True)
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT=")]
    if run.returncode != 0 or not line:
        raise SystemExit(f"step timing failed:\n{run.stderr[-2000:]}")
    return json.loads(line[-1][len("RESULT="):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", default=str(PHOTO))
    ap.add_argument("--weights", default=str(WEIGHTS) if WEIGHTS.is_file() else "official")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm", type=int, default=2, help="in-process calls of the network after the first")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of every child (OMP_NUM_THREADS; default: torch's choice, one per core)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child process
    photo = Path(args.photo).resolve()
    weights = str(Path(args.weights).resolve()) if args.weights != "official" else "official"
    from PIL import Image

    with Image.open(photo) as im:
        mp = im.size[0] * im.size[1] / 1e6
    py = sys.executable
    times: dict[str, list[float]] = {"import torch": [], "exact": [], "fast": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        base = [py, "-m", "cliplit_core", "enhance", str(photo), "-o", str(out / "cli"), "--weights", weights,
                "--device", "cpu"]
        commands = {"import torch": [py, "-c", "import torch"], "exact": base, "fast": [*base, "--fast"]}
        for r in range(args.rounds):
            for name, cmd in commands.items():
                wall, used = timed(cmd, ROOT)
                times[name].append(wall)
                cpu[name].append(used)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), file=sys.stderr)
        detail = {mode: steps(photo, weights, mode == "fast", args.warm, out) for mode in ("exact", "fast")}

    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    inproc = {m: statistics.median(d["steady"]) if d["steady"] else float("nan") for m, d in detail.items()}
    inproc_cpu = {m: statistics.median(d["steady_cpu"]) if d["steady_cpu"] else float("nan")
                  for m, d in detail.items()}
    threads = detail["exact"]["threads"]
    print(f"# cold start: one {mp:.1f} MP photo ({photo.name}), CPU, {threads} threads, "
          f"torch {detail['exact']['torch']}, {args.rounds} rounds (medians); load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (a busy machine inflates the wall times)")
    print("\n## whole process (fresh `python -m cliplit_core enhance`, to the PNG on disk)")
    print("| command | median | min | max | / import torch | CPU seconds (all threads) |")
    print("|---|---|---|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.2f} s | {min(v):.2f} s | {max(v):.2f} s | {med[k] / med['import torch']:.2f}x "
              f"| {med_cpu[k]:.2f} s |")
    print(f"\nwhole-process speed-up of --fast: **{med['exact'] / med['fast']:.2f}x** "
          f"(exact {med['exact']:.2f} s / fast {med['fast']:.2f} s; in CPU seconds "
          f"{med_cpu['exact'] / med_cpu['fast']:.2f}x)")
    print("\n## where the time goes (one fresh process per mode, first call)")
    print("| step | exact | --fast | exact, CPU s | --fast, CPU s |")
    print("|---|---|---|---|---|")
    e, f = detail["exact"], detail["fast"]
    for name in e["steps"]:
        print(f"| {name} | {e['steps'][name]:.2f} s | {f['steps'][name]:.2f} s | {e['steps_cpu'][name]:.2f} "
              f"| {f['steps_cpu'][name]:.2f} |")
    print(f"| network, warm (in-process, median of {args.warm}) | {inproc['exact']:.2f} s | {inproc['fast']:.2f} s "
          f"| {inproc_cpu['exact']:.2f} | {inproc_cpu['fast']:.2f} |")
    print(f"\nin-process speed-up of --fast (network only, warm): **{inproc['exact'] / inproc['fast']:.2f}x** "
          f"(in CPU seconds {inproc_cpu['exact'] / inproc_cpu['fast']:.2f}x)")
    png = detail["exact"]["png"]
    if png:
        (old, new) = sorted(png, key=lambda lv: int(lv) != 6)
        a, b = png[old], png[new]
        print(f"\nPNG write of the exact result (best of 3): zlib level {old} {a['s']:.2f} s, "
              f"{a['bytes'] / 1e6:.2f} MB; level {new} {b['s']:.2f} s, {b['bytes'] / 1e6:.2f} MB "
              f"(**{a['s'] / b['s']:.2f}x** faster, {b['bytes'] / a['bytes'] - 1:+.1%} size)")
    if args.json:
        Path(args.json).write_text(json.dumps({"photo": str(photo), "megapixels": mp, "rounds": times,
                                               "cpu_seconds": cpu, "medians": med, "in_process_warm": inproc,
                                               "in_process_warm_cpu": inproc_cpu,
                                               "detail": detail, "load": [load_before, load_after]}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
