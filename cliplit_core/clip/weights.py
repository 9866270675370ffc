"""Where a CLIP backbone's pretrained weights come from: open_clip tags, local caches, the download.

An open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``, ...) names weights
that open_clip fetches from the Hugging Face hub. :func:`cached_tag_file` finds a
copy already on this computer without touching the network (open_clip's ``file``
entries, the Hugging Face cache, OpenAI's original ``~/.cache/clip/<name>.pt``).
:func:`tag_weights` returns that copy, or downloads the file, but only after the
download server answered within a few seconds: offline it fails at once, naming
the exact file to fetch (full URL and file name), instead of the hub client's
minute of retries.

The CLI, the trainer (through :mod:`.clip_backbone`) and the ComfyUI nodes all
resolve tags here; they differ only in the words of the step that says what to do with a
file downloaded by hand (an :class:`~cliplit_core.wording.Advice`, worded by each host,
wording.py). :func:`resolve_clip` turns a user's pair of
settings (model name or config file, tag / weights file / ``none``) into local files,
looking relative names up in a model's folders (:class:`.model_files.ModelFiles`).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from ..errors import CLIPBackboneError
from ..weights.model_files import ModelFiles
from ..wording import Advice

RANDOM_WEIGHTS = "none"  # pretrained setting for random weights (tests and timing only)
WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")  # a pretrained setting naming a file, not a tag
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip's default file in a hub repository
PROBE_TIMEOUT_S = 3.0


class CLIPWeightsUnavailableError(CLIPBackboneError):
    """The weights of a pretrained tag are not on this computer and cannot be downloaded."""


class TagWeights(NamedTuple):
    file: str  # a local weights file
    quick_gelu: bool  # the activation these weights were trained with


def is_config_path(model: str) -> bool:
    """True when ``model`` is an open_clip model-config JSON file rather than a model name."""
    return model.lower().endswith(".json") or Path(model).is_file()


def names_weights_file(pretrained: str) -> bool:
    """True when ``pretrained`` is meant as a weights file (an existing file or a weights suffix), not a tag."""
    return Path(pretrained).suffix.lower() in WEIGHTS_SUFFIXES or Path(pretrained).is_file()


def tag_config(model: str, pretrained: str) -> dict | None:
    """open_clip's description of pretrained tag ``pretrained`` of model ``model`` (None if unknown)."""
    from open_clip.pretrained import get_pretrained_cfg

    if is_config_path(model):
        return None
    return get_pretrained_cfg(model.replace("/", "-"), pretrained) or None


def known_tags(model: str) -> list[str]:
    from open_clip.pretrained import list_pretrained_tags_by_model

    return [] if is_config_path(model) else list_pretrained_tags_by_model(model.replace("/", "-"))


def hub_files(tag: dict) -> tuple[str, list[str]]:
    """(hub repository, file names in the order open_clip tries them: safetensors first)."""
    hub = tag.get("hf_hub") or ""
    if not hub:
        return "", []
    repo, name = os.path.split(hub)  # 'org/repo/' -> ('org/repo', '') = the default file
    name = name or HF_WEIGHTS_NAME
    if name == HF_WEIGHTS_NAME:
        safe = ["open_clip_model.safetensors"]
    elif name.endswith((".bin", ".pth")):
        safe = [name[:-4] + ".safetensors"]
    else:
        safe = []
    return repo, [*safe, name]


def _hub_endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return constants.ENDPOINT


def download_url(tag: dict) -> tuple[str, str]:
    """(full URL, file name) of the file to download by hand: the hub's preferred file, else the tag's URL."""
    repo, names = hub_files(tag)
    if repo:
        return f"{_hub_endpoint().rstrip('/')}/{repo}/resolve/main/{names[0]}", names[0]
    url = tag.get("url") or ""
    return url, os.path.basename(urlsplit(url).path)


def cached_tag_file(tag: dict) -> str | None:
    """A local copy of the tag's weights, found without any network access (None if there is none)."""
    if tag.get("file"):
        return str(tag["file"])
    repo, names = hub_files(tag)
    if repo:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        for name in names if try_to_load_from_cache else []:
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    url = tag.get("url") or ""
    if url:  # where open_clip (and OpenAI's clip package) keep files downloaded from a URL
        legacy = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(urlsplit(url).path)
        if legacy.is_file():
            return str(legacy)
    return None


def download_server() -> tuple[str, int]:
    parts = urlsplit(_hub_endpoint())
    return parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)


