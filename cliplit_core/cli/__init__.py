"""The command line: ``python -m cliplit_core`` and the ``cliplit`` script."""
from .app import main

__all__ = ["main"]
