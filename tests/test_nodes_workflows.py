"""example_workflows/: current with the nodes, valid API and UI graphs using all three nodes."""
from __future__ import annotations

import json
import subprocess
import sys

from nodes_support import REPO

import nodes

API = REPO / "example_workflows" / "cliplit_api.json"
UI = REPO / "example_workflows" / "cliplit_backlit_enhance.json"
# ComfyUI 0.8.0 core nodes the examples use (PreviewAny = comfy_extras/nodes_preview_any.py)
CORE = {"LoadImage", "SaveImage", "PreviewImage", "MaskToImage", "PreviewAny"}
OUTPUT_TYPES = {"LoadImage": ["IMAGE", "MASK"], "MaskToImage": ["IMAGE"]}


def _outputs(class_type):
    if class_type in nodes.NODE_CLASS_MAPPINGS:
        return list(nodes.NODE_CLASS_MAPPINGS[class_type].RETURN_TYPES)
    return OUTPUT_TYPES.get(class_type, [])


def test_files_are_generated_from_the_current_nodes():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "make_example_workflows.py"), "--check"],
                       capture_output=True, text=True, cwd=str(REPO))
    assert r.returncode == 0, r.stdout + r.stderr


def test_api_workflow_is_valid():
    api = json.loads(API.read_text(encoding="utf-8"))
    types = {n["class_type"] for n in api.values()}
    assert set(nodes.NODE_CLASS_MAPPINGS) <= types and types <= CORE | set(nodes.NODE_CLASS_MAPPINGS)
    for nid, n in api.items():
        cls = nodes.NODE_CLASS_MAPPINGS.get(n["class_type"])
        for name, value in n["inputs"].items():
            if isinstance(value, list):  # a link [source id, output index]
                src, slot = value
                assert src in api and slot < len(_outputs(api[src]["class_type"])), (nid, name)
        if cls is None:
            continue
        spec = cls.INPUT_TYPES()
        for name, (typ, opts) in spec["required"].items():
            assert name in n["inputs"], f"{nid}: required input {name} missing"
        for section in ("required", "optional"):
            for name, (typ, opts) in spec.get(section, {}).items():
                if name not in n["inputs"] or isinstance(n["inputs"][name], list):
                    continue
                value = n["inputs"][name]
                if typ == "COMBO":
                    assert value in opts["options"], (nid, name, value)
                elif typ in ("INT", "FLOAT"):
                    assert opts["min"] <= value <= opts["max"], (nid, name, value)
    enhance = [n for n in api.values() if n["class_type"] == "CLIPLITBacklitEnhance"]
    saves = [n for n in api.values() if n["class_type"] == "SaveImage"]
    assert any(s["inputs"]["images"][0] in {k for k, v in api.items() if v in enhance} for s in saves)
    score_ids = {k for k, v in api.items() if v["class_type"] == "CLIPLITLightScore"}
    assert any(v["class_type"] == "PreviewAny" and v["inputs"]["source"][0] in score_ids for v in api.values())


def test_ui_workflow_matches_the_api_one():
    ui = json.loads(UI.read_text(encoding="utf-8"))
    api = json.loads(API.read_text(encoding="utf-8"))
    assert ui["version"] == 0.4 and "nodes" in ui and "links" in ui
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert {str(i) for i in by_id} == set(api)
    for link_id, src, src_slot, dst, dst_slot, typ in ui["links"]:
        assert link_id in by_id[src]["outputs"][src_slot]["links"]
        assert by_id[dst]["inputs"][dst_slot]["link"] == link_id
        assert by_id[src]["outputs"][src_slot]["type"] == typ
        name = by_id[dst]["inputs"][dst_slot]["name"]
        assert api[str(dst)]["inputs"][name] == [str(src), src_slot]
    for n in ui["nodes"]:
        cls = nodes.NODE_CLASS_MAPPINGS.get(n["type"])
        if cls is None:
            continue
        spec = cls.INPUT_TYPES()
        widgets = [k for s in ("required", "optional") for k, (t, _) in spec.get(s, {}).items()
                   if t in ("COMBO", "INT", "FLOAT", "STRING", "BOOLEAN")]
        assert n["widgets_values"] == [api[str(n["id"])]["inputs"][w] for w in widgets]
