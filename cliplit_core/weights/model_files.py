"""Where a model's files live: the folders a file name is looked up in, and where downloads go.

A host application passes one :class:`ModelFiles` to :func:`cliplit_core.model.load_model`;
ComfyUI's node pack builds it from its models/cliplit/ folders (``folder_paths``, which
honours extra_model_paths.yaml), the command line can use a plain list of folders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import CLIPLITError

Lookup = Callable[[str], "Path | None"]


class ModelFileNotFoundError(CLIPLITError):
    """A file name given for a model does not resolve to a file."""


@dataclass(frozen=True)
class ModelFiles:
    """File lookup for model files, prompt pairs, CLIP configs and CLIP weights.

    ``folders``: searched in order for relative names (the first one is where downloads go
    unless ``download_folder`` says otherwise). ``lookup``: a host's own lookup of a relative
    name (e.g. ComfyUI's ``folder_paths.get_full_path``), used instead of ``folders``; they are
    still listed in messages. An absolute path (``~`` expanded) is always taken as it is.
    """

    folders: tuple[Path, ...] = ()
    lookup: Lookup | None = None
    download_folder: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "folders", tuple(Path(f) for f in self.folders))

    def find(self, name: str) -> Path | None:
        """Full path of ``name`` (an absolute path, or a name relative to the folders), None if no file."""
        if not name:
            return None
        p = Path(os.path.expanduser(name))
        if p.is_absolute():
            return p if p.is_file() else None
        if self.lookup is not None:
            found = self.lookup(name)
            return Path(found) if found else None
        for folder in self.folders:
            if (folder / name).is_file():
                return folder / name
        return None

    def require(self, name: str, what: str) -> Path:
        """:meth:`find`, raising :class:`ModelFileNotFoundError` that lists the folders looked in."""
        path = self.find(name)
        if path is None:
            raise ModelFileNotFoundError(f"{what} {name!r} not found in the CLIP-LIT model folders: "
                                         f"{self.folder_list()}")
        return path

    def folder_list(self) -> str:
        """The folders, comma-separated, for messages."""
        return ", ".join(map(str, self.folders)) or "(no model folder configured)"

    def downloads(self) -> Path | None:
        """Where a file downloaded by hand (or automatically) belongs: ``download_folder``, else the first folder."""
        if self.download_folder is not None:
            return Path(self.download_folder)
        return self.folders[0] if self.folders else None
