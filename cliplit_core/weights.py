"""The weights source ``official``: the authors' released enhancement model.

Downloaded once from the authors' repository, checked against its sha256 and
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

from .errors import WeightsDownloadError

OFFICIAL_URL = "https://github.com/ZhexinLiang/CLIP-LIT/raw/main/pretrained_models/enhancement_model.pth"
OFFICIAL_SHA256 = "67aa1bdbac345842670e494b02953f299e5088bcb3f98a18bd60b06fef48b5c9"
OFFICIAL_FILENAME = "enhancement_model.pth"
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


def official_weights(dest_dir: str | os.PathLike | None = None, *,
                     progress: Callable[[int, int], None] | None = None,
                     downloader: Callable = _download) -> Path:
    """Path of the verified official weights, downloading them into ``dest_dir`` if needed."""
    folder = Path(dest_dir) if dest_dir is not None else cache_dir()
    target = folder / OFFICIAL_FILENAME
    if target.is_file():
        if sha256_of(target) == OFFICIAL_SHA256:
            return target
        raise WeightsDownloadError(
            f"{target}: exists but its sha256 is not the official one ({OFFICIAL_SHA256}); "
            f"delete it to download again, or pass the file explicitly as your own weights"
        )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{OFFICIAL_FILENAME}.part-{os.getpid()}"
    try:
        try:
            downloader(OFFICIAL_URL, tmp, progress)
        except (OSError, ValueError) as e:  # URLError, timeouts and HTTP errors are OSErrors
            raise WeightsDownloadError(
                f"could not download the official CLIP-LIT weights ({e}). Download\n  {OFFICIAL_URL}\n"
                f"by hand and put it at\n  {target}\n(or pass the file with --weights FILE)"
            ) from None
        digest = sha256_of(tmp)
        if digest != OFFICIAL_SHA256:
            raise WeightsDownloadError(
                f"downloaded file from {OFFICIAL_URL} has sha256 {digest}, expected {OFFICIAL_SHA256}; "
                f"not using it (nothing was kept)"
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def resolve_weights(spec: str, dest_dir: str | os.PathLike | None = None, **kwargs) -> Path:
    """``official`` -> the verified cached file; anything else is taken as a file path."""
    if spec == "official":
        return official_weights(dest_dir, **kwargs)
    return Path(spec)
