"""What every command line of the project shares (``cliplit`` and ``python -m trainer``).

* :class:`OneLineParser`: argparse whose errors are one line with a hint (no usage block;
  ``--help`` has it), and which takes negative numbers as option values (``--x -1e9``;
  plain argparse reads ``-1e9`` as an unknown option).
* :func:`stdout_closed`: what to do when the reader of stdout has gone (``... | head``).
"""
from __future__ import annotations

import argparse
import os
import sys


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors and negative numbers as values (subparsers inherit both)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def _parse_optional(self, arg_string):
        if arg_string not in self._option_string_actions and _is_number(arg_string):
            return None  # a value (argparse's own test misses -1e9, -1.5e-3, -inf)
        return super()._parse_optional(arg_string)


def stdout_closed() -> None:
    """Call on BrokenPipeError: what is still buffered goes to /dev/null, so the interpreter does not
    fail again when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing to redirect
        pass
    finally:
        os.close(devnull)
