"""Shared assertions, each a property every path of the engine must keep."""
from __future__ import annotations

import torch

# Exact tiling reorders float sums only: measured at most 3.6e-7 on the light map (float32).
TILED_TOLERANCE = 1e-5


def assert_tiled_equals_whole(tiled: torch.Tensor, whole: torch.Tensor, tol: float = TILED_TOLERANCE) -> None:
    """Two light maps (or images) of the same input, one tiled: equal within float rounding,
    and equal as 8-bit values wherever they are not on a rounding edge."""
    assert tiled.shape == whole.shape, (tiled.shape, whole.shape)
    diff = (tiled.float() - whole.float()).abs().max().item()
    assert diff < tol, f"tiled differs from whole by {diff:.3g} (allowed {tol:g})"


class CancelAfter:
    """A host's Cancel: ``raise_if_cancelled`` that raises :class:`Cancelled` once it has been called
    ``calls`` times, remembering how often it was called in all (to prove where a run stopped)."""

    class Cancelled(Exception):
        pass

    def __init__(self, calls: int):
        self.calls, self.seen = calls, 0

    def __call__(self) -> None:
        self.seen += 1
        if self.seen >= self.calls:
            raise self.Cancelled()


def assert_cancel_stops(run, cancel: CancelAfter, within: int = 0) -> None:
    """``run()`` raises the host's exception, and no more than ``within`` checks happen after the
    one that asked to stop (0: control returns at the first check that sees Cancel)."""
    try:
        run()
    except CancelAfter.Cancelled:
        pass
    else:
        raise AssertionError("the run finished although Cancel was pressed")
    assert cancel.seen - cancel.calls <= within, f"{cancel.seen - cancel.calls} checks after Cancel"