def hub_offline() -> bool:
    """True when the Hugging Face client is told to stay offline (``HF_HUB_OFFLINE``)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def can_reach_download_server(timeout: float = PROBE_TIMEOUT_S) -> bool:
    if hub_offline():
        return False
    try:
        with socket.create_connection(download_server(), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable(model: str, pretrained: str, tag: dict, why: str, folder: Path | None) -> CLIPWeightsUnavailableError:
    url, name = download_url(tag)
    original = tag.get("url") or ""
    alt = ""
    if original and original != url:
        alt = f" (or the original {os.path.basename(urlsplit(original).path)} from {original})"
    return CLIPWeightsUnavailableError(
        f"the CLIP weights {model} / {pretrained!r} are not on this computer and {why}. "
        f"Download the file {name} from {url}{alt} elsewhere",
        advice=(Advice("clip_weights_into_folder", {"folder": folder}) if folder is not None
                else Advice("clip_weights_path")))


def tag_weights(model: str, pretrained: str, *, folder: Path | None = None) -> TagWeights:
    """The local weights file of an open_clip pretrained tag, downloaded if needed and possible.
    ``folder``: where a file downloaded by hand may go (the advice of the error names it).

    Raises :class:`CLIPBackboneError` for an unknown tag and
    :class:`CLIPWeightsUnavailableError` within seconds when the file is not cached and
    the download server does not answer (or the download fails).
    """
    tag = tag_config(model, pretrained)
    if tag is None:
        tags = known_tags(model)
        hint = f" (known tags: {', '.join(tags)})" if tags else ""
        raise CLIPBackboneError(
            f"CLIP weights {pretrained!r} for {model}: neither an open_clip pretrained tag of this model{hint} "
            f"nor an existing file; use a tag, a local weights file, or 'none' for random weights"
        )
    quick_gelu = bool(tag.get("quick_gelu", False))
    cached = cached_tag_file(tag)
    if cached:
        return TagWeights(cached, quick_gelu)
    if not can_reach_download_server():
        why = ("downloads are switched off (HF_HUB_OFFLINE)" if hub_offline()
               else f"the download server ({download_server()[0]}) cannot be reached")
        raise _unavailable(model, pretrained, tag, why, folder)
    from open_clip.pretrained import download_pretrained

    try:
        return TagWeights(download_pretrained(tag), quick_gelu)
    except Exception as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise _unavailable(model, pretrained, tag, f"the download failed ({type(e).__name__}: {first[:200]})",
                           folder) from None


class ClipChoice(NamedTuple):
    """A CLIP backbone setting resolved to what :func:`.clip_backbone.load_backbone` takes."""

    model: str  # open_clip model name, or the full path of a model-config JSON
    pretrained: str  # full path of a local weights file, "none", or a tag open_clip does not know
    quick_gelu: bool | None  # the tag's activation; None: decided by the backbone builder


def resolve_clip(model: str, pretrained: str, files: ModelFiles | None = None) -> ClipChoice:
    """Resolve a CLIP setting: relative config / weights names are looked up in ``files``' folders,
    a pretrained tag becomes its local weights file (from the caches, else downloaded only when
    the download server answers within seconds, see :func:`tag_weights`).

    Raises :class:`CLIPBackboneError` for a missing config or weights file (naming the folders
    looked in) and a tag given for a config-file model, :class:`CLIPWeightsUnavailableError`
    when a tag's weights are neither here nor downloadable. An unknown tag is passed on: the
    backbone builder's error lists the known tags.
    """
    files = files or ModelFiles()
    model, pretrained = model.strip(), pretrained.strip()
    looked_in = f"looked in {files.folder_list()} and as an absolute path"
    if model.lower().endswith(".json"):
        found = files.find(model) or (Path(model) if Path(model).is_file() else None)
        if found is None:
            raise CLIPBackboneError(f"CLIP model config {model!r} not found ({looked_in})")
        model = str(found)
    if pretrained.lower() == RANDOM_WEIGHTS:
        return ClipChoice(model, RANDOM_WEIGHTS, None)
    local = files.find(pretrained) or (Path(pretrained) if Path(pretrained).is_file() else None)
    if local is not None:
        return ClipChoice(model, str(local), None)
    if names_weights_file(pretrained):
        raise CLIPBackboneError(f"CLIP weights file {pretrained!r} not found ({looked_in})")
    if is_config_path(model):
        raise CLIPBackboneError(f"CLIP model {model} is a config file: give its weights as a local file, "
                                f"or '{RANDOM_WEIGHTS}' for random weights")
    if tag_config(model, pretrained) is None:
        return ClipChoice(model, pretrained, None)
    found = tag_weights(model, pretrained, folder=files.downloads())
    return ClipChoice(model, found.file, found.quick_gelu)
