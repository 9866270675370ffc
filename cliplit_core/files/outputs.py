"""Where a run's results go, decided before any work is done.

Every file a run will write (the result and its side files, e.g. ``<stem>_light.png``) is
planned up front and reserved against every input, every other planned file and every
existing file the program did not write itself: a user's file is never overwritten.

The files the program wrote into a folder are listed in that folder's ``.cliplit-outputs.jsonl``
with their size and modification time. A listed file that still matches is ours: a new run
may replace it, and a run reading the same folder does not take it as an input. A file that
was changed since (or was never listed) is the user's.
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .atomic import remove_stale_temps, write_together
from ..errors import CLIPLITError
from ..validation import OptionError

MANIFEST_NAME = ".cliplit-outputs.jsonl"


class OutputError(CLIPLITError):
    """The output folder cannot be created or written."""


class OurFiles:
    """The files this program wrote into one folder, from the folder's manifest: one JSON line per
    file written (later lines win; a line cut short by a crash is ignored)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest = self.folder / MANIFEST_NAME
        self.entries: dict[str, dict] = {}
        lines = 0
        try:
            text = self.manifest.read_text(errors="replace")
        except OSError:
            return  # no manifest: nothing here counts as ours
        for line in text.splitlines():
            lines += 1
            try:
                rec = json.loads(line)
                self.entries[str(rec["name"])] = {"size": int(rec["size"]), "mtime_ns": int(rec["mtime_ns"])}
            except (ValueError, TypeError, KeyError):
                continue
        if lines > 2 * len(self.entries) + 100:
            self._compact()

    def _compact(self) -> None:
        live = {k: v for k, v in self.entries.items() if (self.folder / k).exists()}
        text = "".join(json.dumps({"name": k, **v}) + "\n" for k, v in sorted(live.items()))
        try:
            write_together([(self.manifest, lambda tmp: tmp.write_text(text))])
            self.entries = live
        except OSError:
            pass  # a longer manifest does no harm

    def _in_folder(self, path: Path) -> bool:
        try:
            return path.parent.resolve() == self.folder.resolve()
        except OSError:
            return False

    def owns(self, path: str | os.PathLike) -> bool:
        """True when ``path`` is a file we wrote into this folder and nobody changed since."""
        path = Path(path)
        entry = self.entries.get(path.name)
        if entry is None or not self._in_folder(path):
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        return entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns

    def record(self, paths: Sequence[Path]) -> None:
        """Note freshly written files as ours (one appended line each)."""
        lines = []
        for p in paths:
            st = Path(p).stat()
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            self.entries[Path(p).name] = entry
            lines.append(json.dumps({"name": Path(p).name, **entry}) + "\n")
        with open(self.manifest, "a") as f:
            f.write("".join(lines))


def check_output_option(path: str | os.PathLike, option: str = "-o") -> Path:
    """An output folder option that names an existing file is a bad option (checked first, cheaply)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OptionError(f"{option} {p}: is an existing file, not a folder")
    return p


def prepare_output_dir(path: str | os.PathLike, option: str = "-o") -> Path:
    """Create the output folder and make sure files can be created in it, before any work; remove
    the unfinished files of killed earlier runs from it."""
    p = check_output_option(path, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{option} {p}: cannot create the folder ({e.strerror or e})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".cliplit-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{option} {p}: cannot write into the folder ({e.strerror or e})") from None
    remove_stale_temps(p)
    return p


@dataclass
class PlannedOutput:
    src: Path
    files: list[Path]  # the result first, then its side files

    @property
    def main(self) -> Path:
        return self.files[0]


def _key(p: Path) -> str:
    return os.path.normcase(str(p.resolve()))


def plan_outputs(inputs: Sequence[Path], outdir: Path, suffixes: Sequence[str], *, ours: OurFiles | None = None,
                 in_place_tag: str | None = None) -> tuple[list[PlannedOutput], list[str]]:
    """For each input, the files ``outdir/<base><suffix>`` for every suffix (e.g. ``[".png", "_light.png"]``),
    with ``base`` the input's stem when all of them are free, else ``<stem><in_place_tag>`` (when the
    plain name would overwrite an input), then ``<base>_2``, ``<base>_3`` ... A file is free when it is
    no input, not planned for another input, and either absent or ours (see :class:`OurFiles`).

    Returns (plan, notes): one note per input whose files were renamed, naming the files really written.
    """
    ours = ours if ours is not None else OurFiles(outdir)
    input_keys = {_key(p): p for p in inputs}
    planned: dict[str, Path] = {}  # key -> the input a planned file belongs to
    plan: list[PlannedOutput] = []
    notes: list[str] = []

    def obstacle(f: Path) -> str | None:
        k = _key(f)
        if k in input_keys:
            return f"the input {input_keys[k]}"
        if k in planned:
            return f"the result of {planned[k]}"
        if (f.exists() or f.is_symlink()) and not ours.owns(f):
            return f"the existing file {f} (not written by this program)"
        return None

    for src in inputs:
        stem = src.stem
        plain = [outdir / f"{stem}{s}" for s in suffixes]
        reasons = [(f, r) for f in plain if (r := obstacle(f))]
        files = plain
        if reasons:
            hits_input = in_place_tag and any(_key(f) in input_keys for f in plain)
            first = f"{stem}{in_place_tag}" if hits_input else stem
            candidates = itertools.chain([first] if hits_input else [], (f"{first}_{n}" for n in itertools.count(2)))
            for base in candidates:
                files = [outdir / f"{base}{s}" for s in suffixes]
                if not any(map(obstacle, files)):
                    break
            clash, reason = reasons[0]
            notes.append(f"{src}: {clash.name} would overwrite {reason}; "
                         f"writing {', '.join(f.name for f in files)} instead")
        for f in files:
            planned[_key(f)] = src
        plan.append(PlannedOutput(src, files))
    return plan, notes
