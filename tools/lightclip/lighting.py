"""A scene under a lighting condition, by a small physical model of exposure.

The scene's colours (:class:`.scenes.Scene`) are the well-lit truth, display-referred. A
photo of it is made in linear light (the colours decoded with :data:`SCENE_GAMMA`): each
pixel's exposure is multiplied by a gain, the sensor adds noise (shot noise, proportional
to the signal, and read noise), the sensor clips at 1, and the camera encodes the result
with its gamma. The conditions differ only in their gains:

* ``well-lit``: one gain for the whole picture near 1 (about +-0.6 stop);
* ``backlit``: the subject under-exposed by a factor (:data:`BACKLIT_SUBJECT_GAIN`), the
  background over-exposed (:data:`BACKLIT_BACKGROUND_GAIN`, clipped where bright), the
  change blended across the mask's soft edge;
* ``under-exposed`` / ``over-exposed``: one gain for the whole picture, far below / above 1.

:func:`backlight` is the model on its own (the train-quality benchmark makes its
(backlit, truth) pairs with it); :func:`render` draws a condition's parameters and applies them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import Scene

SCENE_GAMMA = 2.2  # display-referred colours <-> linear light
CONDITIONS = ("well-lit", "backlit", "under-exposed", "over-exposed")
WELL_LIT_GAIN = (0.65, 1.5)
BACKLIT_SUBJECT_GAIN = (0.03, 0.2)
BACKLIT_BACKGROUND_GAIN = (1.8, 4.0)
UNDER_EXPOSED_GAIN = (0.015, 0.1)
OVER_EXPOSED_GAIN = (3.0, 10.0)
CAMERA_GAMMA = (2.0, 2.4)
READ_NOISE = (0.0005, 0.004)  # linear units (std)
SHOT_NOISE = (0.0005, 0.004)  # variance per unit of linear signal


@dataclass(frozen=True)
class Exposure:
    """One photo's exposure: gains of the subject and the background (linear), noise, camera gamma."""

    subject_gain: float
    background_gain: float
    read_noise: float = 0.0
    shot_noise: float = 0.0
    gamma: float = SCENE_GAMMA


def backlight(scene: Scene, exposure: Exposure, rng: np.random.Generator | None = None) -> np.ndarray:
    """The scene photographed with ``exposure``: [H, W, 3] float32 in 0..1 (noise drawn from ``rng``;
    none without it)."""
    linear = scene.colors.astype(np.float32) ** SCENE_GAMMA
    m = scene.subject[..., None]
    gain = exposure.subject_gain * m + exposure.background_gain * (1 - m)
    signal = linear * gain
    if rng is not None and (exposure.read_noise > 0 or exposure.shot_noise > 0):
        std = np.sqrt(exposure.shot_noise * signal + exposure.read_noise ** 2)
        signal = signal + std * rng.standard_normal(signal.shape).astype(np.float32)
    return np.clip(signal, 0.0, 1.0) ** (1.0 / exposure.gamma)


def sample_exposure(rng: np.random.Generator, condition: str) -> Exposure:
    """The exposure of a photo under ``condition`` (one of :data:`CONDITIONS`), drawn from ``rng``."""
    if condition == "backlit":
        subject, back = rng.uniform(*BACKLIT_SUBJECT_GAIN), rng.uniform(*BACKLIT_BACKGROUND_GAIN)
    else:
        ranges = {"well-lit": WELL_LIT_GAIN, "under-exposed": UNDER_EXPOSED_GAIN, "over-exposed": OVER_EXPOSED_GAIN}
        if condition not in ranges:
            raise ValueError(f"unknown lighting condition {condition!r}; one of {', '.join(CONDITIONS)}")
        subject = back = np.exp(rng.uniform(*np.log(ranges[condition])))
    return Exposure(float(subject), float(back), read_noise=float(rng.uniform(*READ_NOISE)),
                    shot_noise=float(rng.uniform(*SHOT_NOISE)), gamma=float(rng.uniform(*CAMERA_GAMMA)))


def render(scene: Scene, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The scene under ``condition``, exposure and noise drawn from ``rng``: [H, W, 3] float32 in 0..1."""
    return backlight(scene, sample_exposure(rng, condition), rng)
