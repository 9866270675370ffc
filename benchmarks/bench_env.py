"""What the benchmarks share: where the test data is, and the machine's load beside each figure."""
from __future__ import annotations

import os

from tests.support.data import REPO as ROOT
from tests.support.data import SHARED_DATA as DATA  # CLIPLIT_SHARED_DATA or ../shared/data
WEIGHTS = DATA / "official_weights" / "enhancement_model.pth"


def load() -> str:
    """The 1 / 5 / 15-minute load averages, for the record (a shared machine moves the seconds)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"
