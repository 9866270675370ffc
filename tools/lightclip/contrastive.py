"""Contrastive training of both towers of an open_clip model on captioned lighting conditions.

Each step takes a batch of labelled images (horizontally flipped at random) and every
caption of :mod:`.captions`. Many images share a condition and every condition has
several captions, so the loss is CLIP's symmetric cross-entropy with several weighted
positives: an image's target is its condition weights, each spread evenly over that
condition's captions; a caption's target is the batch's images, weighted by how much
each is of the caption's condition.

The logits use the fixed scale our scores use (``cliplit_core.clip.scores.LOGIT_SCALE``,
100), not a learned one, and the targets are smoothed (:attr:`Schedule.label_smoothing`):
at the optimum the backlit and well-lit prompts differ by a bounded logit gap (about 3.4
at smoothing 0.1 with these captions), so ``S(I)`` is confident without saturating and
``L_clip`` keeps a gradient for the trainer.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cliplit_core.clip.preprocess import clip_preprocess
from cliplit_core.clip.scores import LOGIT_SCALE

from .dataset import LabelledImages


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch: int
    lr: float = 2e-3
    warmup: int = 20
    label_smoothing: float = 0.1


def multi_positive_loss(logits: torch.Tensor, positives: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy of each row of ``logits`` against its positives (``positives`` [R, C], weights
    >= 0) normalised to sum 1, with ``smoothing`` of the mass on every column; rows without a
    positive are skipped."""
    total = positives.sum(1, keepdim=True)
    rows = total[:, 0] > 0
    target = (1 - smoothing) * positives / total.clamp_min(1e-12) + smoothing / logits.shape[1]
    loss = -(target * logits.log_softmax(dim=1)).sum(1)
    return loss[rows].mean()


def symmetric_loss(image_features: torch.Tensor, text_features: torch.Tensor, labels: torch.Tensor,
                   owners: torch.Tensor, smoothing: float) -> torch.Tensor:
    """The mean of the image-to-caption and caption-to-image losses (features L2-normalised).
    ``labels``: [B, conditions] weights; ``owners``: [K] the condition of each caption."""
    logits = LOGIT_SCALE * image_features @ text_features.T  # [B, K]
    captions_per_condition = torch.bincount(owners, minlength=labels.shape[1]).to(labels.dtype)
    positives = labels[:, owners] / captions_per_condition[owners]  # [B, K]: each row sums to 1
    return 0.5 * (multi_positive_loss(logits, positives, smoothing)
                  + multi_positive_loss(logits.T, positives.T, smoothing))


def learning_rate(schedule: Schedule, step: int) -> float:
    """Linear warm-up, then a cosine decay to zero."""
    if step < schedule.warmup:
        return schedule.lr * (step + 1) / schedule.warmup
    t = (step - schedule.warmup) / max(1, schedule.steps - schedule.warmup)
    return schedule.lr * 0.5 * (1 + math.cos(math.pi * t))


def train(model: torch.nn.Module, token_ids: torch.Tensor, owners: torch.Tensor, data: LabelledImages,
          schedule: Schedule, generator: torch.Generator, log=None) -> list[float]:
    """Train ``model`` (an open_clip CLIP, in place) and return the loss of every step.

    ``token_ids``: [K, context] of every caption; ``owners``: [K] the condition of each (int64).
    ``log(step, loss, seconds)`` is called every 50 steps and at the end.
    """
    size = int(data.pixels.shape[-1])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=schedule.lr)
    model.train()
    losses = []
    start = time.perf_counter()
    for step in range(schedule.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(schedule, step)
        idx = torch.randint(len(data), (schedule.batch,), generator=generator)
        pixels = data.pixels[idx]
        flip = torch.rand(schedule.batch, generator=generator) < 0.5
        pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
        image_features = F.normalize(model.encode_image(clip_preprocess(pixels, size)), dim=-1)
        text_features = F.normalize(model.encode_text(token_ids), dim=-1)
        loss = symmetric_loss(image_features, text_features, data.labels[idx], owners, schedule.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log is not None and ((step + 1) % 50 == 0 or step + 1 == schedule.steps):
            log(step + 1, sum(losses[-50:]) / len(losses[-50:]), time.perf_counter() - start)
    model.eval()
    return losses
