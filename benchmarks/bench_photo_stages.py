#!/usr/bin/env python
"""Where one photo's time goes in a folder run: decoding, the network, writing the result.

In-process, on one 2048x1536 JPEG made from a backlit photo of ``../shared/data/backlit``: the
seconds of reading it (``read_image_info``), of the network (``api.enhance``, fast preview and
exact, in the precisions asked for) and of writing the 8-bit PNG at the default level, each
the mean of ``--rounds`` after one warm-up. The share of the files' work in the sum bounds what
overlapping them with the network (``--jobs``) can gain::

    python -m benchmarks.bench_photo_stages                 # preview in the automatic precision
    python -m benchmarks.bench_photo_stages --precisions fp32,bf16 --exact
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_env import DATA, ROOT, WEIGHTS, load



def timed(fn, rounds: int):
    fn()
    t = time.perf_counter()
    for _ in range(rounds):
        out = fn()
    return (time.perf_counter() - t) / rounds, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precisions", default="auto",
                    help="comma-separated precisions of the preview (default auto, what the command uses)")
    ap.add_argument("--exact", action="store_true", help="also time the exact path (slow on a CPU)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from cliplit_core.engine import api
    from cliplit_core.weights.checkpoint import load_network
    from cliplit_core.files.images import PNG_AUTO, read_image_info, save_image

    net = load_network(WEIGHTS)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.jpg"
        with Image.open(sorted((DATA / "backlit").glob("*.jpg"))[0]) as im:
            im.convert("RGB").resize((2048, 1536), Image.BICUBIC).save(src, quality=92)
        rows = []
        dt, (arr, _info) = timed(lambda: read_image_info(src, native=True), args.rounds)
        rows.append(("read the JPEG", dt))
        x = torch.from_numpy(np.asarray(arr, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        network = []
        for prec in args.precisions.split(","):
            opts = api.EnhanceOptions(mode=api.Mode.PREVIEW, precision=prec)
            dt, (out, _) = timed(lambda: api.enhance(net, x, opts), args.rounds)
            resolved = str(opts.precision.resolve("cpu", preview=True)).replace("torch.", "")
            network.append((f"network, fast preview, {prec}" + (f" ({resolved})" if prec == "auto" else ""), dt))
        if args.exact:
            dt, (out, _) = timed(lambda: api.enhance(net, x, api.EnhanceOptions()), max(1, args.rounds // 2))
            network.append(("network, exact, fp32", dt))
        rows += network
        y = out[0].permute(1, 2, 0).numpy()
        dt, _ = timed(lambda: save_image(Path(tmp) / "out.png", y, bits=8), args.rounds)
        rows.append((f"write the 8-bit PNG (--png-compression {PNG_AUTO}, the default)", dt))
    print(f"# one 2048x1536 photo, in-process, {torch.get_num_threads()} torch threads, load {load()}\n")
    print("| stage | seconds |\n|---|---|")
    for name, dt in rows:
        print(f"| {name} | {dt:.3f} |")
    files = rows[0][1] + rows[-1][1]
    for name, dt in network:
        print(f"\n{name}: the files are {files / (files + dt):.0%} of a sequential photo; hiding them "
              f"all gains at most {(files + dt) / dt:.2f}x (less where the network's threads already use "
              f"every core)")


if __name__ == "__main__":
    main()
