#!/usr/bin/env python
"""Inference benchmark: method x image size -> MP/s, peak memory, fidelity.

Every run compares against the authors' formulation (benchmarks/authors_formulation.py:
float32, NCHW, whole image, torch.no_grad) computed in the same run.

CPU (each method runs in its own child process, so its peak resident memory is its own;
rounds are interleaved across methods, times are medians)::

    python -m benchmarks.bench_inference --device cpu            # the 3.1 MP photo
    python -m benchmarks.bench_inference --device cpu --sizes 0.05 --rounds 1   # smoke test

GPU (one process; peak = torch.cuda.max_memory_allocated above what was allocated
before the call; a few minutes on an H100)::

    python -m benchmarks.bench_inference --device cuda

Fidelity columns: ``dL`` = max |light map - reference light map|; ``dE`` = max |enhanced
image - reference| (0..1 scale); ``<=1/255`` = percentage of pixels whose three channels
are all within 1/255 of the reference. Reference = the authors' formulation in strict
float32 (TF32 off) where it fits, else our strict float32 tiled result (marked ``*``).
Weights and photo: ``.devdata/`` in the repository if present, else ``../shared/data``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.authors_formulation import authors_enhance, load_authors_net  # noqa: E402
from benchmarks.procmem import rss_kib  # noqa: E402

from cliplit_core.light import fastnet  # noqa: E402
from cliplit_core.weights.checkpoint import load_network  # noqa: E402
from cliplit_core.files.images import read_image  # noqa: E402
from cliplit_core.engine.inference import enhance  # noqa: E402
from cliplit_core.engine.precision import compute_dtype  # noqa: E402

GIB = 1024 ** 3


from tests.support.data import SHARED_DATA  # noqa: E402


def _first_existing(paths):
    for p in paths:
        if Path(p).is_file():
            return str(p)
    return str(paths[-1])


DEFAULT_WEIGHTS = _first_existing([ROOT / ".devdata" / "enhancement_model.pth",
                                   SHARED_DATA / "official_weights" / "enhancement_model.pth"])
DEFAULT_IMAGE = _first_existing([ROOT / ".devdata" / "110_51093502029_o.jpg",
                                 SHARED_DATA / "backlit" / "110_51093502029_o.jpg"])


def load_photo(path: str, mp: float | None, device="cpu") -> torch.Tensor:
    """[1, 3, H, W] float32 in 0..1: the photo, resized (bilinear, aspect kept) to ``mp`` megapixels."""
    x = torch.from_numpy(read_image(path)[..., :3].copy()).permute(2, 0, 1)[None].contiguous()
    if mp is None:
        return x.to(device)
    H, W = x.shape[-2:]
    s = math.sqrt(mp * 1e6 / (H * W))
    size = (max(2, round(H * s)), max(2, round(W * s)))
    with torch.no_grad():
        y = F.interpolate(x.to(device), size=size, mode="bilinear", align_corners=False, antialias=s < 1)
        return y.clamp_(0, 1).contiguous()


def size_label(x: torch.Tensor) -> str:
    return f"{x.shape[-2] * x.shape[-1] / 1e6:.1f} MP ({x.shape[-1]}x{x.shape[-2]})"


def fidelity(E, L, E_ref, L_ref) -> dict:
    """Max light-map / image differences and % of pixels within 1/255 (computed on CPU in chunks)."""
    dl = de = 0.0
    bad = 0
    n = E.shape[-2] * E.shape[-1] * E.shape[0]
    rows = max(1, (1 << 24) // max(1, E.shape[-1]))
    for y0 in range(0, E.shape[-2], rows):
        sl = slice(y0, y0 + rows)
        e = E[..., sl, :].float().cpu()
        er = torch.nan_to_num(E_ref[..., sl, :].float().cpu(), nan=0.0)
        d = (e - er).abs()
        de = max(de, d.max().item())
        bad += (d.amax(1) > 1 / 255 + 1e-6).sum().item()
        dl = max(dl, (L[..., sl, :].float().cpu() - L_ref[..., sl, :].float().cpu()).abs().max().item())
    return {"dL": dl, "dE": de, "within": 100.0 * (1 - bad / n)}


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n## {title}\n")
    head = ("| method | size | MP/s | x authors | peak mem | dL | dE | <=1/255 |\n"
            "|---|---|---|---|---|---|---|---|")
    print(head)
    for r in rows:
        if r.get("error"):
            print(f"| {r['method']} | {r['size']} | fails: {r['error'][:90]} | | | | | |")
            continue
        f = r.get("fid") or {}
        ref = "*" if r.get("ref_ours") else ""
        fid = (f"{f['dL']:.1e}{ref} | {f['dE']:.1e}{ref} | {f['within']:.3f}%{ref}" if f else "- | - | -")
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") else "-"
        mem = r.get("mem_label") or "-"
        mps = f"{r['mps']:.1f}" if r["mps"] >= 10 else f"{r['mps']:.3g}"
        print(f"| {r['method']} | {r['size']} | {mps} | {sp} | {mem} | {fid} |")
    sys.stdout.flush()


# =========================================================================== CPU mode


CPU_METHODS = {
    "authors fp32 whole": dict(kind="authors"),
    "ours fp32 whole": dict(kind="ours", tile=None),
    "ours fp32 whole NCHW": dict(kind="ours", tile=None, options={"channels_last": False, "pad_in": 0, "pad_out": 0}),
    "ours bf16 whole (AVX-512 BF16 CPUs)": dict(kind="ours", tile=None, dtype=torch.bfloat16),
    "ours fp32 tiled 512": dict(kind="ours", tile=512),
    "ours fp32 tiled 1024": dict(kind="ours", tile=1024),
    "ours preview (--fast)": dict(kind="preview"),
}


def cpu_child(args) -> None:
    """Run one method on one size, print a JSON line (times, peak RSS) and save the outputs."""
    spec = CPU_METHODS[args.child]
    torch.set_num_threads(args.threads or torch.get_num_threads())
    x = load_photo(args.image, None if args.size == "photo" else float(args.size))
    weights = args.weights
    if spec["kind"] == "authors":
        net = load_authors_net(weights)
        run = lambda: authors_enhance(net, x)  # noqa: E731
    else:
        net = load_network(weights)
        if spec.get("options"):  # these FastWeights options instead of fastnet.default_options
            dt = spec.get("dtype", torch.float32)
            net = fastnet.FastWeights(net, "cpu", dt, **spec["options"])
        if spec["kind"] == "preview":
            from cliplit_core.engine.preview import enhance_preview

            run = lambda: (lambda r: (r.image, r.light))(enhance_preview(net, x, device="cpu"))  # noqa: E731
        else:
            run = lambda: (lambda r: (r.image, r.light))(  # noqa: E731
                enhance(net, x, tile=spec["tile"], device="cpu", dtype=spec.get("dtype", torch.float32)))
    base = rss_kib("VmRSS")
    times = []
    for _ in range(args.inner):
        t = time.perf_counter()
        E, L = run()
        times.append(time.perf_counter() - t)
    peak = rss_kib("VmHWM")
    if args.out:
        np.save(args.out + "_E.npy", E.float().numpy())
        np.save(args.out + "_L.npy", L.float().numpy())
    print("RESULT " + json.dumps({"times": times, "peak_kib": peak, "base_kib": base,
                                  "size": size_label(x), "pixels": x.shape[-2] * x.shape[-1]}))


def cpu_main(args) -> None:
    methods = args.methods.split(",") if args.methods else list(CPU_METHODS)
    methods = [m.strip() for m in methods]
    print(f"# CPU benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores; photo {Path(args.image).name}; {args.rounds} interleaved rounds")
    all_rows = []
    for size in args.sizes.split(","):
        tmp = tempfile.mkdtemp(prefix="cliplit_bench_")
        res: dict[str, list] = {m: [] for m in methods}
        for r in range(args.rounds):
            for m in methods:
                out = os.path.join(tmp, f"m{methods.index(m)}") if r == 0 else ""
                cmd = [sys.executable, "-m", __spec__.name, "--child", m, "--size", size, "--weights", args.weights,
                       "--image", args.image, "--inner", str(args.inner)] + (["--out", out] if out else [])
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
                if p.returncode or not line:
                    res[m].append({"error": (p.stderr.strip().splitlines() or ["?"])[-1]})
                else:
                    res[m].append(json.loads(line[0][7:]))
                print(f"  round {r + 1} {m}: "
                      + (f"{min(res[m][-1]['times']):.2f} s" if "times" in res[m][-1] else res[m][-1]["error"]),
                      flush=True)
        ref_E = ref_L = None
        k = methods.index("authors fp32 whole") if "authors fp32 whole" in methods else -1
        if k >= 0 and os.path.exists(os.path.join(tmp, f"m{k}_E.npy")):
            ref_E = torch.from_numpy(np.load(os.path.join(tmp, f"m{k}_E.npy")))
            ref_L = torch.from_numpy(np.load(os.path.join(tmp, f"m{k}_L.npy")))
        rows = []
        base_t = None
        for k, m in enumerate(methods):
            ok = [d for d in res[m] if "times" in d]
            if not ok:
                rows.append({"method": m, "size": size, "error": res[m][0]["error"]})
                continue
            t = statistics.median(min(d["times"]) for d in ok)
            px = ok[0]["pixels"]
            if m == "authors fp32 whole":
                base_t = t
            peak = max(d["peak_kib"] for d in ok) / 1024 ** 2
            inc = max(d["peak_kib"] - d["base_kib"] for d in ok) / 1024 ** 2
            row = {"method": m, "size": ok[0]["size"], "mps": px / 1e6 / t, "sec_per_mp": t / (px / 1e6), "t": t,
                   "times": [round(min(d["times"]), 3) for d in ok],
                   "mem_label": f"{peak:.2f} GiB RSS (+{inc:.2f})", "peak_gib": peak, "inc_gib": inc}
            fE = os.path.join(tmp, f"m{k}_E.npy")
            if ref_E is not None and os.path.exists(fE):
                row["fid"] = fidelity(torch.from_numpy(np.load(fE)), torch.from_numpy(np.load(fE[:-6] + "_L.npy")),
                                      ref_E, ref_L)
            rows.append(row)
        for row in rows:
            if base_t and "t" in row:
                row["speedup"] = base_t / row["t"]
        print_table(rows, f"CPU ({os.cpu_count()} cores), size {size}: MP/s = median over rounds; "
                          f"peak mem = child's peak RSS (+ above its RSS before the run)")
        print("\nseconds per megapixel: " + ", ".join(f"{r['method']}: {r['sec_per_mp']:.2f}"
                                                    for r in rows if "sec_per_mp" in r))
        print("all timings (s): " + "; ".join(f"{r['method']}: {r.get('times')}" for r in rows))
        all_rows += rows
    if args.json:
        Path(args.json).write_text(json.dumps(all_rows, indent=1))


# =========================================================================== GPU mode
@contextlib.contextmanager
def tf32(enabled: bool):
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled if not enabled else old[1]
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def cudnn_benchmark(on: bool):
    import cliplit_core.engine.inference as inf

    old = inf.CUDNN_BENCHMARK
    inf.CUDNN_BENCHMARK = on
    try:
        yield
    finally:
        inf.CUDNN_BENCHMARK = old


def _sync():
    torch.cuda.synchronize()


class Variant:
    def __init__(self, name, fn, ctx=None, rounds=None):
        self.name, self.fn, self.ctx, self.rounds = name, fn, ctx or (lambda: contextlib.nullcontext()), rounds
        self.times, self.host, self.error, self.fid, self.peak, self.peak_first = [], [], None, None, None, None

    def call(self, measure_mem=False):
        with self.ctx():
            _sync()
            if measure_mem:
                torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            t0 = time.perf_counter()
            out = self.fn()
            t1 = time.perf_counter()
            _sync()
            t2 = time.perf_counter()
            peak = (torch.cuda.max_memory_allocated() - base) / GIB if measure_mem else None
        return out, t2 - t0, t1 - t0, peak


def run_variants(variants, rounds, ref, label):
    """Warm-up (first call: peak incl. autotuning), then interleaved timed rounds (peak of the first)."""
    for v in variants:
        try:
            out, t, _, v.peak_first = v.call(measure_mem=True)
            del out
        except Exception as e:  # noqa: BLE001 - record and go on
            v.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"  {v.name}: {v.error}", flush=True)
            torch.cuda.empty_cache()
    for r in range(rounds):
        for v in variants:
            if v.error or (v.rounds is not None and r >= v.rounds):
                continue
            out, t, host, peak = v.call(measure_mem=(r == 0))
            v.times.append(t)
            v.host.append(host)
            if r == 0:
                v.peak = peak
                if ref is not None:
                    E_ref, L_ref = ref() if callable(ref) else ref
                    v.fid = fidelity(out[0], out[1], E_ref, L_ref)
            del out
        torch.cuda.empty_cache()
    for v in variants:
        if not v.error and v.times:
            print(f"  {label} {v.name}: median {statistics.median(v.times) * 1e3:.1f} ms "
                  f"(host dispatch {statistics.median(v.host) * 1e3:.1f} ms) runs {[round(t * 1e3, 1) for t in v.times]} "
                  f"peak first call {v.peak_first:.2f} GiB", flush=True)


def rows_of(variants, x, base_name=None, ref_ours=False):
    px = x.shape[-2] * x.shape[-1]
    base = next((v for v in variants if v.name == base_name and not v.error), None)
    rows = []
    for v in variants:
        if v.error or not v.times:
            rows.append({"method": v.name, "size": size_label(x), "error": v.error or "not timed"})
            continue
        t = statistics.median(v.times)
        row = {"method": v.name, "size": size_label(x), "mps": px / 1e6 / t, "ms": t * 1e3,
               "mem_label": f"{v.peak:.2f} GiB" + (f" (1st {v.peak_first:.2f})" if v.peak_first > v.peak + 0.01 else ""),
               "peak_gib": v.peak, "peak_first_gib": v.peak_first, "fid": v.fid, "ref_ours": ref_ours}
        if base is not None:
            row["speedup"] = statistics.median(base.times) / t
        rows.append(row)
    return rows


def light_only_rows(net, x, rounds, base, L_ref):
    """Light map only (no sanitising / division): eager vs a captured CUDA graph, fp16 CL whole image."""
    fw = fastnet.FastWeights(net, x.device, torch.float16, channels_last=True)
    eager = Variant("light map only: ours fp16 CL whole, eager", lambda: (None, fastnet.forward(fw, x)))
    variants = [eager]
    try:
        if x.device.type != "cuda":
            raise RuntimeError("CUDA graphs need a GPU")
        torch.backends.cudnn.benchmark = True
        static_x = x.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.inference_mode():
            for _ in range(2):
                fastnet.forward(fw, static_x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g), torch.inference_mode():
            static_out = fastnet.forward(fw, static_x)

        def replay():
            g.replay()
            return None, static_out
        variants.append(Variant("light map only: ours fp16 CL whole, CUDA graph replay", replay))
    except Exception as e:  # noqa: BLE001
        print(f"  CUDA graph capture failed: {type(e).__name__}: {e}", flush=True)
    finally:
        torch.backends.cudnn.benchmark = False
    rows = []
    with torch.inference_mode():
        run_variants(variants, rounds, None, "light-only")
        px = x.shape[-2] * x.shape[-1]
        for v in variants:
            if v.error or not v.times:
                continue
            out = v.fn()[1]
            dl = (out.float() - L_ref.to(out.device)).abs().max().item()
            t = statistics.median(v.times)
            rows.append({"method": v.name, "size": size_label(x), "mps": px / 1e6 / t, "ms": t * 1e3,
                         "speedup": statistics.median(base.times) / t if base.times else None,
                         "mem_label": f"{v.peak:.2f} GiB", "peak_gib": v.peak,
                         "fid": {"dL": dl, "dE": float("nan"), "within": float("nan")}})
    return rows


def ours(net, x, options=None, **kw):
    """``enhance(net, x, **kw)``; with ``options``, the network is prepared with these FastWeights
    options (inside the timed call, as enhance() does with fastnet.default_options)."""
    def fn():
        model = net
        if options is not None:
            dev = torch.device(kw.get("device") or x.device)
            model = fastnet.FastWeights(net, dev, compute_dtype(kw.get("dtype"), dev), **options)
        r = enhance(model, x, **kw)
        return r.image, r.light
    return fn


def authors_fn(an, x):
    return lambda: authors_enhance(an, x)


def _fake_cuda() -> None:
    """--gpu-dry-run: run the GPU mode's logic on the CPU (tiny sizes) to test the script."""
    for name in ("synchronize", "reset_peak_memory_stats", "empty_cache"):
        setattr(torch.cuda, name, lambda *a, **k: None)
    torch.cuda.memory_allocated = lambda *a, **k: 0
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    torch.cuda.get_device_name = lambda *a, **k: "CPU (dry run)"

    class _P:
        total_memory = 0
    torch.cuda.get_device_properties = lambda *a, **k: _P()


