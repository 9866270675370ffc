"""The compute precision: one vocabulary for the command line, the nodes and the Python API.

A user's string (``"bf16"``, ``"auto"`` ...) is parsed once into a :class:`Precision`;
:meth:`Precision.resolve` turns it into the torch dtype for a device. ``auto`` has one
meaning everywhere, exact and preview runs alike: float16 on CUDA (measured to meet the
fidelity bar in benchmarks/bench_inference.py), float32 on every other device.
torch is imported only when a dtype is needed (``--help`` stays light).
"""
from __future__ import annotations

import enum
import sys

from .validation import OptionError

AUTO_CUDA_DTYPE = "float16"  # torch dtype name; see Precision.AUTO


class Precision(enum.Enum):
    """How the enhancement network computes (the result is always float32)."""

    FP32 = ("fp32", "float32", "32-bit floats: reproduces the authors' results")
    AUTO = ("auto", None, "float16 on CUDA GPUs, float32 on every other device")
    FP16 = ("fp16", "float16", "16-bit floats: faster on GPUs (benchmarks/bench_dtype_fidelity.py measures "
                               "how close)")
    BF16 = ("bf16", "bfloat16", "bfloat16: fast on recent GPUs and on CPUs with AVX-512 BF16 or AMX "
                                "(emulated, hence slow, on other CPUs)")

    def __new__(cls, name: str, dtype_name: str | None, description: str):
        member = object.__new__(cls)
        member._value_ = name
        member.dtype_name = dtype_name  # the torch dtype's name (None: depends on the device)
        member.description = description
        return member

    @classmethod
    def choices(cls) -> list[str]:
        """The names a user may type, in the order they are offered (fp32 first: the default of the nodes)."""
        return [p.value for p in cls]

    @classmethod
    def describe_choices(cls) -> str:
        return f"one of {', '.join(cls.choices())} (or float32, float16, bfloat16)"

    @classmethod
    def parse(cls, value) -> "Precision":
        """A :class:`Precision` from a user's value: a name (``"fp16"``, also ``"float16"`` / ``"half"``,
        any case), a torch dtype, ``None`` (= AUTO) or a Precision. OptionError (one line, listing
        the choices) for anything else."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls.AUTO
        if isinstance(value, str):
            key = value.strip().lower()
            key = _ALIASES.get(key, key)
            for p in cls:
                if p.value == key:
                    return p
        elif "torch" in sys.modules and isinstance(value, sys.modules["torch"].dtype):
            torch = sys.modules["torch"]
            for p in cls:
                if p.dtype_name is not None and getattr(torch, p.dtype_name) == value:
                    return p
        raise OptionError(f"precision must be {cls.describe_choices()}, got {value!r}")

    def resolve(self, device):
        """The torch dtype this precision computes in on ``device`` (a torch.device or its name)."""
        import torch

        name = self.dtype_name
        if name is None:
            name = AUTO_CUDA_DTYPE if torch.device(device).type == "cuda" else "float32"
        return getattr(torch, name)

    def __str__(self) -> str:
        return self.value


_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


def compute_dtype(value, device):
    """``Precision.parse(value).resolve(device)``: the torch dtype for any accepted precision value."""
    return Precision.parse(value).resolve(device)
