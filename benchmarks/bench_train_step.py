"""Time one enhancement-training step: the trainer's batched step vs the authors' per-image formulation.

Both run the same enhancement network and the same frozen backbones (ViT-B-32 for
L_clip, RN101 for the identity loss; random weights by default -- the timing does
not depend on them) and compute the same loss, ``320 L_clip + 0.9 * 25 L_identity``:

* **authors** (re-implemented from their ``clip_score.py``, not their code):
  float32, NCHW; for each image of the batch separately: resize to 224,
  normalise, run the ViT image tower (L_clip), then run the whole RN101 image
  tower (including its attention pool) on the result and on the input, and add
  the weighted per-layer MSEs; PyTorch's default backend flags.
* **ours** (``trainer.stages.Trainer.step``, exactly what training runs): one batched
  pass per tower, the input's RN101 features without autograd, the attention pool
  skipped; cudnn autotuning and TF32 matmuls on GPU; ``--amp`` (bf16/fp16
  autocast) and channels_last for the ResNet where they help.

Prints milliseconds per step, images per second and the ratio authors / ours.
GPU: ``python -m benchmarks.bench_train_step`` (batch 8 at 512, the authors' setting).
CPU smoke test: ``python -m benchmarks.bench_train_step --device cpu --image-size 128 --batch 2 --iters 1``.
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


from cliplit_core.clip.preprocess import CLIP_MEAN, CLIP_STD  # noqa: E402
from cliplit_core.clip.losses import CLIP_LOSS_SCALE, ENHANCEMENT_ALPHAS, ENHANCEMENT_IDENTITY_WEIGHT, \
    IDENTITY_LOSS_SCALE  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data import Batch, generator_for, sample_aug, ENHANCE_ZOOM  # noqa: E402
from trainer.distributed import DistInfo  # noqa: E402
from trainer.schedule import Step  # noqa: E402
from trainer.stages import Trainer, apply_training_light, enhancer_forward  # noqa: E402


# --------------------------------------------------------------------------- the authors' formulation
class AuthorsStep:
    """The authors' per-image losses around the same network, backbones and prompt features."""

    def __init__(self, net, clip_bb, ident_bb, text_features, lr=2e-5, wd=1e-3):
        self.net, self.clip, self.ident = net, clip_bb, ident_bb
        self.text = text_features.detach()
        self.opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
        dev = next(net.parameters()).device
        self.mean = torch.tensor(CLIP_MEAN, device=dev).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=dev).view(1, 3, 1, 1)

    def _prep(self, img, size):
        img = F.interpolate(img.unsqueeze(0), size=size, mode="bilinear", align_corners=False)
        return (img - self.mean) / self.std

    def _resnet_all(self, px):
        """encode_image of their modified CLIP: the full tower, returning the five feature maps."""
        v = self.ident.visual
        x = px.to(self.ident.dtype)
        x = v.stem(x) if hasattr(v, "stem") else v.avgpool(v.act3(v.bn3(v.conv3(v.act2(v.bn2(v.conv2(
            v.act1(v.bn1(v.conv1(x))))))))))
        feats = [x]
        for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
            x = layer(x)
            feats.append(x)
        out = v.attnpool(x)
        return out, feats

    def __call__(self, x):
        light = self.net(x)
        final = apply_training_light(x, light)
        # L_clip: get_clip_score_from_feature, one image at a time
        score = 0
        for i in range(final.shape[0]):
            feats = self.clip.model.visual(self._prep(final[i], self.clip.image_size))
            feats = feats / feats.norm(dim=-1, keepdim=True)
            tf = self.text / self.text.norm(dim=-1, keepdim=True)
            score = score + (100.0 * feats @ tf.T).softmax(dim=-1)[0][0]
        cliploss = CLIP_LOSS_SCALE * score / final.shape[0]
        # L_clip_MSE: get_clip_score_MSE, one image at a time, both towers in full
        mse = 0
        for i in range(final.shape[0]):
            _, pf = self._resnet_all(self._prep(final[i], self.ident.image_size))
            _, inf_ = self._resnet_all(self._prep(x[i], self.ident.image_size))
            per = 0
            for w, a, b in zip(ENHANCEMENT_ALPHAS, pf, inf_):
                per = per + w * F.mse_loss(a.squeeze(0), b.squeeze(0))
            mse = mse + per
        loss = cliploss + ENHANCEMENT_IDENTITY_WEIGHT * IDENTITY_LOSS_SCALE * mse
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach()


