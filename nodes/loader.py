"""Load CLIP-LIT (``CLIPLITLoader``): weights file -> ``CLIPLIT_MODEL``."""
from __future__ import annotations

import logging
from pathlib import Path

from . import comfy_env
from cliplit_core.model import AUTO, DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, CLIPLITModel, load_model
from cliplit_core.weights import file_contents
from cliplit_core.weights import sources as weights
from cliplit_core.weights.model_files import ModelFileNotFoundError
from .comfy_env import io
from .errors import node_errors
from .sockets import CLIPLIT_MODEL
from .wording import NO_PROMPT_FILE, OFFICIAL

log = logging.getLogger("CLIP-LIT")

CATEGORY = "image/enhance/CLIP-LIT"


def _resolve(name: str, what: str) -> Path:
    return comfy_env.model_files().require(name, what)


def official_path(progress=None) -> Path:
    """The verified official weights: in the download folder (models/cliplit/), else the core's
    cache if a previous CLI run put them there, else downloaded into the download folder."""
    dest = comfy_env.download_folder()
    target = dest / weights.OFFICIAL_FILENAME
    cached = weights.cache_dir() / weights.OFFICIAL_FILENAME
    if not target.is_file() and cached.is_file() and weights.sha256_of(cached) == weights.OFFICIAL_SHA256:
        return cached
    if not target.is_file():
        log.info("CLIP-LIT: downloading the official weights into %s (%s)", dest, weights.LICENSE_NOTE)
    return weights.official_weights(dest, progress=progress)


def _download_progress():
    bar = comfy_env.progress_bar(100)

    def cb(done: int, total: int) -> None:
        if total > 0:
            bar.update_absolute(min(100, int(100 * done / total)), 100)
        comfy_env.throw_if_interrupted()

    return cb


def listed_files(fits) -> list[str]:
    """The files of the model folders (relative names) for which ``fits(full path)`` holds."""
    found = []
    for name in comfy_env.list_model_files():
        path = comfy_env.find_model_file(name)
        if path is not None and fits(path):
            found.append(name)
    return found


def model_choices() -> list[str]:
    """model_name's list: 'official', then the files that hold an enhancement network (or that cannot be
    told cheaply: choosing one gives the loader's error saying what is wrong with it)."""
    return [OFFICIAL] + listed_files(file_contents.may_hold_network)


def prompt_pair_choices() -> list[str]:
    """prompt_pair's list: 'none', then the files that hold a prompt pair."""
    return [NO_PROMPT_FILE] + listed_files(file_contents.holds_prompt_pair)


