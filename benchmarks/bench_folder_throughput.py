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

    python -m benchmarks.bench_folder_throughput                          # small: 6 photos as they are
    python -m benchmarks.bench_folder_throughput --photos 12 --megapixels 3 --modes fast,exact --rounds 3

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

    python -m benchmarks.bench_folder_throughput --photos 12 --megapixels 3 --rounds 3 --baseline cfdd949^

``--stages`` (issue 13) adds, after the whole-process table, the two stages of a folder run alone
and the run end to end, per mode, each in a child process of its own with torch imported, the
weights loaded and a first photo run before the clock starts (one measurement each, no rounds):

* **I/O alone**: the folder command in-process (``cliplit_core.cli.app.main``, same ``--jobs``) with
  ``enhance_files.enhance_photo`` replaced by an identity: decoding, rounding and PNG encoding;
* **network alone**: ``enhance_photo`` on every photo in turn, decoded beforehand, with the
  command's options, device and memory budget;
* **end to end**: the folder command in-process with the network.

The bound is the slower stage alone; the goal is end to end within 1.15x of it (``MET``). The
end-to-end files are checked to be the same bytes as the whole-process runs'. With ``--json``,
``--stages`` writes ``{"variants": [the rows], "stages": {mode: {"io_s", "network_s",
"end_to_end_s", "bound_s", "slower", "ratio", "met", "jobs", "device", "photos", "same_files",
"io_one_encoder_s", "encoders", "encoders_gain"}}}`` instead of the list of rows (``io_one_encoder_s``:
I/O alone with one encode thread, the baseline of the encode stage); ``benchmarks/gpu_verdict.py --folder`` judges it::

    python -m benchmarks.bench_folder_throughput --photos 12 --megapixels 3 --modes fast,exact --stages
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

from benchmarks.bench_env import DATA, ROOT, WEIGHTS, load
from benchmarks.gpu_verdict import FOLDER_GOAL, folder_goal


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
TORCH_FIRST = ["-c", "import sys, torch; from cliplit_core.cli.app import main; sys.exit(main(sys.argv[1:]))"]


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


# ---- --stages: each stage alone and the whole folder run, in-process, one child process each ----

STAGE_NAMES = {"io": "I/O alone (identity network)", "network": "network alone", "end_to_end": "end to end"}
# the child: this module imported from the benchmarks folder, one stage measured, its figures written to a file
STAGE_CHILD = ["-c", "import sys; from benchmarks import bench_folder_throughput as b; b.stage_child(sys.argv[1])"]


def command_argv(spec: dict, out: str, folder: str | None = None) -> list[str]:
    """The arguments of ``cliplit_core.cli.app.main`` for the folder run a stage measures."""
    return (["enhance", folder or spec["folder"], "-o", out, "--weights", spec["weights"], "--device", spec["device"],
             "--jobs", str(spec["jobs"])] + (["--fast"] if spec["fast"] else []))


def identity_photo(net, pixels, **_options):
    """``enhance_photo`` without the network: the decoded pixels as the result, as float32 in 0..1
    like the preview's results, so the writer rounds and encodes them as it would a real result."""
    from cliplit_core.files.images import to_float32

    return to_float32(pixels), None


def run_command(argv: list[str]) -> float:
    """Seconds of one in-process ``enhance`` command; an error when it fails."""
    from cliplit_core.cli.app import main

    t = time.perf_counter()
    status = main(argv)
    seconds = time.perf_counter() - t
    if status:
        raise SystemExit(f"error: enhance {' '.join(argv[1:])} exited with {status}")
    return seconds


def warmup_folder(spec: dict) -> str:
    """A folder holding only the first photo, for the untimed warm-up run."""
    first = sorted(p for p in Path(spec["folder"]).iterdir() if not p.name.startswith("."))[0]
    warm = Path(spec["scratch"]) / "warmup-in"
    warm.mkdir(parents=True, exist_ok=True)
    (warm / first.name).write_bytes(first.read_bytes())
    return str(warm)


