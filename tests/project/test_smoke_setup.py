"""tools/comfyui_smoke.py works on a user's ordinary install: the pack cloned or linked into
custom_nodes/ under any name, the weights copied or linked into models/cliplit/."""
from __future__ import annotations

import os
import shutil

import pytest
from tests.support.data import REPO

from tools import comfyui_smoke as smoke

PACK_FILES = ("pyproject.toml", "__init__.py")


@pytest.fixture
def comfyui(tmp_path):
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("")
    return root


def _clone(dest):
    """A copy of the pack as `git clone` leaves it (what the smoke test looks at: its pyproject and entry point)."""
    dest.mkdir(parents=True)
    for name in PACK_FILES:
        shutil.copyfile(REPO / name, dest / name)
    return dest


@pytest.mark.parametrize("name", [smoke.PACK_LINK_NAME, "comfyui-clip-lit", "ComfyUI-CLIP-LIT-main"])
def test_a_clone_in_custom_nodes_is_used_as_it_is(comfyui, name):
    clone = _clone(comfyui / "custom_nodes" / name)
    assert smoke.link_pack(comfyui, REPO) == clone
    assert sorted(p.name for p in (comfyui / "custom_nodes").iterdir()) == [name]  # no second copy linked in
    assert not clone.is_symlink()


def test_a_link_of_any_name_is_used_and_a_rerun_changes_nothing(comfyui):
    link = comfyui / "custom_nodes" / "cliplit"
    link.symlink_to(REPO, target_is_directory=True)
    assert smoke.link_pack(comfyui, REPO) == link
    assert smoke.link_pack(comfyui, REPO) == link
    assert os.readlink(link) == str(REPO)


def test_without_a_copy_the_repository_is_linked_in_once(comfyui):
    (comfyui / "custom_nodes" / "SomeOtherPack").mkdir()
    _clone(comfyui / "custom_nodes" / "old-cliplit.disabled")  # ComfyUI skips disabled packs
    link = smoke.link_pack(comfyui, REPO)
    assert link == comfyui / "custom_nodes" / smoke.PACK_LINK_NAME and link.resolve() == REPO.resolve()
    assert smoke.link_pack(comfyui, REPO) == link


def test_a_dangling_link_is_replaced(comfyui, tmp_path):
    gone = tmp_path / "moved_away"
    (comfyui / "custom_nodes" / smoke.PACK_LINK_NAME).symlink_to(gone, target_is_directory=True)
    assert smoke.link_pack(comfyui, REPO).resolve() == REPO.resolve()


def test_two_copies_are_refused_naming_both(comfyui):
    _clone(comfyui / "custom_nodes" / "a-cliplit")
    (comfyui / "custom_nodes" / "b-cliplit").symlink_to(REPO, target_is_directory=True)
    with pytest.raises(smoke.SmokeError, match=r"holds 2 copies of the pack \(a-cliplit, b-cliplit\)"):
        smoke.link_pack(comfyui, REPO)


def test_another_folder_under_the_link_name_is_left_alone(comfyui):
    (comfyui / "custom_nodes" / smoke.PACK_LINK_NAME).mkdir()
    with pytest.raises(smoke.SmokeError, match="is not this node pack"):
        smoke.link_pack(comfyui, REPO)


def test_the_import_check_reads_the_installed_folders_name(tmp_path):
    log = tmp_path / "log"
    log.write_text("Cannot import /x/custom_nodes/comfyui-clip-lit module for custom nodes: boom\n")
    assert smoke.check_import_log(log, "comfyui-clip-lit") == [
        "Cannot import /x/custom_nodes/comfyui-clip-lit module for custom nodes: boom"]
    assert smoke.check_import_log(log, "other") == []


# ----------------------------------------------------------------------------- weights
@pytest.fixture
def weights(tmp_path):
    f = tmp_path / "shared" / "enhancement_model.pth"
    f.parent.mkdir()
    f.write_bytes(b"the authors' weights" * 100)
    return f


def test_copied_weights_are_used(comfyui, weights):
    dest = comfyui / "models" / "cliplit" / weights.name
    dest.parent.mkdir(parents=True)
    shutil.copyfile(weights, dest)
    assert smoke.link_weights(comfyui, weights) == dest
    assert not dest.is_symlink() and dest.read_bytes() == weights.read_bytes()


def test_linked_weights_are_used_and_missing_ones_linked(comfyui, weights):
    dest = smoke.link_weights(comfyui, weights)
    assert dest.is_symlink() and dest.resolve() == weights.resolve()
    assert smoke.link_weights(comfyui, weights) == dest


def test_copied_weights_need_no_shared_copy(comfyui, weights, tmp_path):
    dest = comfyui / "models" / "cliplit" / weights.name
    dest.parent.mkdir(parents=True)
    shutil.copyfile(weights, dest)
    assert smoke.link_weights(comfyui, tmp_path / "nowhere" / weights.name) == dest


def test_other_weights_under_the_name_are_refused_with_both_digests(comfyui, weights):
    dest = comfyui / "models" / "cliplit" / weights.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"someone else's network")
    with pytest.raises(smoke.SmokeError, match=r"\(a copy\) is not the same file as .* \(sha256 [0-9a-f]{64} vs "):
        smoke.link_weights(comfyui, weights)


def test_a_dangling_weights_link_is_replaced(comfyui, weights, tmp_path):
    dest = comfyui / "models" / "cliplit" / weights.name
    dest.parent.mkdir(parents=True)
    dest.symlink_to(tmp_path / "gone.pth")
    assert smoke.link_weights(comfyui, weights).resolve() == weights.resolve()
