"""example_workflows/: UI workflows with thumbnails, current with the nodes, readable as opened."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

import nodes
from tests.support.nodes_support import REPO
from tools import make_example_workflows as gen

EXAMPLES = REPO / "example_workflows"
MAIN = EXAMPLES / f"{gen.MAIN_NAME}.json"
SCORES = EXAMPLES / f"{gen.SCORES_NAME}.json"
LEGACY_UI = REPO / "tests" / "fixtures" / "workflows" / "legacy_ui.json"
# ComfyUI 0.8.0 core nodes the examples may use (PreviewAny = comfy_extras/nodes_preview_any.py),
# with their socket inputs and output types; Note is the frontend's own (never sent to the server).
CORE = {
    "LoadImage": ([], ["IMAGE", "MASK"]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "MaskToImage": ([("mask", "MASK")], ["IMAGE"]),
    "PreviewAny": ([("source", "*")], []),
    "Note": ([], []),
}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def _workflows():
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(EXAMPLES.glob("*.json"))}


def _spec(cls_name):
    """(sockets [(name, type)], widgets [(name, type, opts)]) of one of our nodes, from INPUT_TYPES."""
    spec = nodes.NODE_CLASS_MAPPINGS[cls_name].INPUT_TYPES()
    sockets, widgets = [], []
    for section in ("required", "optional"):
        for name, (typ, opts) in (spec.get(section) or {}).items():
            if isinstance(typ, list) or typ == "COMBO" or typ in WIDGET_TYPES:
                widgets.append((name, typ, opts or {}))
            else:
                sockets.append((name, typ))
    return sockets, widgets


def _outputs(cls_name):
    if cls_name in nodes.NODE_CLASS_MAPPINGS:
        return list(nodes.NODE_CLASS_MAPPINGS[cls_name].RETURN_TYPES)
    return CORE[cls_name][1]


def test_files_are_generated_from_the_current_nodes():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "make_example_workflows.py"), "--check"],
                       capture_output=True, text=True, cwd=str(REPO))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_example_is_a_ui_workflow_with_a_jpeg_thumbnail():
    from PIL import Image

    files = sorted(p.name for p in EXAMPLES.iterdir() if not p.name.startswith("."))
    stems = sorted({p.rsplit(".", 1)[0] for p in files})
    assert stems == sorted([gen.MAIN_NAME, gen.SCORES_NAME])
    assert files == sorted([f"{s}.json" for s in stems] + [f"{s}.jpg" for s in stems])
    for name, wf in _workflows().items():
        # what the frontend's template loader needs: a version and nodes/links lists, not an API prompt
        assert isinstance(wf.get("version"), (int, float)), name
        assert isinstance(wf["nodes"], list) and isinstance(wf["links"], list), name
        assert not any(isinstance(v, dict) and "class_type" in v for v in wf.values()), name
        jpg = (EXAMPLES / f"{name}.jpg").read_bytes()
        assert len(jpg) < 100_000, name
        with Image.open(io.BytesIO(jpg)) as im:  # ComfyUI 0.8.0's template card shows a square
            assert im.format == "JPEG" and im.size == (gen.THUMB_SIZE, gen.THUMB_SIZE), (name, im.size)


def test_examples_use_known_nodes_and_the_main_one_runs_without_clip():
    known = set(CORE) | set(nodes.NODE_CLASS_MAPPINGS)
    for name, wf in _workflows().items():
        types = {n["type"] for n in wf["nodes"]}
        assert types <= known, (name, types - known)
    main = json.loads(MAIN.read_text(encoding="utf-8"))
    types = [n["type"] for n in main["nodes"]]
    assert "CLIPLITLightScore" not in types
    assert {"LoadImage", "CLIPLITLoader", "CLIPLITBacklitEnhance", "SaveImage", "MaskToImage",
            "PreviewImage"} <= set(types)
    by_id = {n["id"]: n for n in main["nodes"]}
    edges = {(by_id[s]["type"], ss, by_id[d]["type"], by_id[d]["inputs"][ds]["name"])
             for _, s, ss, d, ds, _ in main["links"]}
    assert {("LoadImage", 0, "CLIPLITBacklitEnhance", "image"),
            ("CLIPLITLoader", 0, "CLIPLITBacklitEnhance", "cliplit_model"),
            ("CLIPLITBacklitEnhance", 0, "SaveImage", "images"),
            ("CLIPLITBacklitEnhance", 1, "MaskToImage", "mask"),
            ("MaskToImage", 0, "PreviewImage", "images")} <= edges
    scores = json.loads(SCORES.read_text(encoding="utf-8"))
    by_id = {n["id"]: n for n in scores["nodes"]}
    scored = sorted(by_id[s]["type"] for _, s, _, d, ds, _ in scores["links"]
                    if by_id[d]["type"] == "CLIPLITLightScore" and by_id[d]["inputs"][ds]["name"] == "image")
    assert scored == ["CLIPLITBacklitEnhance", "LoadImage"]  # before and after
    shown = [by_id[s]["type"] for _, s, ss, d, _, _ in scores["links"] if by_id[d]["type"] == "PreviewAny"]
    assert shown == ["CLIPLITLightScore", "CLIPLITLightScore"]


def test_load_image_uses_the_picture_every_comfyui_has_and_a_note_says_which_photo_to_pick():
    for name, wf in _workflows().items():
        loads = [n for n in wf["nodes"] if n["type"] == "LoadImage"]
        assert loads and all(n["widgets_values"][0] == "example.png" for n in loads), name
        notes = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "Note"]
        assert any("backlit photo" in t and "Load Image" in t for t in notes), name


@pytest.mark.parametrize("name", [gen.MAIN_NAME, gen.SCORES_NAME])
def test_node_inputs_match_the_nodes(name):
    wf = _workflows()[name]
    by_id = {n["id"]: n for n in wf["nodes"]}
    assert len(by_id) == len(wf["nodes"]) and wf["last_node_id"] == max(by_id)
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])
    for link_id, src, src_slot, dst, dst_slot, typ in wf["links"]:
        assert link_id in by_id[src]["outputs"][src_slot]["links"]
        assert by_id[dst]["inputs"][dst_slot]["link"] == link_id
        assert typ == _outputs(by_id[src]["type"])[src_slot] == by_id[src]["outputs"][src_slot]["type"]
        want = by_id[dst]["inputs"][dst_slot]["type"]
        assert want in (typ, "*"), (name, link_id, typ, want)
    for n in wf["nodes"]:
        if n["type"] not in nodes.NODE_CLASS_MAPPINGS:
            sockets = CORE[n["type"]][0]
            assert [(i["name"], i["type"]) for i in n["inputs"]] == sockets, (name, n["id"])
            continue
        sockets, widgets = _spec(n["type"])
        assert [(i["name"], i["type"]) for i in n["inputs"]] == sockets, (name, n["id"])
        assert [o["type"] for o in n["outputs"]] == _outputs(n["type"]), (name, n["id"])
        assert len(n["widgets_values"]) == len(widgets), (name, n["id"], [w for w, _, _ in widgets])
        for value, (wname, typ, opts) in zip(n["widgets_values"], widgets):
            if isinstance(typ, list) or typ == "COMBO":
                assert value in (typ if isinstance(typ, list) else opts["options"]), (name, n["id"], wname)
            elif typ in ("INT", "FLOAT"):
                assert opts["min"] <= value <= opts["max"], (name, n["id"], wname, value)
            elif typ == "BOOLEAN":
                assert isinstance(value, bool), (name, n["id"], wname)
            else:
                assert isinstance(value, str), (name, n["id"], wname)
            assert value == opts.get("default", value), (name, n["id"], wname)  # examples use the defaults


@pytest.mark.parametrize("name", [gen.MAIN_NAME, gen.SCORES_NAME])
def test_layout_is_readable_as_opened(name):
    wf = _workflows()[name]
    assert gen.file_problems(wf) == []
    ds = wf["extra"]["ds"]
    assert min(n["pos"][0] for n in wf["nodes"]) >= 100 and min(n["pos"][1] - 30 for n in wf["nodes"]) >= 100
    # the whole graph fits a 1600 x 1000 page at the zoom it opens with
    right = max(n["pos"][0] + n["size"][0] for n in wf["nodes"])
    bottom = max(n["pos"][1] + n["size"][1] for n in wf["nodes"])
    assert (right + ds["offset"][0]) * ds["scale"] <= 1340 and (bottom + ds["offset"][1]) * ds["scale"] <= 950


def test_layout_check_flags_what_users_saw_in_the_old_example():
    problems = gen.file_problems(json.loads(LEGACY_UI.read_text(encoding="utf-8")))
    assert "node 1 starts at (32, 72), inside the 100-pixel margin" in problems
    assert "link 3 -> 9 crosses node 8" in problems  # the enhanced image's link over "Score before"


def test_layout_check_sees_overlaps_and_links_over_nodes():
    rects = {1: (100, 100, 300, 300), 2: (500, 100, 700, 300), 3: (320, 100, 480, 200), 4: (650, 280, 800, 400)}
    links = [(1, 2, (300, 120), (500, 120))]
    assert gen.layout_problems(rects, links) == ["nodes 2 and 4 overlap", "link 1 -> 2 crosses node 3"]
    assert gen.layout_problems(rects, links, offset=(-50, 0)) == [
        "node 1 starts at (50, 100), inside the 100-pixel margin", "nodes 2 and 4 overlap",
        "link 1 -> 2 crosses node 3"]


# ----------------------------------------------------------------------------- template cards
# ComfyUI 0.8.0 (frontend 1.35.9) titles a custom pack's template card with its file name and repeats
# the name, dashes and underscores turned into spaces, as the card's description.
FORBIDDEN_IN_FILE_NAMES = set('<>:"/\\|?*#%')


@pytest.mark.parametrize("name", [gen.MAIN_NAME, gen.SCORES_NAME])
def test_file_names_are_titles_a_card_shows_in_full(name):
    assert name[0].isupper() and " " in name, name  # words, not an identifier like cliplit_backlit_enhance
    assert not set(name) & (FORBIDDEN_IN_FILE_NAMES | {"-", "_"}), name  # the description repeats it unchanged
    assert len(name) <= 32, name  # one line of the card's title


def test_thumbnails_show_the_backlit_photo_before_and_after():
    import numpy as np
    from PIL import Image

    before, after = gen.photo_halves()
    for name in (gen.MAIN_NAME, gen.SCORES_NAME):
        with Image.open(EXAMPLES / f"{name}.jpg") as im:
            thumb = np.asarray(im.convert("L"), dtype=np.float32)
        side = min(before.size)
        top = (before.height - side) // 2
        ref = {k: np.asarray(h.crop((0, top, side, top + side)).resize(thumb.shape[::-1]).convert("L"),
                             dtype=np.float32) for k, h in (("before", before), ("after", after))}
        q = thumb.shape[0] // 4
        rows = slice(q, 3 * q)  # clear of the labels
        left, right = (slice(q // 2, 2 * q - 8), slice(2 * q + 8, 4 * q - q // 2))
        assert np.abs(thumb[rows, left] - ref["before"][rows, left]).mean() < 6, name
        assert np.abs(thumb[rows, right] - ref["after"][rows, right]).mean() < 6, name
        assert thumb[rows, right].mean() > thumb[rows, left].mean() + 10, name  # the enhanced side is brighter


def test_the_check_sees_a_thumbnail_that_is_not_the_current_render(tmp_path):
    from PIL import Image

    fresh = gen.render_thumbnail(gen.MAIN_NAME)
    (tmp_path / "same.jpg").write_bytes(gen.thumbnail_jpeg(fresh))
    assert gen.thumbnail_difference(tmp_path / "same.jpg", fresh) <= gen.THUMB_MAX_LEVELS
    Image.new("RGB", fresh.size, "pink").save(tmp_path / "cartoon.jpg")
    assert gen.thumbnail_difference(tmp_path / "cartoon.jpg", fresh) > gen.THUMB_MAX_LEVELS
    Image.new("RGB", (640, 336)).save(tmp_path / "old_size.jpg")
    assert gen.thumbnail_difference(tmp_path / "old_size.jpg", fresh) == float("inf")
    assert gen.thumbnail_difference(tmp_path / "missing.jpg", fresh) == float("inf")


def test_generator_reads_v1_and_v3_input_specs():
    # V1: a list of options; V3 (comfy_api): ("COMBO", {"options": [...]}); sockets carry their type name
    assert gen._input_kind(["fp32", "fp16"], {"default": "fp16"}) == (True, "fp16")
    assert gen._input_kind("COMBO", {"options": ["a", "b"]}) == (True, "a")
    assert gen._input_kind("COMBO", {"options": ["a", "b"], "default": "b"}) == (True, "b")
    assert gen._input_kind("FLOAT", {"default": 1.0}) == (True, 1.0)
    assert gen._input_kind("CLIPLIT_MODEL", {}) == (False, None)