def gpu_main(args) -> None:
    if args.gpu_dry_run:
        _fake_cuda()
    dev = torch.device("cpu" if args.gpu_dry_run else "cuda")
    props = torch.cuda.get_device_properties(dev)
    print(f"# GPU benchmark on {torch.cuda.get_device_name(dev)} ({props.total_memory / GIB:.0f} GiB), torch "
          f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; default "
          f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, cudnn.benchmark={torch.backends.cudnn.benchmark}",
          flush=True)
    t_start = time.time()
    V = Variant

    def save_partial(rows):
        """Rows so far to --json after every section, so a run cut short still leaves its table."""
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    net = load_network(args.weights)
    an = load_authors_net(args.weights, dev)
    an16 = load_authors_net(args.weights, dev).half()
    all_rows = []
    half_cl = {"channels_last": True, "pad_in": 0, "pad_out": 0}
    def opts(**kw):
        return {**half_cl, **kw}

    nchw = {"channels_last": False, "pad_in": 0, "pad_out": 0}

    # ---------------------------------------------------------------- throughput (image on the GPU)
    for mp in [float(s) for s in args.sizes.split(",")]:
        x = load_photo(args.image, mp, dev)
        print(f"\n# throughput at {size_label(x)} (image and results on the GPU)", flush=True)
        with torch.inference_mode(), tf32(False):
            E_ref, L_ref = authors_enhance(an, x)
            E_ref, L_ref = E_ref.cpu(), L_ref.cpu()
        _sync()
        torch.cuda.empty_cache()
        variants = [
            V("authors fp32 whole (PyTorch defaults: TF32 convs)", authors_fn(an, x)),
            V("authors fp32 whole, strict fp32 (TF32 off)", authors_fn(an, x), lambda: tf32(False), rounds=2),
            V("authors fp16 whole NCHW", lambda: authors_enhance(an16, x.half()), rounds=3),
            V("ours fp32 whole NCHW (TF32)", ours(net, x, tile=None, dtype=torch.float32, options=nchw)),
            V("ours fp32 whole NCHW strict (TF32 off)", ours(net, x, tile=None, dtype=torch.float32, options=nchw),
              lambda: tf32(False), rounds=2),
            V("ours fp32 whole channels_last (TF32)", ours(net, x, tile=None, dtype=torch.float32, options={**nchw, "channels_last": True})),
            V("ours fp16 whole NCHW", ours(net, x, tile=None, dtype=torch.float16, options=nchw)),
            V("ours fp16 whole CL", ours(net, x, tile=None, dtype=torch.float16, options=opts())),
            V("ours fp16 whole CL pad_in 8", ours(net, x, tile=None, dtype=torch.float16, options=opts(pad_in=8))),
            V("ours fp16 whole CL pad_out 8", ours(net, x, tile=None, dtype=torch.float16, options=opts(pad_out=8))),
            V("ours fp16 whole CL pad 8/8", ours(net, x, tile=None, dtype=torch.float16, options=opts(pad_in=8, pad_out=8))),
            V("ours fp16 whole CL, F.pad reflect (no folding)", ours(net, x, tile=None, dtype=torch.float16, options=opts(fold_padding=False))),
            V("ours fp16 whole CL, cudnn.benchmark on", ours(net, x, tile=None, dtype=torch.float16, options=half_cl), lambda: cudnn_benchmark(True)),
            V("ours fp16 whole CL pad 8/8, cudnn.benchmark on", ours(net, x, tile=None, dtype=torch.float16, options={**half_cl, "pad_in": 8, "pad_out": 8}), lambda: cudnn_benchmark(True)),
            V("ours bf16 whole CL", ours(net, x, tile=None, dtype=torch.bfloat16, options=opts())),
            V("ours fp16 CL tiled 1024", ours(net, x, tile=1024, dtype=torch.float16, options=opts())),
            V("ours fp16 CL tiled 2048", ours(net, x, tile=2048, dtype=torch.float16, options=opts())),
            V("ours fp32 tiled 2048 (TF32)", ours(net, x, tile=2048, dtype=torch.float32, options=nchw)),
            V("ours DEFAULT (enhance(dtype=None, tile=None))", ours(net, x, tile=None)),
            V("ours DEFAULT tiled 2048 (enhance(dtype=None, tile=2048))", ours(net, x, tile=2048)),
        ]
        run_variants(variants, args.rounds, (E_ref, L_ref), f"{mp:g}MP")
        rows = rows_of(variants, x, variants[0].name)
        rows += light_only_rows(net, x, args.rounds, variants[0], L_ref)
        print_table(rows, f"GPU throughput, {size_label(x)}: {torch.cuda.get_device_name(dev)}")
        for r in rows:
            r["section"] = "throughput"
        all_rows += rows
        save_partial(all_rows)
        del x, variants
        torch.cuda.empty_cache()
        print(f"[elapsed {time.time() - t_start:.0f} s]", flush=True)

    # ---------------------------------------------------------------- profiles
    if args.profile:
        x = load_photo(args.image, float(args.sizes.split(",")[0]), dev)
        x3 = load_photo(args.image, args.profile_mp, dev)
        profile("ours fp16 CL whole", ours(net, x, tile=None, dtype=torch.float16, options=half_cl))
        profile("ours fp16 CL tiled 2048", ours(net, x, tile=2048, dtype=torch.float16, options=half_cl))
        profile("authors fp32 (TF32)", authors_fn(an, x))
        an16cl = load_authors_net(args.weights, dev).half().to(memory_format=torch.channels_last)
        x3cl = x3.half().contiguous(memory_format=torch.channels_last)
        profile(f"authors fp16 channels_last, {size_label(x3)}", lambda: authors_enhance(an16cl, x3cl))
        del x, x3, x3cl, an16cl
        torch.cuda.empty_cache()
        print(f"[elapsed {time.time() - t_start:.0f} s]", flush=True)

    # ---------------------------------------------------------------- bounded memory (image on the CPU)
    del an16
    mem_rows = []
    for mp in [float(s) for s in args.mem_sizes.split(",")]:
        x = load_photo(args.image, mp, dev).cpu()
        print(f"\n# bounded memory at {size_label(x)} (image and results on the CPU, tiles on the GPU)", flush=True)
        torch.cuda.empty_cache()
        holder = {}

        def ref_ours_fn(holder=holder):
            return holder["ref"]

        variants = []
        if mp <= args.authors_max_mp:
            variants.append(V("authors fp32 whole (image moved to GPU)",
                              lambda x=x: tuple(t.cpu() for t in authors_enhance(an, x.to(dev)))))
        else:
            variants.append(V("authors fp32 whole (image moved to GPU)",
                              lambda x=x: tuple(t.cpu() for t in authors_enhance(an, x.to(dev))), rounds=1))
        for t in args.mem_tiles_fp32.split(","):
            variants.append(V(f"ours fp32 tiled {t} strict" + (" (= reference)" if mp > args.authors_max_mp else ""), ours(net, x, tile=int(t), dtype=torch.float32,
                                                                   device=dev, options=nchw), lambda: tf32(False), rounds=1))
        for t in args.mem_tiles.split(","):
            variants.append(V(f"ours fp16 tiled {t}", ours(net, x, tile=int(t), dtype=torch.float16, device=dev, options=opts()), rounds=2))
        variants.append(V(f"ours fp16 tiled {args.mem_tiles.split(',')[0]}, cudnn.benchmark on",
                          ours(net, x, tile=int(args.mem_tiles.split(",")[0]), dtype=torch.float16, device=dev,
                               options=half_cl), lambda: cudnn_benchmark(True), rounds=1))
        variants.append(V(f"ours DEFAULT tiled {args.mem_tiles.split(',')[0]}",
                          ours(net, x, tile=int(args.mem_tiles.split(",")[0]), device=dev), rounds=2))
        # reference: the authors' (strict) where it fits, else our first strict fp32 tiled result
        ref_ours = mp > args.authors_max_mp
        if not ref_ours:
            with torch.inference_mode(), tf32(False):
                E_r, L_r = authors_enhance(an, x.to(dev))
                holder["ref"] = (E_r.cpu(), L_r.cpu())
                del E_r, L_r
        else:
            with torch.inference_mode(), tf32(False):
                r = enhance(fastnet.FastWeights(net, dev, torch.float32, **nchw), x,
                            tile=int(args.mem_tiles_fp32.split(",")[0]), dtype=torch.float32, device=dev)
                holder["ref"] = (r.image, r.light)
                del r
        torch.cuda.empty_cache()
        run_variants(variants, 2, ref_ours_fn, f"{mp:g}MP")
        rows = rows_of(variants, x, None, ref_ours=ref_ours)
        print_table(rows, f"GPU bounded memory, {size_label(x)} on CPU: {torch.cuda.get_device_name(dev)}")
        for r in rows:
            r["section"] = "memory"
        mem_rows += rows
        save_partial(all_rows + mem_rows)
        del x, holder, variants
        torch.cuda.empty_cache()
        print(f"[elapsed {time.time() - t_start:.0f} s]", flush=True)
    all_rows += mem_rows

    # ---------------------------------------------------------------- torch.compile (child, time-limited)
    compile_rows = []
    if args.compile_timeout > 0:
        torch.cuda.empty_cache()
        cmd = [sys.executable, "-m", __spec__.name, "--compile-child", "--weights", args.weights, "--image", args.image,
               "--sizes", args.sizes.split(",")[0]] + (["--gpu-dry-run"] if args.gpu_dry_run else [])
        print(f"\n# torch.compile child (limit {args.compile_timeout} s)", flush=True)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.compile_timeout, cwd=ROOT)
            print(p.stdout[-4000:])
            if p.returncode:
                print("compile child failed:", p.stderr[-2000:])
            for ln in p.stdout.splitlines():
                if ln.startswith("ROW "):
                    compile_rows.append({**json.loads(ln[4:]), "section": "compile"})
        except subprocess.TimeoutExpired:
            print(f"compile child exceeded {args.compile_timeout} s")
    all_rows += compile_rows

    print("\n\n# SUMMARY")
    print(f"device: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}; command: "
          f"python -m benchmarks.bench_inference {' '.join(sys.argv[1:])}")
    print_table([r for r in all_rows if r not in mem_rows], "throughput (image on GPU)")
    print_table(mem_rows, "bounded memory (image on CPU; * = fidelity vs our strict fp32 tiled result)")
    print(f"[total {time.time() - t_start:.0f} s]")
    save_partial(all_rows)


