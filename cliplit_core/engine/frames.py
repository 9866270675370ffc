"""Video frames through the engine, streamed: each frame's light map from one :class:`Engine` for the
whole video (weights converted once, the memory plan and a back-off tile kept from frame to frame),
smoothed over time when asked (temporal.LightSmoother), then applied.

Frames go in one at a time with their timestamps and come out, in order, as soon as their smoothed
light map is known (the smoother's look-ahead is the only delay)."""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..files.images import to_float32, to_uint8
from .core import Engine
from .inference import compose, network_input, sanitize, split_channels
from .options import EnhanceOptions
from .run_context import RunContext
from .temporal import LightSmoother


class FrameStream:
    """Enhances the frames of one video (all of one size) as they are decoded."""

    def __init__(self, model, options: EnhanceOptions, run: RunContext, *, height: int, width: int):
        self.engine = Engine(model, options, run, batch=1, height=height, width=width)
        self.strength = options.strength
        self.smoother = LightSmoother(options.temporal_smoothing)
        self.pending: deque = deque()  # (pixels, timing) waiting for their smoothed light map

    def push(self, pixels: np.ndarray, timing) -> list[tuple[np.ndarray, object]]:
        """Add one decoded frame (H x W x 3 uint8) with its ``timing`` (returned with it, untouched);
        returns the frames now finished, in order: (H x W x 3 uint8, timing)."""
        x = sanitize(torch.from_numpy(to_float32(pixels)).permute(2, 0, 1)[None])
        color, _ = split_channels(x)
        light = self.engine.light(network_input(color))
        self.pending.append((pixels, timing))
        return self._apply(self.smoother.push(light, x))

    def finish(self) -> list[tuple[np.ndarray, object]]:
        """The frames still held back for smoothing."""
        done = self._apply(self.smoother.finish())
        self.engine.close()
        return done

    def _apply(self, lights) -> list[tuple[np.ndarray, object]]:
        done = []
        for light in lights:
            pixels, timing = self.pending.popleft()
            color, _ = split_channels(torch.from_numpy(to_float32(pixels)).permute(2, 0, 1)[None])
            out = compose(color, None, light, self.strength).image[0].permute(1, 2, 0).numpy()
            done.append((to_uint8(out), timing))
        return done
