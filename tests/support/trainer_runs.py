"""Real trainer runs for tests: tiny random CLIP configs at 32 px, small synthetic photo folders,
and the command line that trains on them in seconds on a CPU."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.clip_fixtures import single_thread
from tests.support.data import synthetic_photo

TEXT_CFG = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
# mean-pooled tokens keep global brightness in the random features, so the folders are separable
VIT = {"embed_dim": 32, "text_cfg": TEXT_CFG,
       "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8,
                      "pool_type": "avg"}}
RN = {"embed_dim": 32, "text_cfg": TEXT_CFG,
      "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None}}


def write_clip_configs(d: Path) -> Path:
    """``d/vit.json`` (prompts, scores) and ``d/rn.json`` (identity loss); returns ``d``."""
    (d / "vit.json").write_text(json.dumps(VIT))
    (d / "rn.json").write_text(json.dumps(RN))
    return d


def save_photo(path: Path, arr: np.ndarray) -> None:
    Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def write_photo_folders(d: Path, n_backlit: int = 5, n_welllit: int = 4) -> Path:
    """``d/backlit`` (backlit-looking synthetic photos) and ``d/welllit``, 40 x 48 px; returns ``d``."""
    (d / "backlit").mkdir()
    (d / "welllit").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_backlit):
        save_photo(d / "backlit" / f"b{i}.png", synthetic_photo(40, 48, 3, seed=i))
    for i in range(n_welllit):
        base = 0.45 + 0.1 * rng.random((1, 1, 3)) + 0.15 * rng.standard_normal((40, 48, 1)).cumsum(0) / 20
        save_photo(d / "welllit" / f"w{i}.jpg" if i % 2 else d / "welllit" / f"w{i}.png",
                   np.broadcast_to(base, (40, 48, 3)).astype(np.float32))
    return d


def tiny_args(out, backlit, welllit, configs, **over) -> list[str]:
    """The trainer's arguments for a tiny run (``over``: options to change; None leaves one out)."""
    opts = {
        "backlit": backlit, "welllit": welllit, "out": out,
        "clip-model": configs / "vit.json", "clip-pretrained": "none",
        "identity-model": configs / "rn.json", "identity-pretrained": "none",
        "image-size": 32, "prompt-image-size": 32, "batch-size": 2, "prompt-batch-size": 4,
        "prompt-length": 6, "prompt-init-iters": 6, "reconstruction-iters": 4, "enhance-iters": 4,
        "prompt-iters": 4, "rounds": 2, "lr": 3e-4, "prompt-lr": 1e-4, "init-scheme": "identity",
        "log-every": 1, "save-every": 3, "workers": 0, "device": "cpu", "seed": 0, "progress": "off",
        "recipe": "paper",
    }
    opts.update({k.replace("_", "-"): v for k, v in over.items()})
    args = []
    for k, v in opts.items():
        if v is None:
            continue
        if v is True:
            args.append(f"--{k}")
        elif isinstance(v, (list, tuple)):
            args += [f"--{k}", *map(str, v)]
        else:
            args += [f"--{k}", str(v)]
    return args


def run_trainer(args) -> int:
    from trainer.cli import main

    with single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random CLIP weights warn loudly
        return main([str(a) for a in args])


def plan_folders(tmp_path, nb: int, nw: int):
    """Backlit and well-lit folders of ``nb`` / ``nw`` empty files (``--plan`` only counts them)."""
    for name, n in (("b", nb), ("w", nw)):
        (tmp_path / name).mkdir()
        for i in range(n):
            (tmp_path / name / f"{i}.png").touch()
    return tmp_path / "b", tmp_path / "w"
