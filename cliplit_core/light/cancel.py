"""Where a running forward pass may stop: between two layers.

The host's Cancel (ComfyUI's button, a test's deadline) is checked by the engine after every
step it reports, but one step can be a whole image. So the forward pass itself calls
:func:`check` between its layers; :func:`checks` installs the host's check for the duration
of a run (a context variable: each thread and task sees its own, and nothing changes for code
that installed none). A check raises the host's exception to stop the run; the layers already
computed are dropped, nothing is written.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Callable, Iterator

_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("cliplit_cancel_check", default=None)


@contextlib.contextmanager
def checks(check: Callable[[], None] | None) -> Iterator[None]:
    """Call ``check()`` between the network's layers while the block runs (None: no checks)."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def check() -> None:
    """Give the host a chance to stop the run here (raises the host's exception)."""
    fn = _CHECK.get()
    if fn is not None:
        fn()
