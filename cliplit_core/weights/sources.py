"""Named weights sources: ``official`` (the authors' released enhancement model) and
``authors-init`` (the network their training starts from).

Each is downloaded once from the authors' repository, checked against its sha256 and
cached (``$CLIPLIT_CACHE`` or ``~/.cache/cliplit``). Offline, the error says
where to put the file by hand. The weights are the authors' (S-Lab license,
non-commercial use); we download them for the user, we never redistribute them.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import WeightsDownloadError
from ..files.atomic import Staging
from ..wording import Advice

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightsSource:
    name: str  # what the user types: --weights official, --init-enhancer authors-init
    url: str
    sha256: str
    filename: str
    what: str  # for messages


_RELEASE = "https://github.com/ZhexinLiang/CLIP-LIT/raw/main/pretrained_models/"
SOURCES = {
    "official": WeightsSource(
        "official", _RELEASE + "enhancement_model.pth",
        "67aa1bdbac345842670e494b02953f299e5088bcb3f98a18bd60b06fef48b5c9", "enhancement_model.pth",
        "the official CLIP-LIT weights"),
    "authors-init": WeightsSource(
        "authors-init", _RELEASE + "init_pretrained_models/init_enhancement_model.pth",
        "14c32e3163e7e10734b48b9641ba44222daaf2feb0f3ba76cbb15b4080be25ab", "init_enhancement_model.pth",
        "the authors' training starting point"),
}
OFFICIAL_URL = SOURCES["official"].url
OFFICIAL_SHA256 = SOURCES["official"].sha256
OFFICIAL_FILENAME = SOURCES["official"].filename
LICENSE_NOTE = ("CLIP-LIT weights by Liang et al. (ICCV 2023), S-Lab License 1.0: "
                "non-commercial use only; see https://github.com/ZhexinLiang/CLIP-LIT")


def cache_dir() -> Path:
    return Path(os.environ.get("CLIPLIT_CACHE") or Path.home() / ".cache" / "cliplit")


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, progress: Callable[[int, int], None] | None) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as f:
        total = int(resp.headers.get("Content-Length") or 0)
        done = 0
        while block := resp.read(1 << 16):
            f.write(block)
            done += len(block)
            if progress is not None:
                progress(done, total)


def named_weights(name: str, dest_dir: str | os.PathLike | None = None, *,
                  progress: Callable[[int, int], None] | None = None, downloader: Callable = _download) -> Path:
    """Path of the verified weights ``name`` (a key of :data:`SOURCES`), downloading them into
    ``dest_dir`` (default: the cache) if needed."""
    src = SOURCES[name]
    folder = Path(dest_dir) if dest_dir is not None else cache_dir()
    target = folder / src.filename
    if target.is_file():
        if sha256_of(target) == src.sha256:
            return target
        raise WeightsDownloadError(
            f"{target}: exists but its sha256 is not the expected one ({src.sha256})",
            advice=Advice("named_file_mismatch", {"source": name, "target": target, "folder": folder}))
    folder.mkdir(parents=True, exist_ok=True)
    with Staging() as staged:  # the download's temporary file, removed unless it is renamed into place
        try:
            downloader(src.url, tmp := staged.add(target), progress)
        except (OSError, ValueError) as e:  # URLError, timeouts and HTTP errors are OSErrors
            raise WeightsDownloadError(
                f"could not download {src.what} ({e}). Download {src.url} by hand and put it at {target}",
                advice=Advice("named_file_by_hand", {"source": name, "target": target, "folder": folder})) from None
        digest = sha256_of(tmp)
        if digest != src.sha256:
            raise WeightsDownloadError(
                f"downloaded file from {src.url} has sha256 {digest}, expected {src.sha256}; "
                f"not using it (nothing was kept)"
            )
        staged.commit()
    return target


def official_weights(dest_dir: str | os.PathLike | None = None, **kwargs) -> Path:
    """Path of the verified official weights, downloading them into ``dest_dir`` if needed."""
    return named_weights("official", dest_dir, **kwargs)


def resolve_weights(spec: str, dest_dir: str | os.PathLike | None = None, **kwargs) -> Path:
    """A name of :data:`SOURCES` (``official``, ``authors-init``) -> the verified cached file;
    anything else is taken as a file path."""
    if spec in SOURCES:
        return named_weights(spec, dest_dir, **kwargs)
    return Path(spec)
