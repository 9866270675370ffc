"""Everything the nodes need from ComfyUI, in one place, with plain-torch fallbacks.

This is the ONLY module of the pack that imports ``comfy``, ``comfy_api``,
``folder_paths`` or ``server``. Inside ComfyUI it uses the V3 node API
(``comfy_api.latest``: ``io``, ``ui``, ``ComfyExtension``), ``comfy.model_management``
(device, offload device, free memory, unloading other models, OOM type, interrupt
flag), ``comfy.utils.ProgressBar``, ``folder_paths`` (models/cliplit/, honouring
extra_model_paths.yaml) and the server's per-node text. Outside ComfyUI (tests,
scripts) the same names work without it: the node API is the small stand-in in
tests/support/comfy_api_standin.py, the device is CUDA/MPS/CPU as available, the progress
bar is a recorder, the interrupt check does nothing and the model folder is
``$CLIPLIT_MODELS_DIR`` (if set).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from cliplit_core.engine import inference, memory

log = logging.getLogger("CLIP-LIT")

try:  # ComfyUI present?
    import comfy.model_management as _mm
    import comfy.utils as _cu
    import folder_paths as _fp
except ImportError:
    _mm = _cu = _fp = None

IN_COMFYUI = _fp is not None
MODEL_FOLDER = "cliplit"
MODEL_EXTENSIONS = {".pth", ".pt", ".safetensors"}
CONFIG_EXTENSIONS = {".json"}
MODELS_DIR_ENV = "CLIPLIT_MODELS_DIR"

# --------------------------------------------------------------------------- the V3 node API
MIN_COMFYUI = "0.3.48"  # the first release with comfy_api.latest and comfy_entrypoint loading
V3_NAMES = {"io": ("ComfyNode", "Schema", "NodeOutput", "Hidden", "Custom", "Boolean", "Int", "Float", "String",
                   "Combo", "Image", "Mask"),
            "ui": ("PreviewText",)}


def _comfyui_version() -> str:
    try:
        from comfyui_version import __version__
    except ImportError:
        return "of unknown version"
    return str(__version__)


def _v3_api():
    """(ComfyExtension, io, ui, problem): ComfyUI's V3 API, else the stand-in and, inside a ComfyUI
    too old for the pack, a one-line reason why the nodes are not registered."""
    try:
        from comfy_api.latest import ComfyExtension, io, ui
        missing = [f"{ns}.{name}" for ns, mod in (("io", io), ("ui", ui)) for name in V3_NAMES[ns]
                   if not hasattr(mod, name)]
        why = f"its comfy_api.latest lacks {', '.join(missing)}" if missing else None
    except ImportError as e:
        why = f"it has no V3 node API ({e})"
    if why is None:
        return ComfyExtension, io, ui, None
    if IN_COMFYUI:
        problem = (f"CLIP-LIT nodes not loaded: they need ComfyUI {MIN_COMFYUI} or newer, this ComfyUI is "
                   f"{_comfyui_version()} and {why}; update ComfyUI")
        return _NoV3.ComfyExtension, _NoV3, _NoV3, problem
    try:  # outside ComfyUI (tests, benchmarks, tools run from the repository): the tests' stand-in
        from tests.support import comfy_api_standin as standin
    except ImportError:
        return _NoV3.ComfyExtension, _NoV3, _NoV3, f"CLIP-LIT nodes need ComfyUI {MIN_COMFYUI} or newer ({why})"
    return standin.ComfyExtension, standin.io, standin.ui, None


class _NoV3:
    """Where there is no V3 API: names for the module's globals (nothing is defined or registered;
    the pack's entry point logs the problem instead)."""

    class ComfyExtension:
        pass


ComfyExtension, io, ui, V3_API_PROBLEM = _v3_api()


# --------------------------------------------------------------------------- devices and memory
def compute_device() -> torch.device:
    """Where the networks run (ComfyUI's torch device: cpu under --cpu)."""
    if _mm is not None:
        return _mm.get_torch_device()
    return memory.default_device()


def offload_device() -> torch.device:
    """Where models rest between runs (cpu, unless ComfyUI runs with --highvram/--gpu-only)."""
    if _mm is not None:
        return _mm.unet_offload_device()
    return torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where IMAGE / MASK outputs live (cpu, unless --gpu-only)."""
    if _mm is not None:
        return _mm.intermediate_device()
    return torch.device("cpu")


def low_vram() -> bool:
    """True under ComfyUI's --lowvram / --novram."""
    if _mm is None:
        return False
    return _mm.vram_state in (_mm.VRAMState.LOW_VRAM, _mm.VRAMState.NO_VRAM)


def free_memory(required_bytes: int, device: torch.device) -> None:
    """Ask ComfyUI to unload other models until ``required_bytes`` are free on ``device``."""
    if _mm is not None:
        _mm.free_memory(int(required_bytes), device)


def free_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (ComfyUI's accounting, which counts torch's cache as free)."""
    if _mm is not None:
        return int(_mm.get_free_memory(device))
    return memory.available_bytes(device)


def soft_empty_cache() -> None:
    if _mm is not None:
        _mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_oom(exc: BaseException) -> bool:
    if _mm is not None and _mm.OOM_EXCEPTION is not Exception and isinstance(exc, _mm.OOM_EXCEPTION):
        return True
    return inference.is_oom(exc)


def throw_if_interrupted() -> None:
    """Raise ComfyUI's InterruptProcessingException when the user pressed Cancel."""
    if _mm is not None:
        _mm.throw_exception_if_processing_interrupted()


