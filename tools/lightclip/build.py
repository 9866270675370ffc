"""Build the lighting CLIP: an open_clip model config JSON and its weights, from a seed.

The model is a small open_clip CLIP: a ModifiedResNet image tower (RN101's family, so the
trainer's identity loss can use it too) at 32 pixels and a two-layer text transformer
with CLIP's tokenizer vocabulary (49,408 tokens, which dominate the file's size). Two
sizes of the same recipe, differing only in how many scenes and steps:

* ``ci``: what the tests build once and cache (tests/support/light_clip.py);
* ``full``: ``python -m tools.make_light_clip``'s default, for local trials and reports.

The result is a pure function of (recipe, size, seed) on a given PyTorch build: the data
and the initialisation come from the seed, and training runs on a fixed number of CPU
threads (:data:`THREADS`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cliplit_core.clip import preprocess, scores
from cliplit_core.files.atomic import write_together

from .captions import all_captions
from .contrastive import Schedule, train
from .dataset import make_split

CONFIG_NAME = "light_clip.json"
WEIGHTS_NAME = "light_clip.safetensors"
RECORD_NAME = "light_clip_build.json"
THREADS = 1
IMAGE_SIZE = 32
MODEL_CONFIG = {
    "embed_dim": 64,
    "quick_gelu": False,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


@dataclass(frozen=True)
class BuildSize:
    scenes: int  # training scenes, each under every condition
    crops: int  # crops of each photo besides the whole photo
    steps: int
    batch: int


SIZES = {
    "ci": BuildSize(scenes=300, crops=1, steps=300, batch=64),
    "full": BuildSize(scenes=1500, crops=1, steps=1500, batch=64),
}
# what the weights depend on besides the seed and the size: this package and the core code it runs
RECIPE_FILES = [Path(__file__).with_name(f"{name}.py")
                for name in ("scenes", "lighting", "captions", "dataset", "contrastive", "build")]
RECIPE_FILES += [Path(preprocess.__file__), Path(scores.__file__)]


@dataclass(frozen=True)
class LightClip:
    """Where a built lighting CLIP is: load it with ``load_backbone(str(config), str(weights))``."""

    config: Path
    weights: Path

    @classmethod
    def in_folder(cls, folder: Path) -> "LightClip":
        return cls(Path(folder) / CONFIG_NAME, Path(folder) / WEIGHTS_NAME)

    @property
    def record(self) -> Path:
        return self.config.with_name(RECORD_NAME)

    def exists(self) -> bool:
        return self.config.is_file() and self.weights.is_file()

    def built_with(self, seed: int, spec: "BuildSize") -> bool:
        """True when these files exist and were built by this recipe for ``seed`` and ``spec``."""
        try:
            record = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return self.exists() and record.get("fingerprint") == fingerprint(seed, spec)


def fingerprint(seed: int, spec: BuildSize) -> str:
    """A hash of everything the built weights depend on: the recipe's code, the captions, the model
    config, the seed, the size and the versions of PyTorch and open_clip."""
    import open_clip

    h = hashlib.sha256()
    for path in RECIPE_FILES:
        h.update(path.read_bytes())
    parts = [all_captions(), MODEL_CONFIG, seed, asdict(spec), THREADS, torch.__version__, open_clip.__version__]
    h.update(json.dumps(parts, sort_keys=True).encode())
    return h.hexdigest()


def new_model(seed: int) -> torch.nn.Module:
    """The open_clip CLIP of :data:`MODEL_CONFIG` with initial weights from ``seed``."""
    from open_clip.model import CLIP

    cfg = dict(MODEL_CONFIG)
    quick_gelu = cfg.pop("quick_gelu")
    torch.manual_seed(seed)
    return CLIP(**cfg, quick_gelu=quick_gelu)


def tokenize(texts: list[str]) -> torch.Tensor:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=MODEL_CONFIG["text_cfg"]["context_length"])(texts)


def build(folder: str | Path, seed: int, spec: BuildSize, log=None) -> LightClip:
    """Train the lighting CLIP and write it into ``folder`` (config, weights, a build record).
    ``log(step, mean loss, seconds)``: progress every 50 steps."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            start = time.perf_counter()
            data = make_split(seed, "train", spec.scenes, IMAGE_SIZE, spec.crops)
            made = time.perf_counter() - start
            texts, owners = all_captions()
            model = new_model(seed)
            losses = train(model, tokenize(texts), torch.tensor(owners), data, Schedule(steps=spec.steps, batch=spec.batch),
                           torch.Generator().manual_seed(seed), log=log)
            seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    out = LightClip.in_folder(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    record = {"seed": seed, **asdict(spec), "fingerprint": fingerprint(seed, spec), "images": len(data),
              "data_seconds": round(made, 1), "seconds": round(seconds, 1),
              "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4)}
    write_together([
        (out.weights, lambda tmp: save_file(state, str(tmp))),
        (out.config, lambda tmp: tmp.write_text(json.dumps(MODEL_CONFIG, indent=1), encoding="utf-8")),
        (out.record, lambda tmp: tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")),
    ])
    return out
