"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

``OUT/checkpoint.pt`` holds everything a run needs to continue exactly where it
stopped: the models, both optimisers (and the fp16 grad scaler), the position
(phase, round, iteration, global step, re-initialisations), the recent-loss
windows and best states of the current phase, the configuration, the data
listing, and the global RNG states (torch, CUDA, numpy, python) stored as
tensors and lists. The per-round enhancement results live beside it in
``OUT/work/results_round<R>.pt``.

Writing: temp file + fsync + ``os.replace`` (``cliplit_core.weights.checkpoint.atomic_write``);
the previous checkpoint is kept as ``checkpoint.prev.pt`` (hard link first, so
there is never a moment without a complete ``checkpoint.pt``).
"""
from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from cliplit_core.files.atomic import Staging
from cliplit_core.weights.checkpoint import atomic_write

from .config import TrainerError

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"
FORMAT = "cliplit-trainer-checkpoint"
VERSION = 1


# --------------------------------------------------------------------------- RNG
def rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": str(np_state[0]), "state": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": list(py_state[1]),
                   "gauss": None if py_state[2] is None else float(py_state[2])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):
            pass  # different GPU count: the trainer does not use the CUDA RNG for anything that matters


# --------------------------------------------------------------------------- save / load
def save_checkpoint(out_dir: str | os.PathLike, payload: dict) -> Path:
    out = Path(out_dir)
    path = out / CHECKPOINT_NAME
    payload = dict(payload, format=FORMAT, version=VERSION)
    if path.exists():
        try:
            with Staging() as staged:  # the previous checkpoint keeps a second name, given atomically
                staged.add(out / PREVIOUS_NAME, link_to=path)
                staged.commit()
        except OSError:  # file systems without hard links: keep going without a previous copy
            pass
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def _load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise TrainerError(f"{path}: not a readable trainer checkpoint ({first[:200]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise TrainerError(f"{path}: not a CLIP-LIT trainer checkpoint")
    if int(obj.get("version", 0)) > VERSION:
        raise TrainerError(f"{path}: written by a newer trainer (checkpoint version {obj.get('version')})")
    return obj


def find_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    out = Path(out_dir)
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        if (out / name).is_file():
            return out / name
    return None


def load_checkpoint(out_dir: str | os.PathLike, warn=print) -> dict | None:
    """The newest readable checkpoint in ``out_dir`` (falling back to the previous one), or None."""
    out = Path(out_dir)
    errors = []
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        p = out / name
        if not p.is_file():
            continue
        try:
            ck = _load(p)
        except TrainerError as e:
            errors.append(str(e))
            continue
        if errors:
            warn(f"warning: {errors[0]}; using {p.name} instead")
        ck["_path"] = str(p)
        return ck
    if errors:
        raise TrainerError("; ".join(errors))
    return None


# --------------------------------------------------------------------------- per-round results
def results_path(out_dir: str | os.PathLike, round_: int) -> Path:
    return Path(out_dir) / "work" / f"results_round{int(round_)}.pt"


def save_results(out_dir, round_: int, results: torch.Tensor) -> Path:
    path = results_path(out_dir, round_)
    atomic_write(path, lambda tmp: torch.save({"results": results.contiguous(), "round": int(round_)}, tmp))
    return path


def load_results(out_dir, round_: int) -> torch.Tensor:
    path = results_path(out_dir, round_)
    if not path.is_file():
        raise TrainerError(f"{path}: the enhancement results of round {round_} are missing; "
                           f"cannot resume the prompt refinement without them")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return obj["results"]
    except Exception as e:  # noqa: BLE001 - any failure is a broken file
        raise TrainerError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def prune_results(out_dir, keep: set[int]) -> None:
    work = Path(out_dir) / "work"
    if not work.is_dir():
        return
    for p in work.glob("results_round*.pt"):
        try:
            r = int(p.stem.removeprefix("results_round"))
        except ValueError:
            continue
        if r not in keep:
            p.unlink(missing_ok=True)
