"""(backlit, truth) pairs with ground truth, from the physical lighting model.

The truth is the scene in even light (:class:`.scenes.Scene` colours); the backlit photo
is the same scene through :func:`.lighting.backlight` with a backlit exposure drawn from
:func:`.lighting.sample_exposure`: the subject under-exposed by a factor, the background
over-exposed and clipped, sensor noise, the camera's gamma. Pairs of different splits
(:data:`.dataset.SPLITS`) never share a scene, and none is a scene the lighting CLIP was
trained on (its split is ``train``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .dataset import scene_rng, to_tensor
from .lighting import backlight, render, sample_exposure
from .scenes import make_scene


@dataclass(frozen=True)
class Pairs:
    backlit: torch.Tensor  # [N, 3, H, W] float32 in 0..1
    truth: torch.Tensor  # [N, 3, H, W]: the same scenes in even light
    subject: torch.Tensor  # [N, H, W]: the subject masks (soft edges)

    def __len__(self) -> int:
        return int(self.backlit.shape[0])


def make_pairs(seed: int, split: str, count: int, height: int, width: int | None = None) -> Pairs:
    """``count`` pairs of ``split``, ``height`` x ``width`` pixels (square when ``width`` is None)."""
    backlit, truth, subject = [], [], []
    for i in range(int(count)):
        rng = scene_rng(seed, split, i)
        scene = make_scene(rng, height, width)
        backlit.append(to_tensor(backlight(scene, sample_exposure(rng, "backlit"), rng)))
        truth.append(to_tensor(scene.colors))
        subject.append(torch.from_numpy(scene.subject)[None])
    return Pairs(torch.cat(backlit), torch.cat(truth), torch.cat(subject))


def make_photos(seed: int, split: str, count: int, condition: str, height: int,
                width: int | None = None) -> torch.Tensor:
    """``count`` photos of ``split``'s scenes under ``condition``: [N, 3, H, W] float32 in 0..1."""
    photos = []
    for i in range(int(count)):
        rng = scene_rng(seed, split, i)
        photos.append(to_tensor(render(make_scene(rng, height, width), condition, rng)))
    return torch.cat(photos) if photos else torch.empty(0, 3, height, width or height)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in 0..1 -> [N, H, W, 3] uint8 (rounded), as written to files."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
