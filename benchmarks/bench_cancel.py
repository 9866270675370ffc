"""How fast Cancel stops an enhancement run, in-process, on the four cases of issue 21.

Each case runs ``cliplit_core.engine.api.enhance`` with a :class:`RunContext` whose
``raise_if_cancelled`` raises once ``--after`` seconds have passed since the start (the moment a
user presses Cancel). The figure is the latency from that moment until control returns to the
caller, how many progress calls the run made before it stopped, and how many progress reports
a full run of the case makes (as the engine plans it; a progress bar that moves needs at least
2). A run that finishes before the request reports "done first".

    python -m benchmarks.bench_cancel                 # all four cases, official weights
    python -m benchmarks.bench_cancel --cases preview_big --after 2 --json cancel.json

The machine's load average is printed beside the figures (a shared machine moves the seconds).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

from benchmarks.bench_env import DATA, WEIGHTS, load

CASES = {  # name: (batch, height, width, mode)
    "preview_big": (1, 3072, 4096, "preview"),
    "exact_batch": (16, 384, 512, "exact"),
    "preview_batch": (16, 384, 512, "preview"),
    "exact_big": (1, 3072, 4096, "exact"),
}


class Cancelled(Exception):
    """What the host raises to stop a run (ComfyUI's InterruptProcessingException)."""


def photo_batch(batch: int, h: int, w: int) -> torch.Tensor:
    """[batch, 3, h, w]: a real backlit photo resized (bilinear), a different crop offset per image."""
    from cliplit_core.files.images import read_image

    src = read_image(DATA / "backlit_small" / "110_51093502029_o.png")
    x = torch.from_numpy(src).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(h + batch, w + batch), mode="bilinear", align_corners=False).clamp(0, 1)
    return torch.cat([x[:, :, i:i + h, i:i + w] for i in range(batch)]).contiguous()


def measure(model, name: str, after: float) -> dict:
    from cliplit_core.engine.api import enhance
    from cliplit_core.engine.options import EnhanceOptions
    from cliplit_core.engine.run_context import RunContext

    batch, h, w, mode = CASES[name]
    images = photo_batch(batch, h, w)
    calls = []
    state = {"start": None}

    def progress(done, total):
        calls.append((time.perf_counter(), done, total))

    def raise_if_cancelled():
        if time.perf_counter() - state["start"] >= after:
            raise Cancelled()

    run = RunContext(device="cpu", progress=progress, raise_if_cancelled=raise_if_cancelled)
    options = EnhanceOptions(mode=mode)
    from cliplit_core.engine.core import Engine

    planned = Engine(model, options, RunContext(device="cpu"), batch=batch, height=h, width=w).planned_reports(batch)
    state["start"] = time.perf_counter()
    try:
        enhance(model, images, options, run)
        end, stopped = time.perf_counter(), False
    except Cancelled:
        end, stopped = time.perf_counter(), True
    elapsed = end - state["start"]
    before = [c for c in calls if c[0] - state["start"] < after]
    return {"case": name, "batch": batch, "size": f"{w}x{h}", "mode": mode, "stopped": stopped,
            "latency_s": round(elapsed - after, 3) if stopped else None, "run_s": round(elapsed, 3),
            "progress_calls": len(calls), "progress_calls_before_cancel": len(before),
            "progress_reports_full_run": planned}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--after", type=float, default=3.0, help="seconds from the start to the Cancel request")
    ap.add_argument("--weights", default=str(WEIGHTS))
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [n for n in names if n not in CASES]
    if bad:
        print(f"error: unknown case {bad[0]!r}; choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    from cliplit_core.weights.checkpoint import load_network

    net = load_network(args.weights)
    print(f"load average {load()}; torch threads {torch.get_num_threads()}; Cancel at {args.after} s")
    print("| case | input | mode | latency after Cancel | progress calls before Cancel | progress reports in a full run |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name in names:
        r = measure(net, name, args.after)
        rows.append(r)
        lat = f"{r['latency_s']:.2f} s" if r["stopped"] else f"done first ({r['run_s']:.1f} s)"
        print(f"| {name} | {r['batch']} x {r['size']} | {r['mode']} | {lat} | {r['progress_calls']} | "
              f"{r['progress_reports_full_run']} |", flush=True)
    print(f"load average {load()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
