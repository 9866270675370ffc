"""How much memory a device has free, for picking whole-image vs tiled inference."""
from __future__ import annotations

import os

import torch

CPU_FRACTION = 0.5   # of available RAM the whole-image path may use on CPU
GPU_FRACTION = 0.8   # of free device memory


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device`` in bytes, or None when unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def default_budget(device: torch.device | str) -> int | None:
    free = available_bytes(device)
    if free is None:
        return None
    return int(free * (GPU_FRACTION if torch.device(device).type == "cuda" else CPU_FRACTION))


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