# --------------------------------------------------------------------------- progress
class _RecordingProgressBar:
    """Stand-in for comfy.utils.ProgressBar outside ComfyUI: remembers the updates."""

    def __init__(self, total: int):
        self.total = total
        self.current = 0
        self.updates: list[tuple[int, int]] = []

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        self.updates.append((self.current, self.total))

    def update(self, value):
        self.update_absolute(self.current + value)


def progress_bar(total: int):
    """ComfyUI's ProgressBar (drives the node's bar and checks the Cancel button on every update)."""
    if _cu is not None:
        return _cu.ProgressBar(max(1, int(total)))
    return _RecordingProgressBar(max(1, int(total)))


def show_text_on_node(node_id: str | None, text: str) -> None:
    """Show ``text`` on the node in the browser (ComfyUI's per-node text, as Get Image Size does)."""
    if node_id is None or not IN_COMFYUI:
        return
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is not None and hasattr(server, "send_progress_text"):
        server.send_progress_text(text, node_id)


# --------------------------------------------------------------------------- model files
def register_model_folder() -> None:
    """Register models/cliplit/ with ComfyUI, keeping paths from extra_model_paths.yaml.

    main.py reads extra_model_paths.yaml before custom nodes load, so a user line
    ``cliplit: /some/where`` may already have created the entry (with an empty
    extension set): keep its paths, add ours, set the extensions.
    """
    if _fp is None:
        return
    default = os.path.join(_fp.models_dir, MODEL_FOLDER)
    paths, exts = _fp.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))
    paths = list(paths)
    if default not in paths:
        paths.append(default)
    _fp.folder_names_and_paths[MODEL_FOLDER] = (paths, set(exts) | MODEL_EXTENSIONS | CONFIG_EXTENSIONS)
    try:
        os.makedirs(default, exist_ok=True)
    except OSError:
        pass


def model_folders() -> list[Path]:
    """The folders searched for CLIP-LIT files, the first one being where downloads go."""
    if _fp is not None:
        return [Path(p) for p in _fp.get_folder_paths(MODEL_FOLDER)]
    env = os.environ.get(MODELS_DIR_ENV)
    return [Path(env)] if env else []


def _list(exts: set[str]) -> list[str]:
    if _fp is not None:
        names = _fp.get_filename_list(MODEL_FOLDER)
    else:
        names = []
        for folder in model_folders():
            if folder.is_dir():
                names += [str(p.relative_to(folder)).replace(os.sep, "/") for p in folder.rglob("*") if p.is_file()]
        names = sorted(set(names))
    return [n for n in names if os.path.splitext(n)[1].lower() in exts]


def list_model_files() -> list[str]:
    """Weights files (.pth / .pt / .safetensors) in the model folders, as relative names."""
    return _list(MODEL_EXTENSIONS)


def list_config_files() -> list[str]:
    """open_clip model-config JSON files in the model folders."""
    return _list(CONFIG_EXTENSIONS)


def find_model_file(name: str) -> Path | None:
    """Full path of a file name from the model folders (or an existing absolute path)."""
    if not name:
        return None
    p = Path(os.path.expanduser(name))
    if p.is_absolute():
        return p if p.is_file() else None
    if _fp is not None:
        full = _fp.get_full_path(MODEL_FOLDER, name)
        return Path(full) if full else None
    for folder in model_folders():
        if (folder / name).is_file():
            return folder / name
    return None


def model_files():
    """The core's description of where CLIP-LIT files live (models/cliplit/, looked up the way ComfyUI does)."""
    from cliplit_core.weights.model_files import ModelFiles

    return ModelFiles(folders=tuple(model_folders()), lookup=find_model_file,
                                                 download_folder=download_folder())


def download_folder() -> Path:
    """Where the official weights are downloaded to (the first model folder)."""
    folders = model_folders()
    if folders:
        return folders[0]
    from cliplit_core.weights import sources as weights

    return weights.cache_dir()


# --------------------------------------------------------------------------- a core run
LOWVRAM_FRACTION = 0.5  # of the free memory a run may use under --lowvram / --novram


def _progress_reporter(extra=None):
    """A (done, total) callback driving one ComfyUI ProgressBar (made on the first step, when the
    total is known), then ``extra``."""
    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total)
        bar.update_absolute(done, total)
        if extra is not None:
            extra(done, total)
    return report


def run_context(progress=None):
    """The core's RunContext for a run inside ComfyUI (or its plain-torch stand-ins): ComfyUI's
    device, free memory and unloading, its cache, a ProgressBar (plus ``progress(done, total)``),
    the Cancel button, IMAGE outputs on the intermediate device, warnings in the CLIP-LIT log."""
    from cliplit_core.engine.run_context import RunContext

    return RunContext(
        device=compute_device(), free_bytes=free_bytes, memory_fraction=LOWVRAM_FRACTION if low_vram() else None,
        free_memory=free_memory, empty_cache=soft_empty_cache, progress=_progress_reporter(progress),
        raise_if_cancelled=throw_if_interrupted, output_device=intermediate_device(),
        warn=lambda message: log.warning("Backlit Enhance: %s", message))
