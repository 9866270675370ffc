"""Atomic file writes: each file is written under a hidden temporary name beside it
(``.NAME.tmp-PID.EXT``) and renamed into place only when complete, so a crash, an
interruption or a full disk never leaves a partial result under the real name."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable

_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)(\.[A-Za-z0-9]+)?$")


def temp_path_for(path: str | os.PathLike) -> Path:
    """The temporary name ``path`` is written under (same folder, same suffix, hidden)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed runs (SIGKILL, power loss) left in ``folder``: those
    whose process no longer exists. Only on POSIX systems, where that can be asked safely."""
    if os.name != "posix":
        return []
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    for p in entries:
        m = _TEMP_NAME.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _process_exists(int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def write_together(writes: Iterable[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write a group of files all or none: each ``write(tmp)`` fills a temporary file, which is
    flushed to disk, and only when every one succeeded are they renamed into place. On any error
    (or interrupt) the temporary files are removed and the destinations are left as they were."""
    writes = [(Path(dst), fn) for dst, fn in writes]
    temps: list[Path] = []
    try:
        for dst, fn in writes:
            tmp = temp_path_for(dst)
            temps.append(tmp)
            fn(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        for (dst, _), tmp in zip(writes, temps):
            os.replace(tmp, dst)
    finally:
        for tmp in temps:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
