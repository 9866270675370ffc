#!/usr/bin/env python
"""Read the JSON of ``bench_inference.py --device cuda`` and judge issue 5's GPU goals; with
``--folder``, also the JSON of ``bench_folder_throughput.py --stages`` and issue 13's folder goal.

    python -m benchmarks.gpu_verdict gpu.json
    python -m benchmarks.gpu_verdict --folder folder.json          # the folder goal alone

1. **Throughput**: at each size of the throughput section, the fastest variant of ours that
   enhances whole images (light map *and* division) with at least 99.9 % of pixels within 1/255
   of the authors' strict float32 result, against the authors' float32 (PyTorch defaults) row
   of the same run; the goal is 10x.
2. **Bounded memory**: every tiled row of the bounded-memory section (image on the CPU) must stay
   at or below 1.5 GiB, first call included, and meet its fidelity bar (float32: light map within
   1e-5; half precision: the 1/255 bar).

It then prints the settings that the fastest passing variant stands for (``AUTO_CUDA_DTYPE``,
``fastnet.default_options`` on CUDA, ``CUDNN_BENCHMARK``), to be written into the core by hand.
3. **Folder throughput** (``--folder``): per mode, the folder run end to end within 1.15x of the
   slower of its two stages alone (decoding + encoding with the same ``--jobs``, the network),
   i.e. the network hidden behind the files or the files behind the network.

Exit status 0 when every goal judged is met, 1 otherwise, 2 for an unreadable file.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

THROUGHPUT_GOAL = 10.0
PEAK_LIMIT_GIB = 1.5
WITHIN_BAR = 99.9      # % of pixels within 1/255
FP32_LIGHT_BAR = 1e-5  # max |dL| for float32 tiles
BASELINE = "authors fp32 whole (PyTorch defaults: TF32 convs)"
FOLDER_GOAL = 1.15     # end to end / the slower stage alone
STAGE_SECONDS = ("io_s", "network_s", "end_to_end_s")


def _number(pattern: str, text: str, default=0):
    found = re.search(pattern, text)
    return int(found.group(1)) if found else default


def settings_of(method: str) -> dict:
    """What a variant name says about its settings (dtype, layout, padding, autotuning, tile)."""
    m = method
    dtype = "float16" if "fp16" in m else "bfloat16" if "bf16" in m else "float32" if "fp32" in m else "auto"
    return {"dtype": dtype, "channels_last": bool(re.search(r"\bCL\b|channels_last", m)),
            "pad_in": _number(r"pad (\d+)/", m) or _number(r"pad_in (\d+)", m),
            "pad_out": _number(r"pad \d+/(\d+)", m) or _number(r"pad_out (\d+)", m),
            "fold_padding": "no folding" not in m, "cudnn_benchmark": "cudnn.benchmark on" in m,
            "tile": _number(r"tiled (\d+)", m, None), "default": "DEFAULT" in m}


def meets_bar(row: dict) -> bool:
    f = row.get("fid") or {}
    return bool(f) and f.get("within", 0.0) >= WITHIN_BAR


def throughput_verdict(rows: list[dict]) -> tuple[bool, list[str], dict | None]:
    lines, ok_all, best_overall = [], True, None
    sizes = []
    for r in rows:
        if r.get("method") == BASELINE and r["size"] not in sizes:
            sizes.append(r["size"])
    if not sizes:
        return False, ["no throughput rows with the authors' baseline"], None
    for size in sizes:
        here = [r for r in rows if r["size"] == size and not r.get("error") and "mps" in r]
        base = next(r for r in here if r["method"] == BASELINE)
        ours = [r for r in here if r["method"].startswith("ours") and "light map only" not in r["method"]]
        passing = [r for r in ours if meets_bar(r)]
        if not passing:
            ok_all = False
            lines.append(f"{size}: no variant of ours meets the 1/255 bar")
            continue
        best = max(passing, key=lambda r: r["mps"])
        ratio = best["mps"] / base["mps"]
        ok = ratio >= THROUGHPUT_GOAL
        ok_all &= ok
        lines.append(f"{size}: authors fp32 {base['mps']:.1f} MP/s; fastest of ours within the bar: "
                     f"{best['method']} {best['mps']:.1f} MP/s = {ratio:.2f}x "
                     f"({best['fid']['within']:.3f} % within 1/255, max |dE| {best['fid']['dE']:.1e}) -> "
                     + ("MET" if ok else f"NOT MET (goal {THROUGHPUT_GOAL:g}x)"))
        default = [r for r in ours if settings_of(r["method"])["default"] and settings_of(r["method"])["tile"] is None]
        if default:
            d = default[0]
            lines.append(f"    current default: {d['mps']:.1f} MP/s = {d['mps'] / base['mps']:.2f}x, "
                         f"{(d.get('fid') or {}).get('within', float('nan')):.3f} % within 1/255")
        if best_overall is None or best["mps"] > best_overall["mps"]:
            best_overall = best
    return ok_all, lines, best_overall


def memory_verdict(rows: list[dict]) -> tuple[bool, list[str]]:
    tiled = [r for r in rows if r["method"].startswith("ours") and "tiled" in r["method"] and "peak_gib" in r]
    if not tiled:
        return False, ["no bounded-memory rows"]
    lines, ok_all = [], True
    for r in tiled:
        s = settings_of(r["method"])
        peak = max(r.get("peak_gib", 0.0), r.get("peak_first_gib", 0.0))
        f = r.get("fid") or {}
        if s["dtype"] == "float32":
            fid_ok = bool(f) and f.get("dL", 1.0) <= FP32_LIGHT_BAR
            bar = f"dL {f.get('dL', float('nan')):.1e} <= {FP32_LIGHT_BAR:g}"
        else:
            fid_ok = meets_bar(r)
            bar = f"{f.get('within', float('nan')):.3f} % within 1/255"
        ok = peak <= PEAK_LIMIT_GIB and fid_ok
        ok_all &= ok
        lines.append(f"{r['size']}: {r['method']}: peak {peak:.2f} GiB, {bar} -> {'MET' if ok else 'NOT MET'}")
    return ok_all, lines


def folder_goal(io: float, network: float, end_to_end: float) -> tuple[float, str, float, bool]:
    """(bound, which stage it is, end to end / bound, met): the bound is the slower stage alone."""
    bound, slower = (io, "I/O") if io >= network else (network, "network")
    ratio = end_to_end / bound
    return bound, slower, ratio, ratio <= FOLDER_GOAL


def stage_line(mode: str, s: dict) -> tuple[bool, str]:
    """One mode of the folder goal, judged from its seconds (not from the benchmark's own verdict)."""
    missing = [k for k in STAGE_SECONDS if not (isinstance(s.get(k), (int, float)) and s[k] > 0)]
    if missing:
        return False, f"{mode}: no positive {', '.join(missing)} -> NOT MET"
    io, network, end_to_end = (s[k] for k in STAGE_SECONDS)
    bound, slower, ratio, ok = folder_goal(io, network, end_to_end)
    return ok, (f"{mode}: I/O alone {io:.2f} s, network alone {network:.2f} s, end to end {end_to_end:.2f} s "
                f"= {ratio:.2f}x the slower stage ({slower}), --jobs {s.get('jobs', '?')}, {s.get('device', '?')} -> "
                + ("MET" if ok else f"NOT MET (goal <= {FOLDER_GOAL:g}x)"))


def folder_verdict(report) -> tuple[bool, list[str]]:
    """Issue 13's folder goal for every mode of a ``bench_folder_throughput.py --stages`` report."""
    stages = report.get("stages") if isinstance(report, dict) else None
    if not stages:
        return False, ["no stage figures (run bench_folder_throughput.py with --stages)"]
    judged = [stage_line(mode, s) for mode, s in stages.items()]
    return all(ok for ok, _ in judged), [line for _, line in judged]


def read_json(path: str):
    """The file's JSON; None (after a one-line error) when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {path}: {e}", file=sys.stderr)
        return None


def inference_verdict(rows: list[dict]) -> bool:
    """Issue 5's goals 1 and 2, printed, and the settings of the fastest variant within the bar."""
    mem_rows = [r for r in rows if r.get("section") == "memory"]
    thr_rows = [r for r in rows if r.get("section") == "throughput"]
    ok1, lines1, best = throughput_verdict(thr_rows)
    ok2, lines2 = memory_verdict(mem_rows)
    print("# Goal 1: GPU throughput (>= 10x the authors' fp32, >= 99.9 % of pixels within 1/255)")
    print("\n".join(lines1))
    print("\n# Goal 2: GPU peak <= 1.5 GiB, tiled, image on the CPU")
    print("\n".join(lines2))
    if best is not None:
        s = settings_of(best["method"])
        print("\n# Settings of the fastest variant within the bar (set them in the core, then rerun):")
        print(f"precision.AUTO_CUDA_DTYPE = \"{s['dtype']}\"")
        print(f"fastnet.default_options (cuda) = {{'channels_last': {s['channels_last']}, 'pad_in': {s['pad_in']}, "
              f"'pad_out': {s['pad_out']}, 'fold_padding': {s['fold_padding']}}}")
        print(f"inference.CUDNN_BENCHMARK = {s['cudnn_benchmark']}")
    return ok1 and ok2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="?", help="the --json file of bench_inference.py --device cuda")
    ap.add_argument("--folder", metavar="FILE", help="the --json file of bench_folder_throughput.py --stages")
    args = ap.parse_args(argv)
    if not args.json and not args.folder:
        ap.error("give the bench_inference.py JSON, --folder FILE, or both")
    rows = read_json(args.json) if args.json else []
    report = read_json(args.folder) if args.folder else {}
    if rows is None or report is None:
        return 2
    ok = True
    if args.json:
        ok &= inference_verdict(rows)
    if args.folder:
        folder_ok, lines = folder_verdict(report)
        print(("\n" if args.json else "") + f"# Folder throughput: end to end <= {FOLDER_GOAL:g}x the slower stage alone "
              "(I/O with the same --jobs, or the network)")
        print("\n".join(lines))
        ok &= folder_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
