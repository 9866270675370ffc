"""The tile setting: automatic, whole image, or a fixed tile edge, parsed once from a user's value.

Spellings: ``"auto"`` or ``0`` = automatic (whole image when it fits the memory budget, else
tiles that do); ``"none"`` / ``"whole"`` / ``None`` = always the whole image; an integer in the
rule's range (default :data:`validation.TILE`) = the tile edge in pixels. Tiling is exact, so
the setting changes speed and memory, never the result. Layers below the parse receive a
:class:`TileSetting` and do not check it again.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..validation import TILE, NumberRange, OptionError, check_number


class TileMode(enum.Enum):
    AUTO = "auto"    # from the memory budget
    WHOLE = "whole"  # never tiled
    FIXED = "fixed"  # tiles of ``size`` pixels


@dataclass(frozen=True)
class TileSetting:
    mode: TileMode
    size: int | None = None  # the tile edge for FIXED, else None

    AUTO = None   # TileSetting(TileMode.AUTO), set below
    WHOLE = None  # TileSetting(TileMode.WHOLE), set below

    @classmethod
    def fixed(cls, size: int) -> "TileSetting":
        return cls(TileMode.FIXED, int(size))

    @staticmethod
    def describe(rule: NumberRange = TILE) -> str:
        return f"'auto' (or 0), 'none' or {rule.describe()}"

    @classmethod
    def parse(cls, value, rule: NumberRange = TILE) -> "TileSetting":
        """A TileSetting from ``"auto"`` / ``0``, ``"none"`` / ``"whole"`` / ``None``, or an integer
        (or its text) within ``rule``. OptionError (one line, naming ``rule.name``) otherwise."""
        if isinstance(value, TileSetting):
            return value
        if value is None:
            return cls.WHOLE
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return cls.AUTO
            if text in ("none", "whole"):
                return cls.WHOLE
            try:
                value = int(text)
            except ValueError:
                raise OptionError(f"{rule.name} must be {cls.describe(rule)}, got {value!r}") from None
        if not isinstance(value, bool) and value == 0:
            return cls.AUTO
        try:
            return cls.fixed(check_number(rule, value))
        except OptionError:
            raise OptionError(f"{rule.name} must be {cls.describe(rule)}, got {value!r}") from None

    def __str__(self) -> str:
        return str(self.size) if self.mode is TileMode.FIXED else self.mode.value


TileSetting.AUTO = TileSetting(TileMode.AUTO)
TileSetting.WHOLE = TileSetting(TileMode.WHOLE)
