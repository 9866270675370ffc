"""The argument parser of the lighting-CLIP tool and its benchmarks: a bad option is one line
(``PROG: error: MESSAGE (see --help)``, exit status 2), as in ``python -m cliplit_core``."""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
