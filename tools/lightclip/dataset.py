"""Labelled images of a split: every scene photographed under every lighting condition.

A label is a weight per condition (summing to 1). Whole photos have one condition.
Training splits add crops of each photo, labelled by what they show
(:func:`crop_weights`): the heatmap scores windows of a photo, and a window should look
as backlit as the share of it the backlit photo's dark subject takes (up to
:data:`SUBJECT_FILLS`); the rest of its weight is "over-exposed", what the clipped
background alone looks like. Crops of photos under other conditions look like their photo.

Scene ``i`` of split ``s`` for seed ``seed`` is drawn from ``np.random.default_rng([seed,
SPLITS[s], i])``: the splits never share a scene, and a split is the same on every run.
Each scene gets a random size (:data:`PHOTO_SIDES`, aspect up to 4:3 either way) and is
then resized to the CLIP's input size the way our scoring does it
(``cliplit_core.clip.preprocess.resize_for_clip``: bilinear, no antialiasing), so the
model sees what our scores will show it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cliplit_core.clip.preprocess import resize_for_clip

from .captions import CAPTIONS
from .lighting import CONDITIONS, render
from .scenes import Scene, make_scene

SPLITS = {"train": 1, "heldout": 2, "pairs": 3, "enhancer-train": 4, "enhancer-welllit": 5}  # no two share a scene
PHOTO_SIDES = (64, 128)  # the shorter side of a photo before it is resized for CLIP, in pixels
CROP_SIDES = (0.3, 0.8)  # a crop's side, as a share of the photo's shorter side
SUBJECT_FILLS = 0.5  # a backlit photo's crop is wholly "backlit" once its subject covers this share
assert tuple(CAPTIONS) == CONDITIONS, "captions and lighting must list the conditions in the same order"


@dataclass(frozen=True)
class LabelledImages:
    pixels: torch.Tensor  # [N, 3, S, S] float32 in 0..1, at the CLIP's input size
    labels: torch.Tensor  # [N, len(CONDITIONS)] float32: each image's weight per condition (sum 1)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def of(self, condition: str) -> torch.Tensor:
        """The pixels of the images wholly of one condition."""
        return self.pixels[self.labels[:, CONDITIONS.index(condition)] == 1]


def one_condition(condition: str) -> np.ndarray:
    weights = np.zeros(len(CONDITIONS), np.float32)
    weights[CONDITIONS.index(condition)] = 1
    return weights


def crop_weights(condition: str, subject_share: float) -> np.ndarray:
    """The label of a crop of a photo under ``condition`` that shows ``subject_share`` of subject pixels."""
    if condition != "backlit":
        return one_condition(condition)
    backlit = min(1.0, subject_share / SUBJECT_FILLS)
    return backlit * one_condition("backlit") + (1 - backlit) * one_condition("over-exposed")


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    return np.random.default_rng([int(seed), SPLITS[split], int(index)])


def random_scene(rng: np.random.Generator) -> Scene:
    """A scene of a random size and aspect (shorter side in :data:`PHOTO_SIDES`)."""
    short = int(rng.integers(PHOTO_SIDES[0], PHOTO_SIDES[1] + 1))
    long = int(round(short * rng.uniform(1.0, 4 / 3)))
    h, w = (short, long) if rng.uniform() < 0.5 else (long, short)
    return make_scene(rng, h, w)


def random_crop(rng: np.random.Generator, h: int, w: int) -> tuple[slice, slice]:
    """A square window of an ``h`` x ``w`` photo (side in :data:`CROP_SIDES` of the shorter side)."""
    side = max(8, int(round(min(h, w) * rng.uniform(*CROP_SIDES))))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return slice(y, y + side), slice(x, x + side)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] array -> [1, 3, H, W] float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def make_split(seed: int, split: str, scenes: int, size: int, crops: int = 0) -> LabelledImages:
    """``scenes`` scenes of ``split``, each under every condition, resized to ``size`` pixels square;
    plus ``crops`` crops of every photo, labelled by :func:`crop_weights`."""
    pixels, labels = [], []
    for i in range(int(scenes)):
        rng = scene_rng(seed, split, i)
        scene = random_scene(rng)
        h, w = scene.subject.shape
        for condition in CONDITIONS:
            photo = render(scene, condition, rng)
            pixels.append(resize_for_clip(to_tensor(photo), size))
            labels.append(one_condition(condition))
            for _ in range(crops):
                rows, cols = random_crop(rng, h, w)
                pixels.append(resize_for_clip(to_tensor(photo[rows, cols]), size))
                labels.append(crop_weights(condition, float(scene.subject[rows, cols].mean())))
    return LabelledImages(torch.cat(pixels), torch.from_numpy(np.stack(labels)))
