#!/usr/bin/env python3
"""Write the example workflows in example_workflows/ (UI format: drag into ComfyUI,
or pick them in the template browser under the pack's name), with their thumbnails.

  Enhance a backlit photo.json       Load Image -> Backlit Enhance -> Save Image, plus a
                                     light-map preview. Needs only the CLIP-LIT model file.
  Light score before and after.json  CLIP Light Score before and after the enhancement,
                                     with the backlit heatmap. Needs CLIP weights too.

ComfyUI 0.8.0's template browser (frontend 1.35.9) shows a custom node pack's template
by its file name alone: GET /api/workflow_templates lists the names in each pack's
example_workflows/, and each card gets the name as its title, the name again (dashes and
underscores turned into spaces) as its description, and NAME.jpg as its square thumbnail.
So the file names are the titles, and read as a description too.

Widget order and defaults come from the nodes' own INPUT_TYPES, so the files stay
in step with the code; tests/nodes/test_nodes_workflows.py checks that they are current
and laid out readably (left to right, margins, no link across a node). The thumbnails
(NAME.jpg) show a backlit portrait before and after, split down the middle: made from
docs/images/before_after.jpg (tools/make_readme_picture.py; photo: Daniel Torobekov,
Pexels, Pexels license), the only photo the repository holds.

    python tools/make_example_workflows.py [--check]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:  # run as a script (tools/ on sys.path) or imported as tools.make_example_workflows
    from make_readme_picture import GAP as PAIR_GAP
except ImportError:
    from tools.make_readme_picture import GAP as PAIR_GAP
OUT_DIR = REPO / "example_workflows"
# The file names are the template cards' titles (see above): plain words, no dashes or underscores
# (the card's description repeats the name with them turned into spaces), nothing a file system refuses.
MAIN_NAME = "Enhance a backlit photo"
SCORES_NAME = "Light score before and after"
PHOTO_PAIR = REPO / "docs" / "images" / "before_after.jpg"  # before | after, PAIR_GAP white pixels between
THUMB_SIZE = 512           # the card shows a square
THUMB_QUALITY = 85
THUMB_MAX_LEVELS = 2.0     # --check: mean difference (8-bit levels) tolerated between the file and a fresh render
# Every ComfyUI ships input/example.png; the notes tell users to pick their own backlit photo.
EXAMPLE_IMAGE = "example.png"

# ComfyUI core nodes used here: (socket inputs, widget inputs, outputs)
CORE_NODES = {
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE", False)], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE", False)], [], []),
    "MaskToImage": ([("mask", "MASK", False)], [], [("IMAGE", "IMAGE")]),
    "PreviewAny": ([("source", "*", False)], [], []),
    "Note": ([], ["text"], []),  # frontend-only (never sent to the server)
}
FRONTEND_ONLY = {"Note"}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")

# Layout: columns left to right, nodes top to bottom; x follows from the column widths.
ORIGIN = (150, 150)       # top-left corner of the first node's title bar
VIEW_SCALE = 0.7          # zoom the workflow opens at: the whole graph on a 1600 x 1000 page
COLUMN_GAP = 110          # room for the links between two columns
TITLE_HEIGHT = 30         # LiteGraph draws the title bar above pos[1]
SLOT_HEIGHT = 20          # LiteGraph's NODE_SLOT_HEIGHT: slot i sits at pos[1] + (i + 0.7) * 20

NOTE_COLOR = {"color": "#432", "bgcolor": "#653"}

MAIN_NOTE = (
    "CLIP-LIT backlit enhancement (runs offline)\n\n"
    "1. Model: put enhancement_model.pth (the authors' CLIP-LIT weights) into ComfyUI/models/cliplit/, or "
    "keep 'official (download if missing)' in Load CLIP-LIT to download it once.\n"
    "2. Photo: in Load Image, click 'choose file to upload' and pick a backlit photo (a subject in front of "
    "a bright sky or window). example.png, ComfyUI's sample picture, only shows that the graph runs.\n"
    "3. Run. The result is saved as output/CLIP-LIT/enhanced_*.png. The light map shows what the photo "
    "was divided by: dark = lifted most.\n\n"
    f"CLIP light scores before/after: the '{SCORES_NAME}' template (needs CLIP weights)."
)
SCORES_NOTE = (
    "CLIP light score before and after the enhancement (needs CLIP weights)\n\n"
    "The score is CLIP's probability that a photo looks well-lit (0..1); the heatmap marks where the "
    "photo looks backlit. Load CLIP-LIT's 'auto' CLIP is ViT-B-32 / openai: downloaded on first use, or "
    "offline put the weights file into ComfyUI/models/cliplit/ and enter its file name as clip_pretrained.\n"
    "Photo: pick a backlit photo in Load Image (example.png only shows that the graph runs)."
)

# A node: (class, title, size, {input: (src id, src slot) or widget value})
MAIN_NODES = {
    1: ("LoadImage", "Load Image (pick a backlit photo)", (320, 400), {"image": EXAMPLE_IMAGE, "upload": "image"}),
    2: ("CLIPLITLoader", "Load CLIP-LIT", (400, 170), {}),
    3: ("CLIPLITBacklitEnhance", "Backlit Enhance", (330, 250), {"cliplit_model": (2, 0), "image": (1, 0)}),
    4: ("SaveImage", "Save Image", (360, 400), {"images": (3, 0), "filename_prefix": "CLIP-LIT/enhanced"}),
    5: ("MaskToImage", "Light map as image", (360, 30), {"mask": (3, 1)}),
    6: ("PreviewImage", "Preview light map", (300, 300), {"images": (5, 0)}),
    7: ("Note", "How to use", (760, 160), {"text": MAIN_NOTE}),
}
# columns of (node id, top of the title bar relative to ORIGIN); a note's width does not widen its column
MAIN_LAYOUT = [
    [(7, 0), (1, 220), (2, 690)],
    [(3, 220)],
    [(4, 220), (5, 690)],
    [(6, 220)],
]

SCORES_NODES = {
    1: ("LoadImage", "Load Image (pick a backlit photo)", (320, 400), {"image": EXAMPLE_IMAGE, "upload": "image"}),
    2: ("CLIPLITLoader", "Load CLIP-LIT", (400, 170), {}),
    3: ("CLIPLITBacklitEnhance", "Backlit Enhance", (330, 250), {"cliplit_model": (2, 0), "image": (1, 0)}),
    4: ("CLIPLITLightScore", "CLIP Light Score (before)", (330, 130), {"cliplit_model": (2, 0), "image": (1, 0)}),
    5: ("PreviewImage", "Enhanced", (300, 250), {"images": (3, 0)}),
    6: ("PreviewAny", "Score before", (300, 110), {"source": (4, 1)}),
    7: ("MaskToImage", "Backlit heatmap as image", (300, 30), {"mask": (4, 2)}),
    8: ("PreviewImage", "Backlit heatmap (before)", (300, 300), {"images": (7, 0)}),
    9: ("CLIPLITLightScore", "CLIP Light Score (after)", (330, 130), {"cliplit_model": (2, 0), "image": (3, 0)}),
    10: ("PreviewAny", "Score after", (300, 110), {"source": (9, 1)}),
    11: ("Note", "How to use", (760, 150), {"text": SCORES_NOTE}),
}
SCORES_LAYOUT = [
    [(11, 0), (1, 200), (2, 760)],
    [(3, 200), (4, 520)],
    [(5, 200), (6, 520), (7, 670), (9, 760)],
    [(8, 320), (10, 760)],
]

EXAMPLES = {
    MAIN_NAME: (MAIN_NODES, MAIN_LAYOUT,
                "CLIP-LIT backlit enhancement: enhanced image and light map. Needs only the CLIP-LIT model file."),
    SCORES_NAME: (SCORES_NODES, SCORES_LAYOUT,
                  "CLIP-LIT: CLIP light score before and after the enhancement, backlit heatmap. Needs CLIP weights."),
}
# what each thumbnail says over the photo: (caption at the top or None, left label, right label)
THUMB_TEXT = {
    MAIN_NAME: (None, "before", "after"),
    SCORES_NAME: ("CLIP light score", "before", "after"),
}


def _node_classes():
    sys.path.insert(0, str(REPO))
    import nodes  # the pack's nodes package (run outside ComfyUI)

    return nodes.NODE_CLASS_MAPPINGS


def _input_kind(typ, opts) -> tuple[bool, object]:
    """(is a widget, default) of one INPUT_TYPES entry (V1 combo lists and V3 'COMBO' entries)."""
    opts = opts or {}
    if isinstance(typ, list):
        return True, opts.get("default", typ[0] if typ else None)
    if typ == "COMBO":
        options = opts.get("options") or [None]
        return True, opts.get("default", options[0])
    if typ in WIDGET_TYPES:
        return True, opts.get("default")
    return False, None


def describe(cls_name: str, classes) -> tuple[list, list, list]:
    """(socket inputs [(name, type, optional)], widgets [(name, default)], outputs [(name, type)])."""
    if cls_name in CORE_NODES:
        sockets, widgets, outputs = CORE_NODES[cls_name]
        return list(sockets), [(w, None) for w in widgets], list(outputs)
    cls = classes[cls_name]
    spec = cls.INPUT_TYPES()
    sockets, widgets = [], []
    for section in ("required", "optional"):
        for name, entry in (spec.get(section) or {}).items():
            typ, opts = entry[0], (entry[1] if len(entry) > 1 else {})
            is_widget, default = _input_kind(typ, opts)
            if is_widget:
                widgets.append((name, default))
            else:
                sockets.append((name, typ, section == "optional"))
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    return sockets, widgets, list(zip(names, cls.RETURN_TYPES))


def positions(graph: dict, layout: list) -> dict[int, tuple[int, int]]:
    """pos (top-left of the body, below the title bar) of every node from the column layout."""
    pos, x = {}, ORIGIN[0]
    for column in layout:
        for nid, top in column:
            pos[nid] = (x, ORIGIN[1] + top + TITLE_HEIGHT)
        x += max([graph[nid][2][0] for nid, _ in column if graph[nid][0] not in FRONTEND_ONLY] or [0]) + COLUMN_GAP
    missing = set(graph) - set(pos)
    if missing:
        raise ValueError(f"nodes without a place in the layout: {sorted(missing)}")
    return pos


def build(graph: dict, layout: list, info: str, classes) -> dict:
    """The UI-format workflow (what ComfyUI's 'Save' writes) of one example."""
    pos = positions(graph, layout)
    links, link_id = [], 0
    out_links: dict[tuple[int, int], list[int]] = {}
    in_links: dict[tuple[int, str], int] = {}
    for nid, (cls_name, _, _, inputs) in graph.items():
        sockets, _, _ = describe(cls_name, classes)
        for slot, (name, typ, _) in enumerate(sockets):
            if name in inputs:
                src, src_slot = inputs[name]
                link_id += 1
                src_type = describe(graph[src][0], classes)[2][src_slot][1]
                links.append([link_id, src, src_slot, nid, slot, src_type])
                out_links.setdefault((src, src_slot), []).append(link_id)
                in_links[(nid, name)] = link_id
    ui_nodes = []
    for order, (nid, (cls_name, title, size, inputs)) in enumerate(graph.items()):
        sockets, widgets, outputs = describe(cls_name, classes)
        node = {
            "id": nid, "type": cls_name, "pos": list(pos[nid]), "size": list(size), "flags": {}, "order": order,
            "mode": 0,
            "inputs": [dict({"name": n, "type": t, "link": in_links.get((nid, n))}, **({"shape": 7} if opt else {}))
                       for n, t, opt in sockets],
            "outputs": [{"name": n, "type": t, "links": out_links.get((nid, i), []), "slot_index": i}
                        for i, (n, t) in enumerate(outputs)],
            "title": title,
            "properties": {} if cls_name in FRONTEND_ONLY else {"Node name for S&R": cls_name},
            "widgets_values": [inputs.get(name, default) for name, default in widgets],
        }
        if cls_name == "Note":
            node.update(NOTE_COLOR)
        ui_nodes.append(node)
    return {
        "last_node_id": max(graph), "last_link_id": link_id, "nodes": ui_nodes, "links": links, "groups": [],
        "config": {}, "extra": {"ds": {"scale": VIEW_SCALE, "offset": [0, 0]}, "info": info},
        "version": 0.4,
    }


def build_all(classes) -> dict[str, dict]:
    return {name: build(graph, layout, info, classes) for name, (graph, layout, info) in EXAMPLES.items()}


# --------------------------------------------------------------------------
# layout check, shared by the test (file geometry) and tools/browser_smoke.py (the frontend's geometry)

def spline(p0, p1, steps: int = 48) -> list[tuple[float, float]]:
    """Points on a link as LiteGraph draws it: a cubic Bezier leaving and entering horizontally,
    control points a quarter of the end-to-end distance away."""
    (x0, y0), (x1, y1) = p0, p1
    d = 0.25 * ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    c0, c1 = (x0 + d, y0), (x1 - d, y1)
    pts = []
    for i in range(steps + 1):
        t = i / steps
        a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3
        pts.append((a * x0 + b * c0[0] + c * c1[0] + e * x1, a * y0 + b * c0[1] + c * c1[1] + e * y1))
    return pts


def layout_problems(rects: dict, links: list, *, offset=(0, 0), scale: float = 1.0, margin: float = 100,
                    pad: float = 4) -> list[str]:
    """Readability problems of a laid-out graph, as seen on the screen.

    rects: node id -> (x0, y0, x1, y1) in canvas units, title bar included; links: (src id, dst id,
    start point, end point). ``offset`` and ``scale`` are the canvas view (screen = (canvas + offset)
    * scale). Reports nodes closer than ``margin`` screen pixels to the left or top edge (hidden
    under the sidebar or the menu), overlapping nodes, and links that pass over a node other than
    their two ends.
    """
    def screen(x, y):
        return (x + offset[0]) * scale, (y + offset[1]) * scale

    rects = {nid: screen(x0, y0) + screen(x1, y1) for nid, (x0, y0, x1, y1) in rects.items()}
    links = [(src, dst, screen(*p0), screen(*p1)) for src, dst, p0, p1 in links]
    problems = []
    for nid, (x0, y0, _, _) in rects.items():
        if x0 < margin or y0 < margin:
            problems.append(f"node {nid} starts at ({x0:.0f}, {y0:.0f}), inside the {margin:.0f}-pixel margin")
    ids = sorted(rects)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            ra, rb = rects[a], rects[b]
            if ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]:
                problems.append(f"nodes {a} and {b} overlap")
    for src, dst, p0, p1 in links:
        for nid, (x0, y0, x1, y1) in rects.items():
            if nid in (src, dst):
                continue
            if any(x0 - pad < x < x1 + pad and y0 - pad < y < y1 + pad for x, y in spline(p0, p1)):
                problems.append(f"link {src} -> {dst} crosses node {nid}")
    return problems