def profile(name, fn):
    from torch.profiler import ProfilerActivity, profile as prof_ctx

    fn()
    _sync()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with prof_ctx(activities=acts) as prof:
        fn()
        _sync()
    print(f"\n### profile: {name}")
    ka = prof.key_averages()
    for key in ("self_cuda_time_total", "self_device_time_total", "cuda_time_total"):
        try:
            print(ka.table(sort_by=key, row_limit=14, max_name_column_width=60))
            break
        except Exception:  # noqa: BLE001 - key names differ across versions
            continue
    sys.stdout.flush()


def compile_child(args) -> None:
    """torch.compile of our whole-image fast forward (fp16, channels_last) vs eager, same process."""
    if args.gpu_dry_run:
        _fake_cuda()
    dev = torch.device("cpu" if args.gpu_dry_run else "cuda")
    net = load_network(args.weights)
    x = load_photo(args.image, float(args.sizes), dev)
    fw = fastnet.FastWeights(net, dev, torch.float16, channels_last=True)
    torch.backends.cudnn.benchmark = True
    eager = lambda: fastnet.forward(fw, x)  # noqa: E731
    t = time.perf_counter()
    cf = torch.compile(fastnet.forward, dynamic=False)
    with torch.inference_mode():
        out_c = cf(fw, x)
        _sync()
        print(f"compile + first call {time.perf_counter() - t:.1f} s", flush=True)
        out_e = eager()
        d = (out_c.float() - out_e.float()).abs().max().item()
        del out_c, out_e
        te, tc = [], []
        for _ in range(5):
            for lst, f in ((te, eager), (tc, lambda: cf(fw, x))):
                _sync()
                t = time.perf_counter()
                f()
                _sync()
                lst.append(time.perf_counter() - t)
    px = x.shape[-2] * x.shape[-1] / 1e6
    for name, ts in (("light map only: ours fp16 CL whole eager", te), ("light map only: ours fp16 CL whole torch.compile", tc)):
        m = statistics.median(ts)
        print("ROW " + json.dumps({"method": name, "size": size_label(x), "mps": px / m, "ms": m * 1e3,
                                   "mem_label": "-", "fid": None, "note": f"max |compiled - eager| L = {d:.1e}"}))
    print(f"eager {statistics.median(te) * 1e3:.1f} ms, compiled {statistics.median(tc) * 1e3:.1f} ms, "
          f"max |dL| compiled vs eager {d:.1e}")


