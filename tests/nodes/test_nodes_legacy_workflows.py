"""Workflows saved with the earlier (V1) nodes still load against the V3 schemas: every node id is
registered, every input they name exists with the same type, every widget value is accepted
(combo option, number in range) and every output slot they link has the same type and name."""
from __future__ import annotations

import importlib.util
import json

import pytest
from tests.support.nodes_support import REPO

import nodes

FIXTURES = REPO / "tests" / "fixtures" / "workflows"
# ComfyUI core nodes in the fixtures: their output types, by slot
CORE_OUTPUTS = {"LoadImage": ["IMAGE", "MASK"], "MaskToImage": ["IMAGE"], "SaveImage": [], "PreviewImage": [],
                "PreviewAny": []}
WIDGET_TYPES = ("COMBO", "INT", "FLOAT", "STRING", "BOOLEAN")


def _inputs(cls) -> dict:
    """Input name -> (type, options) from the V1 view ComfyUI validates prompts against."""
    spec = cls.INPUT_TYPES()
    return {name: entry for section in ("required", "optional") for name, entry in spec.get(section, {}).items()}


def _assert_widget_value_accepted(where: str, typ: str, opts: dict, value) -> None:
    if typ == "COMBO":
        assert value in opts["options"], f"{where}: {value!r} is not an option"
    elif typ in ("INT", "FLOAT"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert opts["min"] <= value <= opts["max"], f"{where}: {value} outside {opts['min']}..{opts['max']}"
        if typ == "INT":
            assert value == int(value), where
    elif typ == "BOOLEAN":
        assert isinstance(value, bool), where
    elif typ == "STRING":
        assert isinstance(value, str), where


def _output_types(class_type: str) -> list:
    if class_type in nodes.NODE_CLASS_MAPPINGS:
        return list(nodes.NODE_CLASS_MAPPINGS[class_type].RETURN_TYPES)
    return CORE_OUTPUTS[class_type]


def test_fixtures_use_all_three_nodes():
    api = json.loads((FIXTURES / "legacy_api.json").read_text(encoding="utf-8"))
    ui = json.loads((FIXTURES / "legacy_ui.json").read_text(encoding="utf-8"))
    assert {n["class_type"] for n in api.values()} >= set(nodes.NODE_CLASS_MAPPINGS)
    assert {n["type"] for n in ui["nodes"]} >= set(nodes.NODE_CLASS_MAPPINGS)


def test_legacy_api_workflow_matches_the_v3_schemas():
    api = json.loads((FIXTURES / "legacy_api.json").read_text(encoding="utf-8"))
    checked = 0
    for nid, node in api.items():
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
        if cls is None:
            assert node["class_type"] in CORE_OUTPUTS, node["class_type"]
            continue
        assert cls.GET_SCHEMA().node_id == node["class_type"]
        schema = _inputs(cls)
        required = cls.INPUT_TYPES()["required"]
        assert set(required) <= set(node["inputs"]), f"node {nid}: required inputs missing"
        for name, value in node["inputs"].items():
            where = f"node {nid} ({node['class_type']}).{name}"
            assert name in schema, f"{where}: no such input in the V3 schema"
            typ, opts = schema[name]
            if isinstance(value, list):  # a link [source node id, output slot]
                src, slot = value
                assert typ not in WIDGET_TYPES or opts.get("forceInput"), f"{where}: a link into a widget"
                assert _output_types(api[src]["class_type"])[slot] == typ, where
            else:
                assert typ in WIDGET_TYPES, f"{where}: a value for a socket"
                _assert_widget_value_accepted(where, typ, opts, value)
            checked += 1
    assert checked == 4 + 8 + 2 * 4  # loader, enhance, two light scores


def test_legacy_ui_workflow_matches_the_v3_schemas():
    """The UI format stores widget values by position: the V3 widgets must come in the same order."""
    ui = json.loads((FIXTURES / "legacy_ui.json").read_text(encoding="utf-8"))
    by_id = {n["id"]: n for n in ui["nodes"]}
    links = {link[0]: link for link in ui["links"]}
    ours = [n for n in ui["nodes"] if n["type"] in nodes.NODE_CLASS_MAPPINGS]
    assert len(ours) == 4
    for node in ours:
        cls = nodes.NODE_CLASS_MAPPINGS[node["type"]]
        schema = _inputs(cls)
        widgets = [(name, typ, opts) for name, (typ, opts) in schema.items() if typ in WIDGET_TYPES]
        assert len(node["widgets_values"]) == len(widgets), node["type"]
        for (name, typ, opts), value in zip(widgets, node["widgets_values"]):
            _assert_widget_value_accepted(f"{node['type']}.{name}", typ, opts, value)
        for slot in node["inputs"]:
            where = f"{node['type']}.{slot['name']}"
            assert slot["name"] in schema and schema[slot["name"]][0] == slot["type"], where
            if slot["link"] is not None:
                _, src, src_slot, _, _, link_type = links[slot["link"]]
                assert link_type == slot["type"], where
                src_node = by_id[src]
                assert _output_types(src_node["type"])[src_slot] == link_type, where
        assert [(o["name"], o["type"]) for o in node["outputs"]] == list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))


@pytest.mark.parametrize("node_id", sorted(nodes.NODE_CLASS_MAPPINGS))
def test_ui_defaults_of_new_nodes_are_the_legacy_defaults(node_id):
    """A node added today has the widget values the legacy workflow saved (all defaults there)."""
    ui = json.loads((FIXTURES / "legacy_ui.json").read_text(encoding="utf-8"))
    saved = next(n["widgets_values"] for n in ui["nodes"] if n["type"] == node_id)
    cls = nodes.NODE_CLASS_MAPPINGS[node_id]
    defaults = [opts["default"] for typ, opts in _inputs(cls).values() if typ in WIDGET_TYPES]
    assert defaults == saved


def _smoke_tool():
    spec = importlib.util.spec_from_file_location("comfyui_smoke", REPO / "tools" / "comfyui_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _object_info(cls) -> dict:
    """The /object_info entry ComfyUI serves for a node (its V1 view)."""
    schema = cls.GET_SCHEMA()
    return {"input": cls.INPUT_TYPES(), "output": list(cls.RETURN_TYPES), "output_name": list(cls.RETURN_NAMES),
            "output_node": cls.OUTPUT_NODE, "display_name": schema.display_name}


LEGACY = json.loads((FIXTURES / "legacy_interface.json").read_text(encoding="utf-8"))["nodes"]


@pytest.mark.parametrize("node_id", sorted(LEGACY))
def test_v3_nodes_keep_the_legacy_interface(node_id):
    """Input names, order, sections, types, defaults, ranges, fixed options, outputs: as before."""
    diffs = _smoke_tool().interface_differences(node_id, _object_info(nodes.NODE_CLASS_MAPPINGS[node_id]),
                                                LEGACY[node_id])
    assert diffs == []


def test_interface_check_reports_a_changed_default_and_a_lost_input():
    info = _object_info(nodes.CLIPLITBacklitEnhance)
    info["input"]["optional"]["tile_size"][1]["default"] = 512
    del info["input"]["optional"]["mask"]
    diffs = _smoke_tool().interface_differences("CLIPLITBacklitEnhance", info, LEGACY["CLIPLITBacklitEnhance"])
    assert "CLIPLITBacklitEnhance.tile_size: default 512, was 0" in diffs
    assert "CLIPLITBacklitEnhance: input 'mask' is gone" in diffs
