"""Exceptions raised by the core. Each message names the file and the problem.

A message that asks the user to do something host-specific (choose a file, change a setting)
ends in an :class:`~cliplit_core.wording.Advice` instead of fixed words: ``str(error)`` words it
for the Python API, :meth:`CLIPLITError.worded` for any host (wording.py).
"""
from __future__ import annotations

from .wording import PYTHON, Advice, HostWording


class CLIPLITError(Exception):
    """Base class for all errors the core raises on purpose.

    ``advice``: the step the message ends in, appended in the host's words."""

    def __init__(self, *args, advice: Advice | None = None):
        super().__init__(*args)
        self.advice = advice

    def worded(self, wording: HostWording) -> str:
        text = super().__str__()
        return text if self.advice is None else text + wording.advise(self.advice)

    def __str__(self) -> str:
        return self.worded(PYTHON)


class CheckpointError(CLIPLITError):
    """A weights file is missing, unreadable, unsafe or does not fit the network."""


class ImageReadError(CLIPLITError):
    """An input image cannot be read or decoded."""


class WeightsDownloadError(CLIPLITError):
    """The official weights could not be fetched or failed their checksum."""


class CLIPBackboneError(CLIPLITError):
    """A CLIP backbone cannot be built or its weights cannot be loaded."""
