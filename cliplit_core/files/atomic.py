"""Atomic file writes: each file is written under a hidden temporary name beside it and renamed
into place only when complete, so a crash, an interruption or a full disk never leaves a partial
result under the real name.

A temporary name is unmistakably ours and never replaces anything:

* ``.NAME~cliplit-TOKEN.tmp.EXT``: TOKEN is 16 random hex digits, EXT the final name's suffix
  (writers such as video muxers pick the format from it). The file is created exclusively
  (``O_EXCL``): an existing file of that name is never opened, let alone replaced.
* It is never longer than the final name (or than ``SHORT_NAME_BYTES`` when the final name is
  shorter), nor than the folder's name limit, counted in bytes: NAME is shortened at a character
  boundary to make room for the token. So it fits wherever the final name fits.

A record of what we create: before its first temporary file in a folder, a write opens a journal
there, ``.cliplit-journal-TOKEN``, holds an exclusive lock on it (``flock``) for as long as it
runs, and appends each temporary file's name and inode to it before writing it. A finished,
failed or interrupted write removes its temporary files and its journal. Only SIGKILL or a power
loss leaves them; :func:`remove_stale_temps` then removes the files a journal lists, and only
those: the journal must be ours (its first line), unlocked (its process has ended), its
process gone, and each listed file still the very file we created (same name, same inode).
Nothing else is ever deleted, whatever its name.

Files get the mode a new file gets (``0o666`` less the umask, or the folder's default ACL),
whichever program filled the temporary file: see :meth:`Staging.commit`.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import stat
from pathlib import Path
from typing import Callable, Iterable, Sequence

try:
    import fcntl
except ImportError:  # Windows: no locks, so no stale-file cleanup either
    fcntl = None

TEMP_TAG = "~cliplit-"
SHORT_NAME_BYTES = 64  # a temporary name may be this long even when the final name is shorter
DEFAULT_NAME_MAX = 255
JOURNAL_PREFIX = ".cliplit-journal-"
_JOURNAL_NAME = re.compile(r"^\.cliplit-journal-[0-9a-f]{16}$")
_JOURNAL_KIND = "cliplit temporary files"
_KEPT_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")

Record = Callable[[Sequence[tuple[Path, os.stat_result]]], None]


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (bytes) ``folder`` takes; 255 where the system cannot say."""
    try:
        n = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX
    return n if isinstance(n, int) and n > 0 else DEFAULT_NAME_MAX


