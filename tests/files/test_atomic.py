"""Atomic writes: temporary names that are unmistakably ours and fit wherever the final name fits,
a record of what we create, a stale-file cleanup that removes only that, and one rule for modes."""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cliplit_core.files import atomic
from cliplit_core.files.atomic import (JOURNAL_PREFIX, SHORT_NAME_BYTES, TEMP_TAG, Staging, remove_stale_temps,
                                       temp_name, trim_name_bytes, write_together)
from cliplit_core.files.outputs import prepare_output_dir

from tests.support.data import REPO

# a run killed (SIGKILL) while it writes FOLDER/NAME: it leaves a temporary file and its journal
KILLED_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from cliplit_core.files.atomic import write_together

def write(tmp):
    tmp.write_bytes(b"half a file")
    os.kill(os.getpid(), signal.SIGKILL)

write_together([(Path(sys.argv[1]) / sys.argv[2], write)])
"""


def _killed_while_writing(folder: Path, name: str = "a.png") -> list[str]:
    """Run a write of ``folder/name`` that is SIGKILLed half way; the names it left."""
    before = set(os.listdir(folder))
    r = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(folder), name], cwd=REPO, timeout=120)
    assert r.returncode == -signal.SIGKILL
    return sorted(set(os.listdir(folder)) - before)


# files other programs (or the user) made, some named like temporary files, ours or not
FOREIGN = {
    ".draft.tmp-99999.txt": b"the user's draft",                   # the old pattern, a dead pid
    ".a.png.tmp-99999.png": b"another program's temporary file",
    ".b.png.tmp-1": b"pid 1 is alive, but this is not ours either",
    ".c.png" + TEMP_TAG + "0123456789abcdef.tmp.png": b"named like ours, made by nobody we know",
    JOURNAL_PREFIX + "0123456789abcdef": b'{"kind": "something else"}\n',
    "d.png": b"a plain file",
}


def _foreign_files(folder: Path) -> dict[str, bytes]:
    for name, content in FOREIGN.items():
        (folder / name).write_bytes(content)
    return dict(FOREIGN)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --------------------------------------------------------------------------- stale temporary files
def test_a_killed_runs_leftovers_are_removed_and_nothing_else(tmp_path):
    foreign = _foreign_files(tmp_path)
    left = _killed_while_writing(tmp_path)
    assert len(left) == 2 and left[0].startswith(".a.png" + TEMP_TAG) and left[1].startswith(JOURNAL_PREFIX)
    removed = remove_stale_temps(tmp_path)
    assert [p.name for p in removed] == [left[0]]
    assert _contents(tmp_path) == foreign  # every file we did not make is there, unchanged


def test_a_journal_of_ours_never_removes_a_file_that_is_not_the_one_it_recorded(tmp_path):
    """The journal names a temporary file; the file at that name now is another one (same name,
    other inode): kept. Names that leave the folder are never followed."""
    left = _killed_while_writing(tmp_path)
    temp = tmp_path / left[0]
    os.replace(temp, tmp_path.parent / "kept-aside")  # (so that the new file cannot reuse its inode)
    temp.write_bytes(b"a new file under the same name")  # not the file the killed run created
    journal = tmp_path / left[1]
    outside = tmp_path.parent / "outside.txt"
    outside.write_bytes(b"outside the folder")
    st = outside.stat()
    with open(journal, "a") as f:  # a hand-edited journal pointing out of the folder
        f.write(json.dumps({"name": "../outside.txt", "dev": st.st_dev, "ino": st.st_ino}) + "\n")
    assert remove_stale_temps(tmp_path) == []
    assert temp.read_bytes() == b"a new file under the same name" and outside.exists()


def test_the_temporary_files_of_a_running_write_are_never_removed(tmp_path):
    with Staging() as staged:
        tmp = staged.add(tmp_path / "a.png")
        tmp.write_bytes(b"being written")
        assert remove_stale_temps(tmp_path) == []  # this process holds the journal's lock
        r = subprocess.run([sys.executable, "-c", "import sys; from cliplit_core.files.atomic import "
                            "remove_stale_temps as r; print(len(r(sys.argv[1])))", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.stdout.strip() == "0" and tmp.read_bytes() == b"being written"
        staged.commit()
    assert _contents(tmp_path) == {"a.png": b"being written"}  # and the journal is gone


@pytest.mark.parametrize("option", ["-o", "--heatmap"])
def test_preparing_an_output_folder_keeps_every_file_it_did_not_make(tmp_path, option):
    """What ``enhance -o`` and ``score --heatmap`` do with a folder first."""
    foreign = _foreign_files(tmp_path)
    left = _killed_while_writing(tmp_path)
    prepare_output_dir(tmp_path, option)
    assert _contents(tmp_path) == foreign and not set(left) & set(os.listdir(tmp_path))


# --------------------------------------------------------------------------- temporary names
def test_a_temporary_file_never_replaces_an_existing_file(tmp_path, monkeypatch):
    """The first token drawn names an existing file: it is left alone, the next token is used."""
    tokens = iter(["0" * 16, "1" * 16, "2" * 16, "3" * 16])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    taken = tmp_path / temp_name("a.png", "1" * 16)  # the journal takes "0"*16, the file "1"*16
    taken.write_bytes(b"someone's file")
    write_together([(tmp_path / "a.png", lambda tmp: tmp.write_bytes(b"result"))])
    assert _contents(tmp_path) == {taken.name: b"someone's file", "a.png": b"result"}


def _utf8_names():
    """Final names of exactly 255 bytes (the usual limit) in 1- to 4-byte characters, and shorter ones."""
    names = {"ascii-255": "a" * 251 + ".png", "short": "a.png", "dotless": "README"}
    for label, ch in (("2-byte", "é"), ("3-byte", "照"), ("4-byte", "😀")):
        n = len(ch.encode())
        body = ch * ((251 - 1) // n)
        names[label] = body + "x" * (251 - len(body.encode())) + ".png"
    names["3-byte-odd"] = "照" * 83 + ".png"  # 253 bytes
    return names


@pytest.mark.parametrize("label, name", sorted(_utf8_names().items()))
def test_a_temporary_name_fits_wherever_the_final_name_fits(tmp_path, label, name):
    final = len(name.encode())
    tmp = temp_name(name, "f" * 16)
    assert len(tmp.encode()) <= max(final, SHORT_NAME_BYTES)
    tmp.encode("utf-8")  # no character cut in half (that would be invalid UTF-8)
    assert tmp.startswith(".") and TEMP_TAG + "f" * 16 in tmp
    write_together([(tmp_path / name, lambda p: p.write_bytes(b"x"))])  # 255-byte names on this file system
    assert _contents(tmp_path) == {name: b"x"}


def test_a_temporary_name_fits_a_folder_with_a_shorter_name_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "name_max", lambda folder: 40)
    for name in ("照" * 12 + ".png", "a" * 36 + ".png"):
        with Staging() as staged:
            tmp = staged.add(tmp_path / name)
            assert len(tmp.name.encode()) <= 40
            tmp.name.encode("utf-8")


@pytest.mark.parametrize("name, limit, expected", [("a€b", 3, "a"), ("a€b", 4, "a€"), ("a😀", 4, "a"),
                                                   ("a😀", 5, "a😀"), ("abc", 0, ""), ("é" * 3, 5, "éé")])
def test_names_are_cut_at_character_boundaries(name, limit, expected):
    assert trim_name_bytes(name, limit) == expected


def test_a_name_too_long_for_any_file_system_is_a_plain_error(tmp_path):
    with pytest.raises(OSError) as e:
        write_together([(tmp_path / ("a" * 252 + ".png"), lambda p: p.write_bytes(b"x"))])
    assert e.value.errno == errno.ENAMETOOLONG
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even the journal


# --------------------------------------------------------------------------- modes
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_get_the_mode_of_new_files_whoever_fills_them(tmp_path, umask):
    """A writer that replaces the temporary file with its own private one (as safetensors'
    ``save_file`` does) does not decide the mode: the umask does, as for any new file."""
    def private_writer(tmp: Path):
        own = tmp.with_name(".private")
        fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"x")
        os.close(fd)
        os.replace(own, tmp)

    old = os.umask(umask)
    try:
        write_together([(tmp_path / "a.bin", private_writer), (tmp_path / "b.bin", lambda p: p.write_bytes(b"y"))])
    finally:
        os.umask(old)
    for name in ("a.bin", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