def time_folder_command(spec: dict) -> float:
    """The folder command after a one-photo warm-up run (imports, weights, first calls)."""
    run_command(command_argv(spec, str(Path(spec["scratch"]) / "warmup-out"), warmup_folder(spec)))
    return run_command(command_argv(spec, spec["out"]))


def time_network(spec: dict) -> float:
    """``enhance_photo`` on every decoded photo in turn, as the command calls it (its options,
    device, memory budget and bits), after one untimed call on the first photo."""
    import torch

    from cliplit_core.weights.checkpoint import load_network
    from cliplit_core.cli.app import build_parser
    from cliplit_core.cli.enhance import options_from_args
    from cliplit_core.files.images import read_image_info
    from cliplit_core.engine.memory import default_budget, default_device
    from cliplit_core.engine.core import enhance_photo
    from cliplit_core.engine.run_context import RunContext
    from cliplit_core.sharding import rank_device
    from cliplit_core.weights.sources import resolve_weights

    args = build_parser().parse_args(command_argv(spec, spec["out"]))
    options = options_from_args(args)
    device = rank_device(args.device, 0, default_device())
    net = load_network(resolve_weights(args.weights, progress=None))
    paths = sorted(p for p in Path(spec["folder"]).iterdir() if not p.name.startswith("."))
    photos = [read_image_info(p, native=True, max_pixels=int(args.max_pixels * 1e6)) for p in paths]

    def enhance(pixels, info):
        enhance_photo(net, pixels, options=options, run=RunContext(device=device, memory_budget=default_budget(device)),
                      bits=16 if info.bits == 16 else 8)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    enhance(*photos[0])
    synchronize()
    t = time.perf_counter()
    for pixels, info in photos:
        enhance(pixels, info)
    synchronize()
    return time.perf_counter() - t


def stage_child(spec_json: str) -> None:
    """One stage of ``--stages`` in this (child) process; writes {"seconds", "jobs"} to spec["result"].
    OpenMP's wait policy is set as the command sets it for its own process, before torch is imported
    (OpenMP reads it once: cliplit_core.cli.app and .pipeline do not import torch, enhance_files does)."""
    from cliplit_core.files import pipeline
    from cliplit_core.cli.app import _passive_openmp_waits, build_parser

    spec = json.loads(spec_json)
    spec["jobs"] = spec["jobs"] or pipeline.default_jobs()
    _passive_openmp_waits(build_parser().parse_args(command_argv(spec, spec["out"])))
    import torch  # noqa: F401  (imported before any clock starts)
    from cliplit_core.cli import enhance as enhance_files

    if spec["stage"] in ("io", "io_one_encoder"):
        if not hasattr(enhance_files, "enhance_photo"):
            raise SystemExit("error: cliplit_core.cli.enhance has no enhance_photo to replace by an identity")
        enhance_files.enhance_photo = identity_photo
    if spec["stage"] == "io_one_encoder":  # the baseline of the encode threads: one result encoded at a time
        pipeline.MAX_ENCODERS = 1
    seconds = time_network(spec) if spec["stage"] == "network" else time_folder_command(spec)
    encoders = min(spec["jobs"] - 1, pipeline.MAX_ENCODERS)
    Path(spec["result"]).write_text(json.dumps({"seconds": seconds, "jobs": spec["jobs"], "encoders": encoders}))


def measure_stage(stage: str, folder: Path, scratch: Path, args, fast: bool) -> dict:
    """One stage in a child process of its own: {"seconds", "jobs"}; its files go to scratch/out."""
    scratch.mkdir(parents=True)
    spec = {"stage": stage, "folder": str(folder), "out": str(scratch / "out"), "scratch": str(scratch),
            "weights": str(args.weights), "device": args.device, "jobs": args.jobs, "fast": fast,
            "result": str(scratch / "result.json")}
    inherited = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # the command's own policy
    path = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable] + STAGE_CHILD + [json.dumps(spec)], capture_output=True, text=True,
                       env=dict(inherited, PYTHONPATH=path), cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"error: the {STAGE_NAMES[stage]} measurement failed:\n{p.stderr[-2000:]}")
    return json.loads((scratch / "result.json").read_text())


