"""Labelled images of a split: every scene photographed under every lighting condition.

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

SPLITS = {"train": 1, "heldout": 2, "pairs": 3}  # seed-stream codes: no two splits share a scene
PHOTO_SIDES = (64, 128)  # the shorter side of a photo before it is resized for CLIP, in pixels
assert tuple(CAPTIONS) == CONDITIONS, "captions and lighting must list the conditions in the same order"


@dataclass(frozen=True)
class LabelledImages:
    pixels: torch.Tensor  # [N, 3, S, S] float32 in 0..1, at the CLIP's input size
    labels: torch.Tensor  # [N] int64: index into lighting.CONDITIONS

    def __len__(self) -> int:
        return int(self.labels.numel())

    def of(self, condition: str) -> torch.Tensor:
        """The pixels of one condition."""
        return self.pixels[self.labels == CONDITIONS.index(condition)]


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


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] array -> [1, 3, H, W] float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def make_split(seed: int, split: str, scenes: int, size: int) -> LabelledImages:
    """``scenes`` scenes of ``split``, each under every condition, resized to ``size`` pixels square."""
    pixels, labels = [], []
    for i in range(int(scenes)):
        rng = scene_rng(seed, split, i)
        scene = random_scene(rng)
        for label, condition in enumerate(CONDITIONS):
            pixels.append(resize_for_clip(to_tensor(render(scene, condition, rng)), size))
            labels.append(label)
    return LabelledImages(torch.cat(pixels), torch.tensor(labels, dtype=torch.int64))
