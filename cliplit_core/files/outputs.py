"""Where a run's results go, decided before any work is done.

Every file a run will write (the result and its side files, e.g. ``<stem>_light.png``) is
planned up front and reserved against every input, every other planned file and every
existing file the program did not write itself: a user's file is never overwritten.

The files the program wrote into a folder are listed in that folder's ``.cliplit-outputs.jsonl``
with their size and modification time. A listed file that still matches is ours: a new run
may replace it, and a run reading the same folder does not take it as an input. A file that
was changed since (or was never listed) is the user's. A file is listed before it is renamed
into place, so a result the manifest cannot record is never written; a manifest that cannot be
read and written stops a run before any work.
"""
from __future__ import annotations

import itertools
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .atomic import name_max, remove_stale_temps, trim_name_bytes, write_together
from ..errors import CLIPLITError
from ..validation import OptionError

MANIFEST_NAME = ".cliplit-outputs.jsonl"
_INT64 = range(-2 ** 63, 2 ** 63)


class OutputError(CLIPLITError):
    """The output folder cannot be created or written."""


class ManifestError(OutputError):
    """The manifest cannot record the files a run writes (the files were not written)."""


def _entry(line: str) -> tuple[str, dict] | None:
    """A manifest line's (name, {size, mtime_ns}); None for a damaged line (not JSON, cut short,
    absurd or missing values, a name that is no plain file name)."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rec, dict):
        return None
    name, size, mtime_ns = rec.get("name"), rec.get("size"), rec.get("mtime_ns")
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or os.sep in name or "\0" in name
            or not all(isinstance(v, int) and not isinstance(v, bool) and v in _INT64 for v in (size, mtime_ns))
            or size < 0):
        return None
    return name, {"size": size, "mtime_ns": mtime_ns}


class OurFiles:
    """The files this program wrote into one folder, from the folder's manifest: one JSON line per
    file written (later lines win). Damaged lines (a line cut short by a crash, absurd values) are
    skipped and counted in ``damaged``; :attr:`warning` says so once."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest = self.folder / MANIFEST_NAME
        self.entries: dict[str, dict] = {}
        self.damaged = 0
        lines = 0
        try:
            text = self.manifest.read_text(errors="replace")
        except (OSError, ValueError):
            return  # none, or unreadable: nothing here counts as ours (prepare_output_dir refuses the latter)
        for line in text.splitlines():
            if not line.strip():
                continue
            lines += 1
            entry = _entry(line)
            if entry is None:
                self.damaged += 1
            else:
                self.entries[entry[0]] = entry[1]
        if self.damaged or lines > 2 * len(self.entries) + 100:
            self._compact()

    @property
    def warning(self) -> str | None:
        """One line about damaged manifest lines, or None."""
        if not self.damaged:
            return None
        n = self.damaged
        return (f"{self.manifest}: skipped {n} damaged line{'s' if n > 1 else ''}; the files "
                f"{'they' if n > 1 else 'it'} listed count as yours (kept, never replaced)")

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

    def record(self, files: Sequence[tuple[Path, os.stat_result]]) -> None:
        """Note files as ours (one appended line each): ``(path, stat)`` of each file, taken from its
        complete temporary file before it is renamed into place (see ``atomic.write_together``'s
        ``record``). Raises ManifestError naming the manifest when it cannot be written."""
        lines = "".join(json.dumps({"name": Path(p).name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}) + "\n"
                        for p, st in files).encode()
        try:
            with open(self.manifest, "a+b") as f:
                end = f.seek(0, os.SEEK_END)
                if end:
                    f.seek(end - 1)
                    if f.read(1) != b"\n":  # a line cut short by a crash: keep ours off it
                        lines = b"\n" + lines
                f.write(lines)
        except OSError as e:
            names = ", ".join(Path(p).name for p, _ in files)
            raise ManifestError(f"cannot record {names} in {self.manifest} ({e.strerror or e}); "
                                f"not written") from None
        for p, st in files:
            self.entries[Path(p).name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_output_option(path: str | os.PathLike, option: str = "-o") -> Path:
    """An output folder option that names an existing file is a bad option (checked first, cheaply)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OptionError(f"{option} {p}".strip() + ": is an existing file, not a folder")
    return p


def _check_manifest(folder: Path) -> None:
    """Refuse (OutputError, naming it) a manifest the run could not read or append to: the run would
    write files it cannot tell from the user's later."""
    manifest = folder / MANIFEST_NAME
    try:
        st = os.lstat(manifest)
    except FileNotFoundError:
        return
    except OSError as e:
        raise OutputError(f"{manifest}: cannot be read ({e.strerror or e}); nothing was written") from None
    if not stat.S_ISREG(st.st_mode):
        what = ("a folder" if stat.S_ISDIR(st.st_mode) else "a symbolic link" if stat.S_ISLNK(st.st_mode)
                else "not a regular file")
        raise OutputError(f"{manifest}: is {what}, not this program's record of the files it wrote; "
                          f"move it away (nothing was written)")
    try:
        open(manifest, "rb").close()
        open(manifest, "ab").close()
    except OSError as e:
        raise OutputError(f"{manifest}: cannot be read and written ({e.strerror or e}); this program's record of "
                          f"the files it wrote is kept there, so nothing was written") from None


def prepare_output_dir(path: str | os.PathLike, option: str = "-o") -> Path:
    """Create the output folder and make sure files can be created in it and its manifest read and
    written, before any work; remove the unfinished files of killed earlier runs from it."""
    p = check_output_option(path, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{option} {p}".strip() + f": cannot create the folder ({e.strerror or e})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".cliplit-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{option} {p}".strip() + f": cannot write into the folder ({e.strerror or e})") from None
    _check_manifest(p)
    remove_stale_temps(p)
    return p


def prepare_output_file(path: str | os.PathLike, *, force: bool = False) -> OurFiles:
    """One output file the user named (``convert``'s destination), checked before any work: a folder
    is refused, so is a name too long for its folder, and so is an existing file this program did not
    write unless ``force``. Its folder is prepared like an output folder. Returns the folder's
    :class:`OurFiles`, to record the file in once written."""
    p = Path(path)
    existing = next((a for a in p.absolute().parents if a.is_dir()), p.parent)
    limit = name_max(existing)
    if len(os.fsencode(p.name)) > limit:
        raise OutputError(f"{p}: the name is {len(os.fsencode(p.name))} bytes long, more than the {limit} "
                          f"a file name may have there")
    if p.is_dir():
        raise OptionError(f"{p}: is an existing folder, not a file")
    folder = prepare_output_dir(p.parent, "")
    ours = OurFiles(folder)
    if (p.exists() or p.is_symlink()) and not ours.owns(p) and not force:
        raise OutputError(f"{p}: exists and was not written by this program; not replaced "
                          f"(--force replaces it)")
    return ours


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
    Every name fits the folder's name limit (bytes, see ``atomic.name_max``): a stem too long for it
    is shortened, at a character boundary, before the tag and the number.

    Returns (plan, notes): one note per input whose files were renamed, naming the files really written.
    """
    ours = ours if ours is not None else OurFiles(outdir)
    input_keys = {_key(p): p for p in inputs}
    planned: dict[str, Path] = {}  # key -> the input a planned file belongs to
    plan: list[PlannedOutput] = []
    notes: list[str] = []
    limit = name_max(outdir) if outdir.is_dir() else name_max(outdir.parent) if outdir.parent.is_dir() else 255
    longest = max(len(os.fsencode(s)) for s in suffixes)

    def base(stem: str, tail: str = "") -> str:
        """``stem + tail``, the stem shortened so that every suffix fits the name limit."""
        return trim_name_bytes(stem, limit - longest - len(os.fsencode(tail))) + tail

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
        plain = [outdir / f"{base(stem)}{s}" for s in suffixes]
        reasons = [(f, r) for f in plain if (r := obstacle(f))]
        files = plain
        if reasons:
            hits_input = in_place_tag and any(_key(f) in input_keys for f in plain)
            first = in_place_tag if hits_input else ""
            candidates = itertools.chain([first] if hits_input else [], (f"{first}_{n}" for n in itertools.count(2)))
            for tail in candidates:
                files = [outdir / f"{base(stem, tail)}{s}" for s in suffixes]
                if not any(map(obstacle, files)):
                    break
            clash, reason = reasons[0]
            notes.append(f"{src}: {clash.name} would overwrite {reason}; "
                         f"writing {', '.join(f.name for f in files)} instead")
        elif base(stem) != stem:
            notes.append(f"{src}: {stem}{max(suffixes, key=lambda x: len(os.fsencode(x)))} would be longer than the {limit} bytes a file name "
                         f"may have here; writing {', '.join(f.name for f in files)} instead")
        for f in files:
            planned[_key(f)] = src
        plan.append(PlannedOutput(src, files))
    return plan, notes