def file_stamp(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "missing"
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def load_cliplit_model(model_name: str, *, prompt_pair: str | None = None, clip_model: str = AUTO,
                       clip_pretrained: str = AUTO, progress=None) -> CLIPLITModel:
    """Build the CLIPLIT_MODEL object. Raises a CLIPLITError (a clear node error) on any bad input."""
    path = official_path(progress) if model_name == OFFICIAL else _resolve(model_name, "model file")
    model = load_model(
        path, prompt_pair=None if prompt_pair in (None, "", NO_PROMPT_FILE) else prompt_pair,
        clip_model=clip_model, clip_pretrained=clip_pretrained, files=comfy_env.model_files(),
        offload_device=comfy_env.offload_device())
    log.info("CLIP-LIT: loaded %s", model)
    return model


class CLIPLITLoader(io.ComfyNode):
    """Load CLIP-LIT: the enhancement network (+ optional prompt pair and CLIP settings)."""

    @classmethod
    def define_schema(cls):
        folders = ", ".join(str(f) for f in comfy_env.model_folders()) or "models/cliplit/"
        return io.Schema(
            node_id="CLIPLITLoader",
            display_name="Load CLIP-LIT",
            category=CATEGORY,
            description=("Loads a CLIP-LIT backlit-enhancement model from models/cliplit/ (the authors' .pth or a "
                         ".safetensors). 'official' downloads the authors' released model once into that folder "
                         "(S-Lab license, non-commercial). CLIP is only loaded when a CLIP Light Score is computed."),
            inputs=[
                io.Combo.Input("model_name", options=model_choices(), default=OFFICIAL, tooltip=(
                    f"Enhancement network from models/cliplit/ ({folders}): the authors' .pth or our "
                    f".safetensors. '{OFFICIAL}' uses enhancement_model.pth there, downloading and sha256-checking "
                    f"the authors' released model first if it is missing. Only files holding an enhancement "
                    f"network are listed: prompt pairs are in prompt_pair's list; CLIP weights and CLIP model "
                    f"configs are not listed, type their file names into clip_pretrained and clip_model. "
                    f"Press R to refresh the lists after adding a file.")),
                io.String.Input("clip_model", default=AUTO, tooltip=(
                    f"CLIP backbone for the light score: '{AUTO}' (the one the prompt pair was made for, else "
                    f"{DEFAULT_CLIP_MODEL} as the authors), an open_clip model name, or the file name of an "
                    f"open_clip model-config .json in models/cliplit/.")),
                io.String.Input("clip_pretrained", default=AUTO, tooltip=(
                    f"CLIP weights: '{AUTO}' (the prompt pair's, else '{DEFAULT_CLIP_PRETRAINED}'), an open_clip "
                    f"tag ('openai', downloaded on first use), the file name of a local weights file in "
                    f"models/cliplit/ (or an absolute path), or 'none' for random weights (tests only; scores "
                    f"are meaningless).")),
                io.Combo.Input("prompt_pair", options=prompt_pair_choices(), default=NO_PROMPT_FILE,
                               optional=True, tooltip=(
                                   "Learned prompt pair for the light score, from models/cliplit/: the authors' "
                                   "prompt .pth or our .safetensors. By default the model file's own pair is "
                                   "used; without one, zero-shot text prompts. Only files holding a prompt pair "
                                   "are listed: the enhancement network is chosen in model_name, CLIP weights "
                                   "are typed into clip_pretrained by file name.")),
            ],
            outputs=[CLIPLIT_MODEL.Output("cliplit_model", display_name="cliplit_model", tooltip=(
                "The CLIP-LIT model (enhancement network, prompt pair, CLIP settings) for Backlit Enhance and "
                "CLIP Light Score."))],
        )

    @classmethod
    def fingerprint_inputs(cls, model_name, clip_model=AUTO, clip_pretrained=AUTO, prompt_pair=NO_PROMPT_FILE):
        """Reload when a file with the same name is replaced on disk."""
        stamps = []
        for name in (model_name, prompt_pair):
            if name in (OFFICIAL, NO_PROMPT_FILE, None):
                stamps.append(str(name))
            else:
                stamps.append(file_stamp(comfy_env.find_model_file(name)))
        return "|".join(stamps + [str(clip_model), str(clip_pretrained)])

    @classmethod
    def validate_inputs(cls, model_name, prompt_pair=NO_PROMPT_FILE):
        """Any file of the model folders is accepted, listed or not (ComfyUI would otherwise refuse a value
        missing from the list): a saved workflow naming a file keeps loading and running, and the loader
        then says what is wrong with the file, if anything. A name that is no file is refused here, naming
        the input (ComfyUI shows the message under every input this method takes)."""
        for value, builtin, what in ((model_name, OFFICIAL, "model_name"), (prompt_pair, NO_PROMPT_FILE, "prompt_pair")):
            if value in (builtin, None, ""):
                continue
            try:
                comfy_env.model_files().require(value, what)
            except ModelFileNotFoundError as e:
                return str(e)
        return True

    @classmethod
    @node_errors("Load CLIP-LIT")
    def execute(cls, model_name, clip_model=AUTO, clip_pretrained=AUTO, prompt_pair=NO_PROMPT_FILE):
        progress = _download_progress() if model_name == OFFICIAL else None
        return io.NodeOutput(load_cliplit_model(model_name, prompt_pair=prompt_pair, clip_model=clip_model,
                                                clip_pretrained=clip_pretrained, progress=progress))