def stage_figures(io: dict, network: dict, end_to_end: dict, device: str) -> dict:
    """The --json figures of one mode: each stage's seconds, the bound (the slower stage alone),
    end to end against it and the verdict."""
    bound, slower, ratio, met = folder_goal(io["seconds"], network["seconds"], end_to_end["seconds"])
    return {"io_s": io["seconds"], "network_s": network["seconds"], "end_to_end_s": end_to_end["seconds"],
            "bound_s": bound, "slower": slower, "ratio": ratio, "met": met, "jobs": end_to_end["jobs"],
            "device": device}


def run_stages(folder: Path, tmp: Path, mode: str, args, sequential_digest: str) -> dict:
    """The stage figures of one mode (see stage_figures), and whether the end-to-end files are the
    same bytes as the whole-process sequential run's."""
    measured = {stage: measure_stage(stage, folder, tmp / f"stages-{mode}-{stage}", args, mode == "fast")
                for stage in [*STAGE_NAMES, "io_one_encoder"]}
    figures = stage_figures(measured["io"], measured["network"], measured["end_to_end"], args.device)
    figures["io_one_encoder_s"] = measured["io_one_encoder"]["seconds"]
    figures["encoders"] = measured["io"]["encoders"]
    figures["encoders_gain"] = figures["io_one_encoder_s"] / figures["io_s"]
    figures["photos"] = args.photos
    figures["same_files"] = digest(tmp / f"stages-{mode}-end_to_end" / "out") == sequential_digest
    return figures


def stage_row(mode: str, s: dict) -> str:
    """One mode's line of the stage table."""
    def cell(seconds):
        return f"{seconds:.2f} s ({s['photos'] / seconds:.2f}/s)"
    return (f"| {mode} | {cell(s['io_s'])} | {cell(s['network_s'])} | {cell(s['end_to_end_s'])} | "
            f"{s['bound_s']:.2f} s ({s['slower']}) | {s['ratio']:.2f}x | {'MET' if s['met'] else 'NOT MET'} |")


def print_stages(stages: dict) -> None:
    """The stage table, and whether the in-process end-to-end files are the whole-process runs'."""
    first = next(iter(stages.values()))
    print(f"\n# stages alone, in-process, one child process each (torch imported, weights loaded, one photo "
          f"run first: not timed); --jobs {first['jobs']}, --device {first['device']}\n")
    print("| mode | " + " | ".join(STAGE_NAMES.values()) + " | bound (slower stage) | end to end / bound | "
          f"verdict (<= {FOLDER_GOAL:g}x) |\n|---|---|---|---|---|---|---|")
    for mode, s in stages.items():
        print(stage_row(mode, s))
    for mode, s in stages.items():
        print(f"{mode}: I/O alone with one encode thread {s['io_one_encoder_s']:.2f} s, with {s['encoders']} "
              f"{s['io_s']:.2f} s: {s['encoders_gain']:.2f}x")
    for mode, s in stages.items():
        print(f"{mode}: the end-to-end files are {'the same bytes as' if s['same_files'] else 'NOT the same as'} "
              "the whole-process runs'")


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
    ap.add_argument("--stages", action="store_true",
                    help="also time I/O alone, the network alone and the folder run end to end, in-process")
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
        summary, sequential_digests, stages = [], {}, {}
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        for mode in modes:
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
            sequential_digests[mode] = digests[variants[0][0]]
            pipe = statistics.median(times[variants[1][0]])
            summary.append(f"{mode} {base / pipe:.2f}x" + (f" ({old / pipe:.2f}x the code of {args.baseline}; its images "
                                                          f"differ by at most {pixels[baseline]} levels)"
                                                          if baseline else ""))
        if args.stages:
            stages = {mode: run_stages(tmp / "in", tmp, mode, args, sequential_digests[mode]) for mode in modes}
    print(f"\nsummary: pipelined vs sequential, whole process, {args.photos} photos ({mp:.1f} MP): "
          + ", ".join(summary) + " (pipelined and sequential: same files)")
    if stages:
        print_stages(stages)
    if args.json:
        args.json.write_text(json.dumps({"variants": rows, "stages": stages} if args.stages else rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