def live_peak_bytes(fn) -> int:
    """Peak of live tensor memory during ``fn()`` on the CPU, from the profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile as prof_ctx

    with prof_ctx(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    evs = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                 key=lambda e: e.start_ns())
    live = best = 0
    for e in evs:
        live += e.nbytes()
        best = max(best, live)
    return best


def activation_peak_main(args) -> None:
    """Allocator-level peak of predict_light (float32, CPU): whole image vs tiles, per pixel."""
    from cliplit_core.engine.inference import predict_light
    from cliplit_core.light.network import TOTAL_HALO

    net = load_network(args.weights)
    print("\n## live-tensor peak of predict_light, float32, CPU (profiler allocation events)\n")
    print("| image | tile | peak MiB | peak without the full-size light map, MiB | bytes / pixel / element byte "
          "(pixel = image or tile window) | seconds |\n|---|---|---|---|---|---|")
    cases = [((600, 800), None), ((1200, 1600), None), ((1200, 1600), 256), ((2400, 3200), 256),
             ((2400, 3200), 512)]
    if args.peak_sizes:  # e.g. 12,48,100 MP at 4:3 with one tile size: the bounded-memory sizes
        cases = [((round((mp * 1e6 * 3 / 4) ** 0.5), round((mp * 1e6 * 4 / 3) ** 0.5)), args.peak_tile)
                 for mp in map(float, args.peak_sizes.split(","))]
    for hw, tile in cases:
        x = torch.rand(1, 3, *hw)
        t0 = time.perf_counter()
        p = live_peak_bytes(lambda: predict_light(net, x, tile=tile, dtype=torch.float32))
        light = 4 * hw[0] * hw[1] if tile else 0  # the full-size light map (stays where the image is)
        px = hw[0] * hw[1] if tile is None else (tile + 2 * TOTAL_HALO) ** 2
        print(f"| {hw[1]}x{hw[0]} ({hw[0] * hw[1] / 1e6:.1f} MP) | {tile or 'whole'} | {p / 2 ** 20:.1f} | "
              f"{(p - light) / 2 ** 20:.1f} | {(p - light) / px / 4:.0f} | {time.perf_counter() - t0:.0f} |",
              flush=True)
        del x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS)
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--sizes", default=None,
                    help="comma-separated megapixels ('photo' = the photo as is); default photo (CPU), 12 (GPU)")
    ap.add_argument("--mem-sizes", default="12,48,100", help="GPU: sizes of the bounded-memory section")
    ap.add_argument("--mem-tiles", default="1024,1536", help="GPU: fp16 tile sizes of the bounded-memory section")
    ap.add_argument("--mem-tiles-fp32", default="1024", help="GPU: fp32 tile sizes of the bounded-memory section")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 3 CPU, 5 GPU)")
    ap.add_argument("--inner", type=int, default=1, help="CPU: runs per child process (the fastest counts)")
    ap.add_argument("--methods", default=None, help="CPU: comma-separated subset of " + ", ".join(CPU_METHODS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--authors-max-mp", type=float, default=30.0,
                    help="GPU: largest size where the authors' whole-image run is the reference (it fails at 48 MP)")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--profile-mp", type=float, default=3.0, help="GPU: size for profiling the authors' fp16 CL")
    ap.add_argument("--compile-timeout", type=int, default=150, help="GPU: seconds for the torch.compile child (0 = skip)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    ap.add_argument("--activation-peak", action="store_true",
                    help="CPU: print the live-tensor peak of whole-image vs tiled prediction per pixel")
    ap.add_argument("--peak-sizes", default=None,
                    help="with --activation-peak: megapixel sizes (4:3 random images) instead of the default cases")
    ap.add_argument("--peak-tile", type=int, default=1024, help="with --peak-sizes: the tile size")
    ap.add_argument("--gpu-dry-run", action="store_true", help="run the cuda mode's logic on the CPU (testing)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return cpu_child(args)
    if args.compile_child:
        return compile_child(args)
    if args.activation_peak:
        return activation_peak_main(args)
    if args.device == "cuda" or args.gpu_dry_run:
        args.sizes = args.sizes or "12"
        args.rounds = args.rounds or 5
        return gpu_main(args)
    args.sizes = args.sizes or "photo"
    args.rounds = args.rounds or 3
    return cpu_main(args)


if __name__ == "__main__":
    main()