def file_problems(ui: dict, **kw) -> list[str]:
    """layout_problems of a UI workflow as its own pos, size and view (extra.ds) place it."""
    ds = (ui.get("extra") or {}).get("ds") or {}
    rects, links = file_geometry(ui)
    return layout_problems(rects, links, offset=ds.get("offset", (0, 0)), scale=ds.get("scale", 1.0), **kw)


def file_geometry(ui: dict) -> tuple[dict, list]:
    """(rects, links) for layout_problems from a UI workflow's own pos/size."""
    by_id = {n["id"]: n for n in ui["nodes"]}
    rects = {nid: (n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for nid, n in by_id.items()}
    links = []
    for _, src, src_slot, dst, dst_slot, _ in ui["links"]:
        s, d = by_id[src], by_id[dst]
        p0 = (s["pos"][0] + s["size"][0], s["pos"][1] + (src_slot + 0.7) * SLOT_HEIGHT)
        p1 = (d["pos"][0], d["pos"][1] + (dst_slot + 0.7) * SLOT_HEIGHT)
        links.append((src, dst, p0, p1))
    return rects, links


# --------------------------------------------------------------------------
# thumbnails

def photo_halves(path: Path = PHOTO_PAIR):
    """(before, after) of README's picture: two halves side by side, PAIR_GAP white pixels apart."""
    from PIL import Image

    with Image.open(path) as im:
        pair = im.convert("RGB")
    half = (pair.width - PAIR_GAP) // 2
    return pair.crop((0, 0, half, pair.height)), pair.crop((half + PAIR_GAP, 0, 2 * half + PAIR_GAP, pair.height))


def _label(draw, xy, text: str, size: int, anchor: str) -> None:
    """White text on a dark, rounded box at ``xy`` (PIL anchor)."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=size)
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    pad = size // 3
    draw.rounded_rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), radius=pad,
                           fill=(0, 0, 0, 150))
    draw.text(xy, text, font=font, anchor=anchor, fill=(255, 255, 255, 255))


def render_thumbnail(name: str, path: Path = PHOTO_PAIR):
    """The square card picture of example ``name``: the photo split down the middle, the backlit
    original on the left, CLIP-LIT's result on the right, labelled (an RGB PIL image)."""
    from PIL import Image, ImageDraw

    before, after = photo_halves(path)
    side = min(before.size)
    top = (before.height - side) // 2  # the face sits in the middle of the portrait
    box = (0, top, side, top + side)
    square = before.crop(box)
    square.paste(after.crop(box).crop((side // 2, 0, side, side)), (side // 2, 0))
    square = square.resize((THUMB_SIZE, THUMB_SIZE), Image.LANCZOS).convert("RGBA")
    overlay = Image.new("RGBA", square.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    mid, edge, size = THUMB_SIZE // 2, THUMB_SIZE // 24, THUMB_SIZE // 16
    draw.rectangle((mid - 1, 0, mid + 1, THUMB_SIZE), fill=(255, 255, 255, 230))
    caption, left, right = THUMB_TEXT[name]
    _label(draw, (mid // 2, THUMB_SIZE - edge), left, size, "ms")
    _label(draw, (mid + mid // 2, THUMB_SIZE - edge), right, size, "ms")
    if caption:
        _label(draw, (mid, edge), caption, size, "mt")
    return Image.alpha_composite(square, overlay).convert("RGB")


def thumbnail_jpeg(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return buf.getvalue()


def thumbnail_difference(jpeg: Path, image) -> float:
    """Mean absolute difference (8-bit levels) between a thumbnail file and a fresh render; inf if the
    file is missing or of another size (JPEG encoders differ a little between Pillow builds)."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(jpeg) as im:
            old = np.asarray(im.convert("RGB"), dtype=np.int16)
    except OSError:
        return float("inf")
    new = np.asarray(image, dtype=np.int16)
    return float(np.abs(old - new).mean()) if old.shape == new.shape else float("inf")


# --------------------------------------------------------------------------

def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # as git checks files out (mkstemp makes them private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = ap.parse_args(argv)
    files = {OUT_DIR / f"{name}.json": ui for name, ui in build_all(_node_classes()).items()}
    thumbs = {OUT_DIR / f"{name}.jpg": render_thumbnail(name) for name in EXAMPLES}
    stale = [p for p, ui in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != dumps(ui)]
    stale += [p for p, im in thumbs.items() if thumbnail_difference(p, im) > THUMB_MAX_LEVELS]
    extra = sorted(p for p in OUT_DIR.glob("*") if p not in files and p not in thumbs and not p.name.startswith("."))
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(REPO)} (run python tools/make_example_workflows.py)")
        for p in extra:
            print(f"not made here: {p.relative_to(REPO)} (ComfyUI would list it as a template; remove it)")
        return 1 if stale or extra else 0
    OUT_DIR.mkdir(exist_ok=True)
    for p, ui in files.items():
        write_atomic(p, dumps(ui).encode("utf-8"))
        print(f"wrote {p.relative_to(REPO)}")
    for p, im in thumbs.items():
        write_atomic(p, thumbnail_jpeg(im))
        print(f"wrote {p.relative_to(REPO)}")
    for p in extra:
        p.unlink()
        print(f"removed {p.relative_to(REPO)} (an example no longer made)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