# --------------------------------------------------------------------------- timing
def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, warmup, iters):
    for _ in range(warmup):
        fn()
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(dev)
    ms = (time.perf_counter() - t) / iters * 1000
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return ms, peak


def backend_flags(ours: bool, dev):
    if dev.type != "cuda":
        return
    torch.backends.cudnn.benchmark = ours
    torch.backends.cuda.matmul.allow_tf32 = ours  # PyTorch default: off (cudnn convs use TF32 by default)
    torch.backends.cudnn.allow_tf32 = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip-model", default="ViT-B-32")
    ap.add_argument("--identity-model", default="RN101")
    ap.add_argument("--pretrained", default="none", help="weights of both backbones (default none: random)")
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--prompt-length", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--amp", nargs="*", default=None,
                    help="precisions to time for ours (default: off bf16 on GPU, off on CPU)")
    ap.add_argument("--skip-authors", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amps = args.amp if args.amp is not None else (["off", "bf16"] if dev.type == "cuda" else ["off"])
    B, S = args.batch, args.image_size
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, S, S, generator=gen)
    aug = sample_aug(B, generator_for(0), ENHANCE_ZOOM)
    batch = Batch(0, {"backlit": images}, None, aug, B)
    tmp = tempfile.mkdtemp()
    results = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
               "batch": B, "image_size": S, "clip_model": args.clip_model, "identity_model": args.identity_model}
    print(f"device {results['device']}, batch {B} x {S}x{S}, {args.clip_model} + {args.identity_model} "
          f"({args.pretrained} weights)", flush=True)

    def make_trainer(amp):
        cfg = TrainConfig(backlit=tmp, welllit=tmp, out=tmp, clip_model=args.clip_model,
                          clip_pretrained=args.pretrained, identity_model=args.identity_model,
                          identity_pretrained=args.pretrained, device=str(dev), amp=amp, init_scheme="identity",
                          prompt_length=args.prompt_length, progress="off")
        t = Trainer(cfg, DistInfo(device=dev))
        t.load_models()
        t._set_trainable("enhance")
        return t

    phase = Step("enhance", 1, 1, 1)
    x = images.to(dev)
    # float32 trainer first: its backbones are still NCHW for the authors' baseline
    t0 = make_trainer("off")

    if not args.skip_authors:
        backend_flags(False, dev)
        with torch.no_grad():
            tf = t0.prompt.text_features(t0.clip)
        step = AuthorsStep(t0.net, t0.clip, t0.ident, tf)
        ms, peak = timed(lambda: float(step(x)), dev, args.warmup, args.iters)
        results["authors_ms"] = ms
        results["authors_peak_gib"] = peak
        print(f"authors' per-image formulation (float32): {ms:8.1f} ms/step  {B / ms * 1000:7.1f} img/s  "
              f"peak {peak:.2f} GiB", flush=True)
        del step

    # the part both share: the enhancement network's forward + backward alone
    for ours_flags in (False, True):
        fwd = enhancer_forward if ours_flags else (lambda net, x: net(x))

        def net_only():
            t0.net.zero_grad(set_to_none=True)
            fwd(t0.net, x).sum().backward()

        backend_flags(ours_flags, dev)
        ms, _ = timed(net_only, dev, 1, max(1, args.iters))
        key = "network_fwd_bwd_fp32_ms" + ("_ours" if ours_flags else "_authors")
        results[key] = ms
        print(f"   enhancement network alone, forward + backward, float32"
              f"{' (our forward and flags)' if ours_flags else ' (nn.Module forward, default flags)'}: "
              f"{ms:.1f} ms", flush=True)

    for amp in amps:
        t = t0 if amp == "off" else make_trainer(amp)
        backend_flags(True, dev)

        def ours(t=t):
            loss, _ = t.step(phase, batch)
            return float(loss)

        ms, peak = timed(ours, dev, args.warmup, args.iters)
        results[f"ours_{amp}_ms"] = ms
        results[f"ours_{amp}_peak_gib"] = peak
        print(f"ours ({'float32' if amp == 'off' else amp}{', channels_last RN' if t.channels_last else ''}): "
              f"{ms:8.1f} ms/step  {B / ms * 1000:7.1f} img/s  peak {peak:.2f} GiB", flush=True)
        if "authors_ms" in results:
            r = results["authors_ms"] / ms
            results[f"ratio_{amp}"] = r
            print(f"speed-up authors / ours ({'float32' if amp == 'off' else amp}): {r:.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