def trim_name_bytes(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` bytes of its file-system encoding, never inside a UTF-8
    character."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    cut = raw[:max(limit, 0)]
    i = len(cut)
    while i > 0 and cut[i - 1] & 0xC0 == 0x80:  # continuation bytes of the last character
        i -= 1
    if i > 0 and cut[i - 1] >= 0xC0:  # its lead byte: keep the character only if it is whole
        lead = cut[i - 1]
        size = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        cut = cut if i - 1 + size <= len(cut) else cut[:i - 1]
    return os.fsdecode(cut)


def temp_name(final_name: str, token: str, limit: int = DEFAULT_NAME_MAX) -> str:
    """The temporary name of a file to be named ``final_name`` (see the module docstring)."""
    suffix = os.path.splitext(final_name)[1]
    tail = f"{TEMP_TAG}{token}.tmp{suffix if _KEPT_SUFFIX.match(suffix) else ''}"
    room = min(max(len(os.fsencode(final_name)), SHORT_NAME_BYTES), limit) - 1 - len(tail)
    return "." + trim_name_bytes(final_name, room) + tail


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # e.g. another user's process: it exists
        return True
    return True


def _lock(fd: int, blocking: bool) -> bool:
    """An exclusive flock on ``fd``; False when another process holds it or locks are unsupported."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


class _Journal:
    """The record of one write's temporary files in one folder (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = folder
        while True:
            self.path = folder / f"{JOURNAL_PREFIX}{secrets.token_hex(8)}"
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
                break
            except FileExistsError:
                continue
        try:
            _lock(self.fd, blocking=True)
            self._append({"kind": _JOURNAL_KIND, "pid": os.getpid(), "host": socket.gethostname()})
        except BaseException:  # (an interrupt too) no journal without its header is left behind
            self.close()
            raise

    def _append(self, entry: dict) -> None:
        os.write(self.fd, (json.dumps(entry) + "\n").encode())

    def note(self, name: str, st: os.stat_result) -> None:
        self._append({"name": name, "dev": st.st_dev, "ino": st.st_ino})

    def close(self) -> None:
        """Remove the journal (its files are gone or renamed into place)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)


class Staging:
    """Temporary files for a group of destinations, renamed into place together by
    :meth:`commit` or removed by :meth:`discard` (which a ``with`` block always calls)."""

    def __init__(self):
        self._journals: dict[Path, _Journal] = {}
        self._temps: list[tuple[Path, Path, int]] = []  # (temporary file, destination, its mode)

    def _journal(self, folder: Path) -> _Journal:
        key = Path(os.path.abspath(folder))
        if key not in self._journals:
            self._journals[key] = _Journal(key)
        return self._journals[key]

    def add(self, dst: str | os.PathLike, *, link_to: str | os.PathLike | None = None) -> Path:
        """Create (empty, exclusively) and return the temporary file of ``dst``, recorded in the
        folder's journal; with ``link_to``, a new hard link to that file instead (so that
        :meth:`commit` makes ``dst`` a second name of it). Its folder must exist."""
        dst = Path(dst)
        folder = dst.parent
        journal = self._journal(folder)
        limit = name_max(folder)
        while True:
            tmp = folder / temp_name(dst.name, secrets.token_hex(8), limit)
            try:
                if link_to is None:
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
                else:
                    os.link(link_to, tmp)
                break
            except FileExistsError:
                continue
        try:
            st = os.lstat(tmp)
            journal.note(tmp.name, st)
        except BaseException:
            os.unlink(tmp)
            raise
        self._temps.append((tmp, dst, stat.S_IMODE(st.st_mode)))
        return tmp

    def commit(self, record: Record | None = None) -> None:
        """Flush every temporary file to disk and give it the mode it was created with (a writer
        that replaced it, e.g. with its own private temporary file, does not decide the mode);
        then ``record([(dst, stat)])`` (e.g. in the output manifest: before any rename, so that a
        result that cannot be recorded is never written), then rename them all into place."""
        done = []
        for tmp, dst, mode in self._temps:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
                st = os.fstat(f.fileno())
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(tmp, mode)
                st = os.stat(tmp)
            done.append((dst, st))
        if record is not None:
            record(done)
        for tmp, dst, _ in self._temps:
            os.replace(tmp, dst)
        self._temps = []

    def discard(self) -> None:
        """Remove the temporary files not renamed into place, then the journals."""
        try:
            for tmp, _, _ in self._temps:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
            self._temps = []
        finally:
            for journal in self._journals.values():
                journal.close()
            self._journals = {}

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_together(writes: Iterable[tuple[Path, Callable[[Path], None]]], record: Record | None = None) -> None:
    """Write a group of files all or none: each ``write(tmp)`` fills a temporary file, which is
    flushed to disk, and only when every one succeeded (and ``record``, if given, accepted them:
    see :meth:`Staging.commit`) are they renamed into place. On any error (or interrupt) the
    temporary files are removed and the destinations are left as they were."""
    with Staging() as staged:
        for dst, fn in writes:
            fn(staged.add(dst))
        staged.commit(record)


def _read_journal(fd: int) -> list[dict] | None:
    """The journal's entries, or None when it is not one of ours."""
    with os.fdopen(os.dup(fd), "rb") as f:
        text = f.read(1 << 20)
    lines = text.decode("utf-8", "replace").splitlines()
    try:
        head = json.loads(lines[0]) if lines else None
    except ValueError:
        return None
    if not isinstance(head, dict) or head.get("kind") != _JOURNAL_KIND:
        return None
    pid, host = head.get("pid"), head.get("host")
    if not isinstance(pid, int) or host != socket.gethostname() or _process_exists(pid):
        return None  # its process may still run (or runs on another machine): not stale
    entries = []
    for line in lines[1:]:
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("dev"), int)
                and isinstance(e.get("ino"), int)):
            entries.append(e)
    return entries


def _is_our_temp(name: str) -> bool:
    return name.startswith(".") and TEMP_TAG in name and "/" not in name and os.sep not in name


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove what killed runs (SIGKILL, power loss) left in ``folder``: the temporary files their
    journals list, then the journals (see the module docstring for what proves a file ours).
    Returns the files removed. Only on POSIX systems, where files can be locked."""
    if os.name != "posix" or fcntl is None:
        return []
    folder = Path(folder)
    removed = []
    try:
        journals = [p for p in folder.iterdir() if _JOURNAL_NAME.match(p.name)]
    except OSError:
        return []
    for journal in journals:
        try:
            fd = os.open(journal, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or not _lock(fd, blocking=False):
                continue  # a live run holds it
            entries = _read_journal(fd)
            if entries is None:
                continue
            kept = 0  # listed files that are still ours but could not be removed: keep their record
            for e in entries:
                p = folder / e["name"]
                try:
                    st = os.lstat(p)
                except OSError:
                    continue  # renamed into place or removed
                if (_is_our_temp(e["name"]) and stat.S_ISREG(st.st_mode)
                        and (st.st_dev, st.st_ino) == (e["dev"], e["ino"])):
                    try:
                        p.unlink()
                        removed.append(p)
                    except OSError:
                        kept += 1
            if not kept:
                try:
                    journal.unlink()
                except OSError:
                    pass
        finally:
            os.close(fd)
    return removed
