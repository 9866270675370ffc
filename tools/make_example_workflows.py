#!/usr/bin/env python3
"""Write example_workflows/cliplit_backlit_enhance.json (UI format, drag into ComfyUI)
and example_workflows/cliplit_api.json (API format, for POST /prompt) from one graph.

Widget order and defaults come from the nodes' own INPUT_TYPES, so the files stay
in step with the code; tests/test_nodes_workflows.py checks that they are current.

    python tools/make_example_workflows.py [--check]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "example_workflows"
UI_FILE = OUT_DIR / "cliplit_backlit_enhance.json"
API_FILE = OUT_DIR / "cliplit_api.json"
EXAMPLE_IMAGE = "backlit.png"

# ComfyUI core nodes used here: (socket inputs, widget inputs, outputs)
CORE_NODES = {
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE", False)], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE", False)], [], []),
    "MaskToImage": ([("mask", "MASK", False)], [], [("IMAGE", "IMAGE")]),
    "PreviewAny": ([("source", "*", False)], [], []),
}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")  # a V3 Combo: ("COMBO", {"options": [...]})

# id: (class, title, pos, size, {input: (src id, src slot) or widget value})
GRAPH = {
    1: ("LoadImage", "Load Image (backlit photo)", (40, 120), (320, 380), {"image": EXAMPLE_IMAGE, "upload": "image"}),
    2: ("CLIPLITLoader", "Load CLIP-LIT", (40, 560), (380, 170), {}),
    3: ("CLIPLITBacklitEnhance", "Backlit Enhance", (460, 120), (330, 250),
        {"cliplit_model": (2, 0), "image": (1, 0)}),
    4: ("SaveImage", "Save Image", (840, 120), (420, 460), {"images": (3, 0), "filename_prefix": "CLIP-LIT/enhanced"}),
    5: ("MaskToImage", "Light map as image", (840, 640), (220, 30), {"mask": (3, 1)}),
    6: ("PreviewImage", "Preview light map", (1100, 640), (300, 300), {"images": (5, 0)}),
    7: ("CLIPLITLightScore", "CLIP Light Score (before)", (460, 560), (330, 130),
        {"cliplit_model": (2, 0), "image": (1, 0)}),
    8: ("PreviewAny", "Score before", (460, 740), (330, 120), {"source": (7, 1)}),
    9: ("CLIPLITLightScore", "CLIP Light Score (after)", (460, 920), (330, 130),
        {"cliplit_model": (2, 0), "image": (3, 0)}),
    10: ("PreviewAny", "Score after", (460, 1100), (330, 120), {"source": (9, 1)}),
    11: ("MaskToImage", "Backlit heatmap as image", (840, 1000), (220, 30), {"mask": (7, 2)}),
    12: ("PreviewImage", "Preview backlit heatmap (before)", (1100, 1000), (300, 300), {"images": (11, 0)}),
}


def _node_classes():
    sys.path.insert(0, str(REPO))
    import nodes  # the pack's nodes package (run outside ComfyUI)

    return nodes.NODE_CLASS_MAPPINGS


def describe(cls_name: str, classes) -> tuple[list, list, list]:
    """(socket inputs [(name, type, optional)], widgets [(name, default)], outputs [(name, type)])."""
    if cls_name in CORE_NODES:
        sockets, widgets, outputs = CORE_NODES[cls_name]
        return list(sockets), [(w, None) for w in widgets], list(outputs)
    cls = classes[cls_name]
    spec = cls.INPUT_TYPES()
    sockets, widgets = [], []
    for section in ("required", "optional"):
        for name, (typ, opts) in (spec.get(section) or {}).items():
            if isinstance(typ, list):
                widgets.append((name, opts.get("default", typ[0])))
            elif typ in WIDGET_TYPES:
                widgets.append((name, opts.get("default")))
            else:
                sockets.append((name, typ, section == "optional"))
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    return sockets, widgets, list(zip(names, cls.RETURN_TYPES))


def build(classes) -> tuple[dict, dict]:
    links, link_id = [], 0
    out_links: dict[tuple[int, int], list[int]] = {}
    in_links: dict[tuple[int, str], int] = {}
    for nid, (cls_name, _, _, _, inputs) in GRAPH.items():
        sockets, _, _ = describe(cls_name, classes)
        for slot, (name, typ, _) in enumerate(sockets):
            if name in inputs:
                src, src_slot = inputs[name]
                link_id += 1
                src_type = describe(GRAPH[src][0], classes)[2][src_slot][1]
                links.append([link_id, src, src_slot, nid, slot, src_type])
                out_links.setdefault((src, src_slot), []).append(link_id)
                in_links[(nid, name)] = link_id
    ui_nodes, api = [], {}
    order = {nid: i for i, nid in enumerate(GRAPH)}
    for nid, (cls_name, title, pos, size, inputs) in GRAPH.items():
        sockets, widgets, outputs = describe(cls_name, classes)
        values = [inputs.get(name, default) for name, default in widgets]
        node = {
            "id": nid, "type": cls_name, "pos": list(pos), "size": list(size), "flags": {}, "order": order[nid],
            "mode": 0,
            "inputs": [dict({"name": n, "type": t, "link": in_links.get((nid, n))}, **({"shape": 7} if opt else {}))
                       for n, t, opt in sockets],
            "outputs": [{"name": n, "type": t, "links": out_links.get((nid, i), []), "slot_index": i}
                        for i, (n, t) in enumerate(outputs)],
            "title": title,
            "properties": {"Node name for S&R": cls_name},
            "widgets_values": values,
        }
        ui_nodes.append(node)
        api_inputs = {}
        for name, _, _ in sockets:
            if name in inputs:
                src, slot = inputs[name]
                api_inputs[name] = [str(src), slot]
        for (name, _), value in zip(widgets, values):
            if name == "upload":
                continue
            api_inputs[name] = value
        api[str(nid)] = {"class_type": cls_name, "inputs": api_inputs, "_meta": {"title": title}}
    ui = {
        "last_node_id": max(GRAPH), "last_link_id": link_id, "nodes": ui_nodes, "links": links, "groups": [],
        "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]},
                                "info": "CLIP-LIT backlit enhancement: enhance, light map, CLIP light score "
                                        "before/after. Put a backlit photo into LoadImage."},
        "version": 0.4,
    }
    return ui, api


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = ap.parse_args(argv)
    ui, api = build(_node_classes())
    stale = [p for p, obj in ((UI_FILE, ui), (API_FILE, api))
             if not p.is_file() or p.read_text(encoding="utf-8") != dumps(obj)]
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(REPO)} (run python tools/make_example_workflows.py)")
        return 1 if stale else 0
    OUT_DIR.mkdir(exist_ok=True)
    UI_FILE.write_text(dumps(ui), encoding="utf-8")
    API_FILE.write_text(dumps(api), encoding="utf-8")
    print(f"wrote {UI_FILE.relative_to(REPO)} and {API_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
