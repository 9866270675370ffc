"""Batched CLIP scoring and losses vs the authors' per-image loop, on ViT-B-32 / RN101 shapes.

The CLIP-LIT training code scores one image at a time (``for i in range(B):
resize(tensor[i]) -> normalize -> encode_image -> softmax(100 * cos)``, and the
identity loss likewise per image for both the result and the input). Ours runs
the whole batch through each tower once. This script times both formulations
in the same process, checks they agree, and prints the speed-up as a ratio:

* ``score``    -- S(I) without autograd (what scoring / the CLI does), ViT-B-32;
* ``L_clip``   -- forward + backward to the images (enhancement training), ViT-B-32;
* ``L_identity`` -- forward + backward to the images over the 5 RN101 feature maps.

Weights are random (``pretrained='none'``): only the shapes matter for timing, and
nothing is downloaded. ``--tiny`` swaps in tiny configs for a quick smoke run.

    python -m benchmarks.bench_clip_scoring                     # cuda if available, else cpu
    python -m benchmarks.bench_clip_scoring --device cpu --batch 4 --repeats 2

Measured (random weights, float32), per-image loop ms / batched ms = ratio:

  setting                             score (ViT-B-32)      L_clip (ViT-B-32)     L_identity (RN101)
  H100, torch 2.11, 16 x 256 px       55.9 / 6.2 = 9.0x     274.8 / 19.2 = 14.3x  395.7 / 28.2 = 14.0x
  H100, 16 x 256 px, --tf32 off       91.9 / 6.2 = 14.8x    264.7 / 23.9 = 11.1x  476.4 / 45.2 = 10.5x
  H100, 8 x 512 px                    44.7 / 5.7 = 7.8x     99.7 / 19.4 = 5.1x    187.4 / 25.1 = 7.5x
  H100, 64 x 256 px                   224.6 / 17.7 = 12.7x  856.9 / 40.2 = 21.3x  2741.5 / 65.2 = 42.1x
  2-core CPU (busy), 4 x 256 px       5696 / 2124 = 2.7x    7146 / 4932 = 1.4x    25875 / 16985 = 1.5x

Both formulations agree to ~1e-7 relative in fp32 (``--tf32 off``); with PyTorch's
default TF32 convolutions on the GPU the RN101 input gradients differ by up to ~9 %
of their largest value between the two (different cuDNN algorithms per batch size).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F


from cliplit_core.clip.backbone import RandomWeightsWarning, build_backbone  # noqa: E402
from cliplit_core.clip.preprocess import CLIP_MEAN, CLIP_STD  # noqa: E402
from cliplit_core.clip.losses import ENHANCEMENT_ALPHAS, IdentityLoss, resnet_feature_maps  # noqa: E402
from cliplit_core.clip.prompts import PromptPair  # noqa: E402
from cliplit_core.clip.scores import backlit_probability  # noqa: E402

TINY_TEXT = {"context_length": 20, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
TINY = {
    "vit": {"embed_dim": 32, "text_cfg": TINY_TEXT,
            "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16}},
    "rn": {"embed_dim": 32, "text_cfg": TINY_TEXT,
           "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None}},
}


# --------------------------------------------------------------------------- the authors' formulation
def _authors_preprocess(img3: torch.Tensor, size) -> torch.Tensor:
    """One [3, H, W] image: Resize((s, s)) on a tensor (bilinear, no antialias) + Normalize, -> [1, 3, s, s]."""
    x = F.interpolate(img3[None], size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def authors_clip_score(images, text_features, bb):
    """``get_clip_score_from_feature``: mean over a Python loop of softmax(100 cos)[0]."""
    score = 0
    for i in range(images.shape[0]):
        f = bb.model.visual(_authors_preprocess(images[i], bb.image_size))
        f = f / f.norm(dim=-1, keepdim=True)
        t = text_features / text_features.norm(dim=-1, keepdim=True)
        score = score + (100.0 * f @ t.T).softmax(dim=-1)[0][0]
    return score / images.shape[0]


def authors_identity(pred, inp, bb, weight=ENHANCEMENT_ALPHAS):
    """``get_clip_score_MSE``: per image, both features with autograd, sum of weighted MSEs."""
    score = 0
    for i in range(pred.shape[0]):
        fp = resnet_feature_maps(bb, _authors_preprocess(pred[i], bb.image_size))
        fi = resnet_feature_maps(bb, _authors_preprocess(inp[i], bb.image_size))
        per = 0
        for k, w in enumerate(weight):
            per = per + w * F.mse_loss(fp[k].squeeze(0), fi[k].squeeze(0))
        score = score + per
    return score


# --------------------------------------------------------------------------- timing
def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timeit(fn, dev, repeats):
    fn()  # warm-up (cudnn autotune, allocator)
    _sync(dev)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=None, help="images per batch (default 16 on GPU, 4 on CPU)")
    ap.add_argument("--size", type=int, default=256, help="input image side (the authors' prompt stage: 256)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs, best kept (default 10 GPU, 2 CPU)")
    ap.add_argument("--tiny", action="store_true", help="tiny configs instead of ViT-B-32 / RN101 (smoke test)")
    ap.add_argument("--tf32", choices=("default", "off"), default="default",
                    help="'off' disables TF32 convolutions / matmuls on the GPU to check agreement at fp32 precision")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = dev.type == "cuda"
    batch = args.batch or (16 if gpu else 4)
    repeats = args.repeats or (10 if gpu else 2)
    if gpu:
        torch.backends.cudnn.benchmark = True
        if args.tf32 == "off":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        if args.tiny:
            tmp = Path(tempfile.mkdtemp())
            for k, cfg in TINY.items():
                (tmp / f"{k}.json").write_text(json.dumps(cfg))
            vit = build_backbone(str(tmp / "vit.json"), "none", device=dev)
            rn = build_backbone(str(tmp / "rn.json"), "none", device=dev)
        else:
            vit = build_backbone("ViT-B-32", "none", device=dev, quick_gelu=True)
            rn = build_backbone("RN101", "none", device=dev, quick_gelu=True)
    pair = PromptPair.random(vit, 16, generator=torch.Generator().manual_seed(0)).to(dev).requires_grad_(False)
    tf = pair.text_features(vit)
    x = torch.rand(batch, 3, args.size, args.size, device=dev)
    x0 = torch.rand(batch, 3, args.size, args.size, device=dev)
    ident = IdentityLoss(rn, ENHANCEMENT_ALPHAS)

    def score_loop():
        with torch.no_grad():
            return authors_clip_score(x, tf, vit)

    def score_batched():
        with torch.no_grad():
            return backlit_probability(x, tf, vit).mean()

    def clip_loop():
        xi = x.clone().requires_grad_(True)
        authors_clip_score(xi, tf, vit).backward()
        return xi.grad

    def clip_batched():
        xi = x.clone().requires_grad_(True)
        backlit_probability(xi, tf, vit).mean().backward()
        return xi.grad

    def id_loop():
        xi = x.clone().requires_grad_(True)
        authors_identity(xi, x0, rn).backward()
        return xi.grad

    def id_batched():
        xi = x.clone().requires_grad_(True)
        ident(xi, x0).backward()
        return xi.grad

    cases = [("score", vit.name, score_loop, score_batched),
             ("L_clip", vit.name, clip_loop, clip_batched),
             ("L_identity", rn.name, id_loop, id_batched)]
    name = torch.cuda.get_device_name(dev) if gpu else f"cpu ({torch.get_num_threads()} threads)"
    tf32 = gpu and torch.backends.cudnn.allow_tf32
    print(f"device: {name}; batch {batch} x {args.size}x{args.size}; best of {repeats}; torch {torch.__version__}"
          + ("; TF32 convolutions on (PyTorch default)" if tf32 else ""))
    results = []
    for label, model, loop, batched in cases:
        a, b = loop(), batched()
        diff = (a.float() - b.float()).abs().max().item()
        scale = a.float().abs().max().item() or 1.0
        t_loop = timeit(loop, dev, repeats)
        t_batched = timeit(batched, dev, repeats)
        short = Path(model).stem if model.endswith(".json") else model
        r = {"case": label, "model": short, "device": name, "tf32_conv": bool(tf32), "batch": batch, "size": args.size,
             "loop_ms": round(1000 * t_loop, 2), "batched_ms": round(1000 * t_batched, 2),
             "speedup": round(t_loop / t_batched, 2), "max_rel_diff": float(f"{diff / scale:.2e}")}
        results.append(r)
        print(f"{label:>11} {r['model']:>9}: per-image loop {r['loop_ms']:9.2f} ms, batched {r['batched_ms']:9.2f} ms, "
              f"ratio {r['speedup']:6.2f}x  (agree to {r['max_rel_diff']:.1e} relative)")
        del a, b
        if gpu:
            torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
