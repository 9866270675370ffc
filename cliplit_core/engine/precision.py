"""The compute precision: one vocabulary for the command line, the nodes and the Python API.

A user's string (``"bf16"``, ``"auto"`` ...) is parsed once into a :class:`Precision`;
:meth:`Precision.resolve` turns it into the torch dtype for a device and a kind of run.
``auto`` is defined here and nowhere else (docs/design.md, "The enhance entry point and the engine"): the fastest dtype
that meets the run's fidelity bar on the device,

* exact runs (within one 8-bit level of float32): float16 on CUDA, float32 on every other device;
* fast previews (their own approximation dominates; bfloat16 rounding is far below it):
  float16 on CUDA, bfloat16 on a CPU that computes it natively (AVX-512 BF16 or AMX), float32
  elsewhere.

torch is imported only when a dtype is needed (``--help`` stays light).
"""
from __future__ import annotations

import enum
import sys

from ..validation import OptionError

AUTO_CUDA_DTYPE = "float16"  # torch dtype name; see Precision.AUTO


class Precision(enum.Enum):
    """How the enhancement network computes (the result is always float32)."""

    FP32 = ("fp32", "float32", "32-bit floats: reproduces the authors' results")
    AUTO = ("auto", None, "float16 on CUDA GPUs; for the fast preview bfloat16 on CPUs that compute it "
                          "natively; float32 otherwise")
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

    def resolve(self, device, *, preview: bool = False):
        """The torch dtype this precision computes in on ``device`` (a torch.device or its name), for
        an exact run or (``preview``) a fast preview. Only ``auto`` depends on them (module docstring)."""
        import torch

        name = self.dtype_name
        if name is None:
            kind = torch.device(device).type
            if kind == "cuda":
                name = AUTO_CUDA_DTYPE
            elif preview and kind == "cpu" and cpu_has_fast_bfloat16():
                name = "bfloat16"
            else:
                name = "float32"
        return getattr(torch, name)

    def __str__(self) -> str:
        return self.value


_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


def compute_dtype(value, device, *, preview: bool = False):
    """``Precision.parse(value).resolve(device, preview=preview)``: the torch dtype for any accepted value."""
    return Precision.parse(value).resolve(device, preview=preview)


def cpu_has_fast_bfloat16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX-512 BF16 or AMX): oneDNN's bfloat16 convs
    then run faster than float32 (measured: docs/performance.md); elsewhere they are emulated."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in checks if hasattr(torch.cpu, name))
    except Exception:  # noqa: BLE001 - private helpers: unknown means no
        return False
