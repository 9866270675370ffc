"""How much memory a device has free, for picking whole-image vs tiled inference."""
from __future__ import annotations

import os

import torch

CPU_FRACTION = 0.5   # of available RAM the whole-image path may use on CPU
GPU_FRACTION = 0.8   # of free device memory


def param_bytes(module: torch.nn.Module) -> int:
    """Bytes the parameters of ``module`` take (what moving it to a device costs there)."""
    return sum(p.numel() * p.element_size() for p in module.parameters())


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


def resolve_device(name: str | None) -> torch.device:
    """The device a user named (``None``: :func:`default_device`); OptionError when the name is
    not a device or this machine does not have it (checked before any model is loaded)."""
    from ..validation import OptionError

    if not name:
        return default_device()
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise OptionError(f"device {name!r} is not a device name (cpu, cuda, cuda:1, mps ...)") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise OptionError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if dev.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise OptionError(f"device {name}: MPS is not available on this machine")
        return dev
    backend = getattr(torch, dev.type, None)
    if backend is not None and callable(getattr(backend, "is_available", None)) and backend.is_available():
        return dev
    raise OptionError(f"device {name}: not available on this machine (cpu, cuda, mps ...)")
