"""What a user asks of an enhancement run, checked once: :class:`EnhanceOptions`."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

from .. import validation
from .masks import check_mask_shape
from .precision import Precision
from .tile_setting import TileSetting


class Mode(enum.Enum):
    """How the light map is computed."""

    EXACT = "exact"      # the network at full resolution (tiled or not: the same numbers)
    PREVIEW = "preview"  # fast: predicted at reduced resolution, calibrated on exact windows (preview.py)

    @classmethod
    def parse(cls, value) -> "Mode":
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise validation.OptionError(
                f"mode must be one of {', '.join(m.value for m in cls)}, got {value!r}") from None


@dataclass(frozen=True)
class EnhanceOptions:
    """The settings of one enhancement run; every field is parsed and range-checked on construction
    (validation.OptionError / ValueError, one line), so code that receives an EnhanceOptions never
    checks again. Plain values are accepted and normalised (``precision="bf16"``, ``tile=512``).

    * ``strength``: the correction in exposure space, result ``I / L**strength`` (validation.STRENGTH:
      0 = unchanged, 1 = the authors' result, up to 2).
    * ``mask``: enhance only where it is 1 ([H, W], [B, H, W] or [B, 1, H, W] in 0..1; resized to the
      image; one mask for all images or one per image, any other count is refused: masks.check_mask_batch);
      None = everywhere.
    * ``mask_feather``: Gaussian sigma in pixels softening the mask's edges (validation.MASK_FEATHER).
    * ``temporal_smoothing``: for a batch of consecutive video frames, Gaussian sigma in frames over
      which the light correction is smoothed, never across a scene cut; 0 = off
      (validation.TEMPORAL_SMOOTHING; temporal.py).
    * ``mode``: :class:`Mode` EXACT or PREVIEW (fast).
    * ``precision``: :class:`precision.Precision` (fp32 reproduces the authors' results).
    * ``tile``: :class:`tile_setting.TileSetting` (automatic from memory by default; exact at any size).
    """

    strength: float = 1.0
    mask: torch.Tensor | None = field(default=None, compare=False)
    mask_feather: float = 0.0
    temporal_smoothing: float = 0.0
    mode: Mode = Mode.EXACT
    precision: Precision = Precision.FP32
    tile: TileSetting = TileSetting.AUTO

    def __post_init__(self):
        put = object.__setattr__
        put(self, "precision", Precision.parse(self.precision))
        put(self, "strength", validation.check_number(validation.STRENGTH, self.strength))
        put(self, "mask_feather", validation.check_number(validation.MASK_FEATHER, self.mask_feather))
        put(self, "temporal_smoothing",
            validation.check_number(validation.TEMPORAL_SMOOTHING, self.temporal_smoothing))
        put(self, "mode", Mode.parse(self.mode))
        put(self, "tile", TileSetting.parse(self.tile))
        if self.mask is not None:
            if not isinstance(self.mask, torch.Tensor):
                raise TypeError(f"mask must be a tensor, got {type(self.mask).__name__}")
            check_mask_shape(self.mask)

    @property
    def per_pixel(self) -> bool:
        """True when the light map is applied after the network (a mask or temporal smoothing)."""
        return self.mask is not None or self.temporal_smoothing > 0
