"""The allowed range of each numeric option, checked the same way by the command line,
the Python API and the nodes: finite, within the range, an integer where one is needed."""
from __future__ import annotations

import math
from typing import NamedTuple

from .errors import CLIPLITError


class OptionError(CLIPLITError, ValueError):
    """A numeric option outside its documented range (NaN, infinite, negative, too large ...)."""


class NumberRange(NamedTuple):
    name: str
    low: float
    high: float
    integer: bool = False
    meaning: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{kind} from {_fmt(self.low)} to {_fmt(self.high)}" + (f" ({self.meaning})" if self.meaning else "")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


STRENGTH = NumberRange("strength", 0.0, 2.0, meaning="0 = unchanged, 1 = the authors' result, 2 = twice the correction")
QUALITY = NumberRange("quality", 1, 100, integer=True)
MAX_MEGAPIXELS = NumberRange("max-pixels", 0.000001, 1_000_000.0, meaning="megapixels")
MASK_FEATHER = NumberRange("mask_feather", 0.0, 256.0, meaning="pixels")
TEMPORAL_SMOOTHING = NumberRange("temporal_smoothing", 0.0, 16.0, meaning="frames")
TILE_SIZE = NumberRange("tile_size", 0, 16384, integer=True, meaning="pixels, 0 = automatic")
TILE = NumberRange("tile", 1, 1 << 20, integer=True, meaning="pixels")
BATCH_SIZE = NumberRange("batch-size", 1, 1 << 16, integer=True)
PROMPT_LENGTH = NumberRange("prompt-length", 1, 1024, integer=True, meaning="tokens")
JOBS = NumberRange("jobs", 1, 1024, integer=True, meaning="images in flight; 1 = one after another")


def check_number(rule: NumberRange, value) -> float | int:
    """``value`` as a float (or int for integer rules) when it is within ``rule``; else OptionError
    naming the option, the value and the allowed range."""
    bad = OptionError(f"{rule.name} must be {rule.describe()}, got {value!r}")
    if isinstance(value, bool):
        raise bad
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if not math.isfinite(x) or not rule.low <= x <= rule.high:
        raise bad
    if rule.integer:
        if not x.is_integer():
            raise bad
        return int(x)
    return x


def argparse_type(rule: NumberRange):
    """An argparse ``type=`` that parses the text and applies :func:`check_number` (exit 2 with the range)."""
    import argparse

    def parse(text: str):
        try:
            value = int(text) if rule.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}") from None
        try:
            return check_number(rule, value)
        except OptionError:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}") from None
    parse.__name__ = rule.name  # argparse names the type in some messages
    return parse
