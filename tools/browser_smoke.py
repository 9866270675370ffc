#!/usr/bin/env python3
"""Open the pack's example workflows in ComfyUI's own web page, in a real (headless) browser.

What a user does, checked step by step:
  1. ComfyUI lists every example_workflows/NAME.json as a template, with its
     NAME.jpg thumbnail (GET /api/workflow_templates and the files it serves); in the
     template browser each card is titled NAME and shows its thumbnail;
  2. each example, opened from the template browser, loads with no error toast and no
     missing-node or other dialog; its layout is readable as the frontend draws it
     (no node left of / above a 100-pixel margin, no overlap, no link across a node);
  3. the offline example (examples.MAIN_NAME) runs when queued from the page:
     the saved PNG appears in ComfyUI's output folder, same size as the input and
     different from it;
  4. the scores example (examples.SCORES_NAME) runs with a tiny random-weights CLIP
     config written into models/cliplit/ (its scores are meaningless; no CLIP
     download is possible offline) and its "Score before/after" nodes show a score;
     with ``--scores load`` it is only loaded.
Load CLIP-LIT's lists in the page are the ones the server offers (/object_info), and each
is opened and photographed. ``--also FILE.json`` opens any other UI workflow and checks it
as in step 2. Screenshots of every step go to ``--out`` (default: a new temp folder).

Requirements (tools only, not needed by the pack): the ``playwright`` Python package
(``pip install playwright``; do not run ``playwright install``: the script drives the
system Chromium, ``apt-get install chromium`` on Debian), numpy and Pillow, and a
ComfyUI checkout. The pack is linked into COMFYUI/custom_nodes/ComfyUI-CLIP-LIT and the
authors' weights into COMFYUI/models/cliplit/ as tools/comfyui_smoke.py does.

    python tools/browser_smoke.py --comfyui /path/to/ComfyUI [--python /path/to/ComfyUI/.venv/bin/python]
        [--port 8190] [--out DIR] [--scores tiny|load] [--also WORKFLOW.json]
        [--chromium /usr/bin/chromium]

Exit status: 0 if every check passed, 1 if one failed, 2 for a bad option.
ComfyUI runs with ``--cpu --listen 127.0.0.1`` only while the script runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfyui_smoke as smoke  # noqa: E402  (helpers only: linking, server, HTTP)
import make_example_workflows as examples  # noqa: E402  (names of the examples, layout check)

REPO = examples.REPO
VIEWPORT = {"width": 1600, "height": 1000}

# The page's view of the loaded graph: nodes, their real sizes and the link end points.
GRAPH_JS = """() => {
  const g = window.app.graph, LG = window.LiteGraph;
  const nodes = (g._nodes || g.nodes).map(n => ({
    id: n.id, type: n.type, title: n.title, pos: [n.pos[0], n.pos[1]], size: [n.size[0], n.size[1]],
    known: !!LG.registered_node_types[n.type], errors: !!n.has_errors,
    widgets: (n.widgets || []).map(w => ({name: w.name, value: (typeof w.value === 'object') ? null : w.value})),
  }));
  const all = g.links instanceof Map ? [...g.links.values()] : Object.values(g.links || {});
  const links = all.filter(l => l).map(l => {
    const s = g.getNodeById(l.origin_id), d = g.getNodeById(l.target_id);
    return {src: l.origin_id, dst: l.target_id,
            p0: Array.from(s.getConnectionPos(false, l.origin_slot)),
            p1: Array.from(d.getConnectionPos(true, l.target_slot))};
  });
  const ds = window.app.canvas.ds;
  return {title: LG.NODE_TITLE_HEIGHT, nodes, links, offset: [ds.offset[0], ds.offset[1]], scale: ds.scale};
}"""

# Visible dialogs and toasts (PrimeVue, used by the ComfyUI frontend): [(kind, text)].
POPUPS_JS = """() => {
  const seen = [];
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  for (const e of document.querySelectorAll('.p-dialog')) if (visible(e)) seen.push(['dialog', e.innerText.trim()]);
  for (const e of document.querySelectorAll('.p-toast-message')) if (visible(e))
    seen.push([e.className.includes('error') ? 'error toast' : 'toast', e.innerText.trim()]);
  return seen;
}"""

# What the user sees at points of the page: null where the graph canvas is on top, else what covers it.
COVER_JS = """(points) => points.map(([x, y]) => {
  const e = document.elementFromPoint(x, y);
  if (!e) return 'outside the page';
  if (e.tagName === 'CANVAS') return null;
  const named = e.closest('[id],[class]') || e;
  return (named.id ? '#' + named.id : named.tagName.toLowerCase() + '.' + String(named.className).split(' ')[0]);
})"""

SET_WIDGETS_JS = """([type, values]) => {
  let n = 0;
  for (const node of (window.app.graph._nodes || window.app.graph.nodes)) {
    if (node.type !== type) continue;
    for (const w of node.widgets || []) if (w.name in values) { w.value = values[w.name]; n++; }
  }
  return n;
}"""


def log(msg: str = "") -> None:
    print(msg, flush=True)


def graph_problems(view: dict, margin: float = 100) -> list[str]:
    """Readability problems of the graph as the frontend laid it out (see examples.layout_problems)."""
    th = view["title"]
    rects = {n["id"]: (n["pos"][0], n["pos"][1] - th, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in view["nodes"]}
    links = [(l["src"], l["dst"], tuple(l["p0"]), tuple(l["p1"])) for l in view["links"]]
    return examples.layout_problems(rects, links, offset=view["offset"], scale=view["scale"], margin=margin)


def title_points(view: dict) -> dict[int, list[tuple[float, float]]]:
    """Screen points along each node's title bar (left, middle and right of its middle line)."""
    th, (ox, oy), s = view["title"], view["offset"], view["scale"]
    pts = {}
    for n in view["nodes"]:
        (x, y), w = n["pos"], n["size"][0]
        pts[n["id"]] = [((x + f * w + ox) * s, (y - th / 2 + oy) * s) for f in (0.05, 0.5, 0.95)]
    return pts


class Page:
    """The ComfyUI page in Chromium: load a workflow, look at it, queue it."""

    def __init__(self, page, out: Path):
        self.page = page
        self.out = out
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def shot(self, name: str) -> tuple[Path, bytes]:
        png = self.page.screenshot()
        path = self.out / f"{name}.png"
        path.write_bytes(png)
        log(f"  screenshot {path}")
        return path, png

    def popups(self) -> list[tuple[str, str]]:
        return [(kind, text if len(text) <= 300 else text[:300] + "...")
                for kind, text in self.page.evaluate(POPUPS_JS)]

    def close_popups(self) -> None:
        for _ in range(3):
            if not self.popups():
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)
        for sel in (".p-toast-close-button", ".p-dialog-close-button"):
            for b in self.page.query_selector_all(sel):
                try:
                    b.click(timeout=1000)
                except Exception:  # noqa: BLE001 - a toast may vanish while we click it
                    pass

    def view(self) -> dict:
        return self.page.evaluate(GRAPH_JS)

    def hidden_titles(self, view: dict) -> list[str]:
        """Nodes whose title bar is covered by the page's menus or panels, or off the page."""
        hidden = []
        for nid, pts in title_points(view).items():
            covers = {c for c in self.page.evaluate(COVER_JS, [list(p) for p in pts]) if c}
            if covers:
                hidden.append(f"title of node {nid} under {', '.join(sorted(covers))}")
        return hidden

    def load_workflow(self, name: str, workflow: dict) -> None:
        self.page.evaluate("([wf, name]) => window.app.loadGraphData(wf, true, true, name)", [workflow, name])
        self.page.wait_for_timeout(1500)

    def set_widgets(self, node_type: str, values: dict) -> int:
        return self.page.evaluate(SET_WIDGETS_JS, [node_type, values])

    def queue(self) -> str:
        """Press the Run button (the frontend's queue command if no button is found); how it was queued."""
        import re

        button = self.page.get_by_role("button", name=re.compile(r"^\s*Run\b"))
        if button.count() > 0:
            button.first.click()
            return "Run button"
        self.page.evaluate("() => window.app.queuePrompt(0, 1)")
        return "app.queuePrompt"


def wait_new_prompt(http, server, before: set, timeout: float) -> tuple[str | None, dict | None]:
    """The first prompt in /history that was not there before, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise smoke.SmokeError(f"ComfyUI died.\n--- log tail ---\n{smoke.tail(server.log_path)}")
        status, hist = http.get("/history")
        if status == 200 and isinstance(hist, dict):
            for pid, entry in hist.items():
                if pid in before:
                    continue
                st = entry.get("status") or {}
                if st.get("completed") or st.get("status_str") in ("success", "error"):
                    return pid, entry
        time.sleep(0.5)
    return None, None


def history_ids(http) -> set:
    status, hist = http.get("/history")
    return set(hist) if status == 200 and isinstance(hist, dict) else set()


def image_difference(a: Path, b: Path) -> tuple[tuple[int, int], tuple[int, int], float]:
    """(size of a, size of b, mean absolute difference in 8-bit levels; -1 when the sizes differ)."""
    import numpy as np
    from PIL import Image

    with Image.open(a) as ia, Image.open(b) as ib:
        x, y = np.asarray(ia.convert("RGB"), dtype=np.int16), np.asarray(ib.convert("RGB"), dtype=np.int16)
        sizes = (ia.size, ib.size)
    return sizes[0], sizes[1], float(np.abs(x - y).mean()) if x.shape == y.shape else -1.0


def check_templates(http, res, pack: Path) -> dict[str, dict]:
    """The pack's templates as ComfyUI serves them (under the pack folder's name): {name: workflow}."""
    names = sorted(p.stem for p in (pack / "example_workflows").glob("*.json"))
    status, listing = http.get("/api/workflow_templates")
    served = sorted((listing or {}).get(pack.name, [])) if status == 200 and isinstance(listing, dict) else []
    res.add("templates listed", served == names, f"ComfyUI lists {served}, example_workflows/ has {names}")
    workflows = {}
    for name in names:
        status, wf = http.get(template_url(pack.name, f"{name}.json"))
        ok = status == 200 and isinstance(wf, dict) and "version" in wf and "nodes" in wf
        res.add(f"{name}.json served in UI format", ok, f"HTTP {status}")
        if ok:
            workflows[name] = wf
    return workflows


def template_url(module: str, file: str) -> str:
    """Where ComfyUI serves a file of a pack's example_workflows/ (names may hold spaces)."""
    return f"/api/workflow_templates/{quote(module)}/{quote(file)}"


def check_thumbnails(base_url: str, res, names, module: str) -> None:
    import urllib.request

    for name in names:
        try:
            with urllib.request.urlopen(base_url + template_url(module, f"{name}.jpg"), timeout=30) as r:
                kind, size = r.headers.get("Content-Type", ""), len(r.read())
        except OSError as e:
            kind, size = str(e), 0
        res.add(f"{name}.jpg thumbnail served", kind.startswith("image/jpeg") and size > 0,
                f"{kind}, {size} bytes")


# The pack's template cards as the browser shows them: title, description, thumbnail loaded.
CARDS_JS = """(names) => names.map(name => {
  const card = document.querySelector(`[data-testid="template-workflow-${CSS.escape(name)}"]`);
  if (!card) return {name, found: false};
  const img = card.querySelector('img');
  return {name, found: true, title: (card.querySelector('h3') || {}).innerText || '',
          description: (card.querySelector('p') || {}).innerText || '',
          image: img ? img.currentSrc || img.src : '', loaded: !!(img && img.complete && img.naturalWidth > 0)};
})"""


def show_pack_templates(page: Page, module: str) -> bool:
    """Open Browse Templates and pick the pack's category (named after its folder); True if shown."""
    try:
        page.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    except Exception as e:  # noqa: BLE001 - an older or newer frontend without this command
        log(f"  no Browse Templates command: {str(e).splitlines()[0]}")
        return False
    page.page.wait_for_timeout(1500)
    category = page.page.get_by_text(module, exact=True)
    if category.count() == 0:
        return False
    category.first.click()
    page.page.wait_for_timeout(2000)  # the thumbnails load
    return True


def check_template_cards(page: Page, res, module: str, names) -> None:
    """Each example's card in the template browser: titled with its name, its thumbnail shown."""
    if not show_pack_templates(page, module):
        res.add("template browser shows the pack's templates", False, f"no category {module!r}")
        return
    page.shot("templates")
    for card in page.page.evaluate(CARDS_JS, list(names)):
        ok = card["found"] and card["title"].strip() == card["name"] and card["loaded"]
        res.add(f"template card '{card['name']}'", ok,
                f"title {card.get('title')!r}, description {card.get('description')!r}, "
                f"thumbnail {'shown' if card.get('loaded') else 'missing'}" if card["found"] else "not found")
    page.page.keyboard.press("Escape")
    page.page.wait_for_timeout(500)


def open_from_template_browser(page: Page, name: str, module: str) -> bool:
    """Open Browse Templates, pick the pack's category and click the template ``name``; True if clicked."""
    if not show_pack_templates(page, module):
        return False
    card = page.page.locator(f'[data-testid="template-workflow-{name}"]')
    if card.count() == 0:
        return False
    card.first.click()
    page.page.wait_for_timeout(2000)
    return True


# Where each combo widget of a node type is drawn on the screen, and its options.
COMBOS_JS = """(type) => {
  const c = window.app.canvas, ds = c.ds;
  const node = (window.app.graph._nodes || window.app.graph.nodes).find(n => n.type === type);
  if (!node) return null;
  return (node.widgets || []).filter(w => w.type === 'combo').map(w => {
    const y = node.pos[1] + (w.last_y ?? w.y ?? 0) + (w.computedHeight || 20) / 2;
    const x = node.pos[0] + node.size[0] * 0.6;
    const values = w.options && w.options.values;
    return {name: w.name, value: w.value, options: Array.isArray(values) ? values : null,
            x: (x + ds.offset[0]) * ds.scale, y: (y + ds.offset[1]) * ds.scale};
  });
}"""
MENU_JS = """() => { const m = document.querySelector('.litecontextmenu');
  return m ? Array.from(m.querySelectorAll('.litemenu-entry')).map(e => e.innerText.trim()) : null; }"""


def check_loader_lists(page: Page, res, object_info: dict, tag: str) -> None:
    """Load CLIP-LIT's lists in the page are the server's (/object_info); each is opened and photographed."""
    combos = page.page.evaluate(COMBOS_JS, smoke.LOADER_NODE) or []
    spec = object_info.get(smoke.LOADER_NODE, {}).get("input", {})
    for combo in combos:
        section = "required" if combo["name"] in spec.get("required", {}) else "optional"
        served = smoke.combo_options(spec.get(section, {}).get(combo["name"])) or []
        page.page.mouse.click(combo["x"], combo["y"])
        page.page.wait_for_timeout(600)
        shown = page.page.evaluate(MENU_JS)
        page.shot(f"{tag}_list_{combo['name']}")
        page.page.keyboard.press("Escape")
        page.page.mouse.click(5, VIEWPORT["height"] // 2)  # close the menu if Escape did not
        page.page.wait_for_timeout(300)
        log(f"  {combo['name']}: value {combo['value']!r}, list {shown if shown is not None else combo['options']}")
        res.add(f"Load CLIP-LIT {combo['name']} lists what the server offers",
                list(combo["options"] or []) == list(served) and (shown is None or shown == list(served)),
                f"page {combo['options']}, menu {shown}, server {served}")


def check_loaded(page: Page, res, name: str, workflow: dict, via_browser: bool) -> dict:
    popups = page.popups()
    res.add(f"{name}: opened without error or dialog", not popups,
            ("from the template browser" if via_browser else "with app.loadGraphData")
            + (f"; saw {popups}" if popups else ""))
    page.close_popups()
    view = page.view()
    ids = sorted(n["id"] for n in view["nodes"])
    want = sorted(n["id"] for n in workflow.get("nodes") or [])  # none in an API-format prompt
    res.add(f"{name}: all nodes on the canvas", ids == want, f"ids {ids}")
    unknown = [f'{n["id"]}:{n["type"]}' for n in view["nodes"] if not n["known"] or n["errors"]]
    res.add(f"{name}: every node type known", not unknown, f"unknown or in error: {unknown}" if unknown else "")
    problems = graph_problems(view) + page.hidden_titles(view)
    sizes = {n["id"]: [round(v) for v in n["size"]] for n in view["nodes"]}
    res.add(f"{name}: layout readable as drawn", not problems,
            "; ".join(problems) + f" (sizes in the page: {sizes})" if problems else "")
    return view


def run_and_check(page: Page, http, server, res, name: str, comfyui: Path, timeout: float) -> dict | None:
    before = history_ids(http)
    how = page.queue()
    t0 = time.monotonic()
    pid, entry = wait_new_prompt(http, server, before, timeout)
    dt = time.monotonic() - t0
    ok = entry is not None and (entry.get("status") or {}).get("status_str") == "success"
    res.add(f"{name}: run queued from the page ({how}) succeeded", ok,
            f"{dt:.1f} s" if ok else (smoke.execution_error_text(entry or {}) or f"no result after {timeout:.0f} s"))
    page.page.wait_for_timeout(1500)  # let the page show the results
    popups = page.popups()
    res.add(f"{name}: no error dialog after the run", not popups, f"saw {popups}" if popups else "")
    page.close_popups()
    return entry if ok else None


def check_saved_image(res, comfyui: Path, entry: dict, input_image: Path) -> None:
    files = [comfyui / "output" / img.get("subfolder", "") / img["filename"]
             for out in (entry.get("outputs") or {}).values() for img in out.get("images", []) or []
             if img.get("type") == "output"]
    if not files:
        res.add("saved image in output/", False, "no SaveImage output in the history")
        return
    for f in files:
        if not f.is_file():
            res.add(f"saved image {f}", False, "missing")
            continue
        size_out, size_in, diff = image_difference(f, input_image)
        res.add(f"saved image {f.relative_to(comfyui)}", size_out == size_in and diff > 1.0,
                f"{size_out[0]}x{size_out[1]} (input {size_in[0]}x{size_in[1]}), "
                f"mean |result - input| = {diff:.2f} levels")


def check_scores(page: Page, res, name: str) -> None:
    view = page.view()
    texts = {n["title"]: [w["value"] for w in n["widgets"] if isinstance(w["value"], str)]
             for n in view["nodes"] if n["type"] == "PreviewAny"}
    for title, values in sorted(texts.items()):
        shown = " | ".join(v.strip() for v in values if v.strip())
        res.add(f"{name}: '{title}' shows a score", any(ch.isdigit() for ch in shown), repr(shown[:120]))


def run(args, res) -> None:
    from playwright.sync_api import sync_playwright

    comfyui = args.comfyui
    out = args.out
    pack = smoke.link_pack(comfyui, REPO)
    weights = args.shared / "data" / "official_weights" / smoke.WEIGHTS_NAME
    if weights.is_file():
        smoke.link_weights(comfyui, weights)
    elif not (comfyui / "models" / smoke.MODEL_FOLDER / smoke.WEIGHTS_NAME).exists():
        raise smoke.SmokeError(f"no {smoke.WEIGHTS_NAME}: neither {weights} nor in {comfyui}/models/cliplit/")
    if args.scores == "tiny":
        smoke.write_tiny_clip(comfyui)
    input_image = comfyui / "input" / examples.EXAMPLE_IMAGE
    if not input_image.is_file():
        raise smoke.SmokeError(f"{input_image} missing (every ComfyUI ships input/{examples.EXAMPLE_IMAGE})")

    server = smoke.Server(comfyui, args.python, args.port, args.log)
    http = smoke.Http(f"http://127.0.0.1:{args.port}")
    try:
        server.start()
        t0 = time.monotonic()
        server.wait_ready(http, args.start_timeout)
        log(f"[server] ready after {time.monotonic() - t0:.1f} s")
        bad = smoke.check_import_log(args.log, pack.name)
        res.add("pack imported", not bad, "\n    ".join(bad)[-2000:])
        workflows = check_templates(http, res, pack)
        check_thumbnails(http.base, res, workflows, pack.name)
        _, object_info = http.get("/object_info")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
            try:
                page = Page(browser.new_page(viewport=VIEWPORT), out)
                page.page.goto(http.base + "/", wait_until="load")
                page.page.wait_for_function("() => window.app && window.app.graph && window.app.canvas",
                                            timeout=120_000)
                page.page.wait_for_timeout(3000)
                page.shot("00_start")
                startup = page.popups()
                if startup:
                    log(f"  closing what the page showed at start: {startup}")
                page.close_popups()
                # the minimap is on by default: check the layout with it
                page.page.evaluate("() => window.app.extensionManager.setting.set('Comfy.Minimap.Visible', true)")
                check_template_cards(page, res, pack.name, sorted(workflows))
                for i, (name, wf) in enumerate(sorted(workflows.items()), start=1):
                    log(f"[{name}]")
                    via_browser = open_from_template_browser(page, name, pack.name)
                    if not via_browser:
                        log("  template browser not found; loading with app.loadGraphData")
                        page.close_popups()
                        page.load_workflow(name, wf)
                    page.shot(f"{i:02d}_{name}_loaded")
                    check_loaded(page, res, name, wf, via_browser)
                    check_loader_lists(page, res, object_info or {}, f"{i:02d}_{name}")
                    if name == examples.MAIN_NAME:
                        entry = run_and_check(page, http, server, res, name, comfyui, args.prompt_timeout)
                        page.shot(f"{i:02d}_{name}_after_run")
                        if entry is not None:
                            check_saved_image(res, comfyui, entry, input_image)
                    if name == examples.SCORES_NAME and args.scores == "tiny":
                        n = page.set_widgets(smoke.LOADER_NODE, {"clip_model": smoke.TINY_CLIP_NAME,
                                                                  "clip_pretrained": "none"})
                        log(f"  Load CLIP-LIT set to the tiny random-weights CLIP ({n} widgets)")
                        if run_and_check(page, http, server, res, name, comfyui, args.prompt_timeout):
                            check_scores(page, res, name)
                        page.shot(f"{i:02d}_{name}_after_run")
                for path in args.also:
                    log(f"[{path}]")
                    page.load_workflow(path.stem, json.loads(path.read_text(encoding="utf-8")))
                    page.shot(f"also_{path.stem}")
                    check_loaded(page, res, path.stem, json.loads(path.read_text(encoding="utf-8")), False)
                    check_loader_lists(page, res, object_info or {}, f"also_{path.stem}")
                res.add("no script errors in the page", not page.errors, "; ".join(page.errors)[:2000])
            finally:
                browser.close()
    finally:
        server.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", required=True, type=Path, help="ComfyUI checkout (has main.py)")
    ap.add_argument("--python", help="python for ComfyUI (default: COMFYUI/.venv/bin/python if present, else this one)")
    ap.add_argument("--port", type=int, default=8190)
    ap.add_argument("--out", type=Path, help="folder for the screenshots (default: a new temp folder)")
    ap.add_argument("--scores", choices=("tiny", "load"), default="tiny",
                    help="scores example: run it with a tiny random-weights CLIP (default) or only load it")
    ap.add_argument("--also", type=Path, action="append", default=[], metavar="WORKFLOW.json",
                    help="also open this UI workflow and check it the same way (not run); repeatable")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="browser executable")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="shared/ folder with data/official_weights/ (default: ../shared beside the repo)")
    ap.add_argument("--log", type=Path, help="server log (default: a file in the screenshots folder)")
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--prompt-timeout", type=float, default=300.0)
    args = ap.parse_args(argv)

    args.comfyui = args.comfyui.expanduser().resolve()
    if not (args.comfyui / "main.py").is_file():
        print(f"error: {args.comfyui} has no main.py", file=sys.stderr)
        return 2
    if not Path(args.chromium).is_file():
        print(f"error: no browser at {args.chromium} (apt-get install chromium, or pass --chromium)", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("error: the playwright package is missing (pip install playwright)", file=sys.stderr)
        return 2
    venv_python = args.comfyui / ".venv" / "bin" / "python"
    args.python = args.python or (str(venv_python) if venv_python.exists() else sys.executable)
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="cliplit_browser_"))).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.log = (args.log or args.out / "comfyui.log").resolve()
    log(f"[setup] screenshots in {args.out}")

    res = smoke.Results()
    try:
        run(args, res)
    except smoke.SmokeError as e:
        res.add("setup/server", False, str(e))
    except KeyboardInterrupt:
        res.add("interrupted", False)
    except Exception:  # noqa: BLE001 - report, the server is already stopped by run()
        import traceback
        res.add("browser smoke script error", False, traceback.format_exc())
    passed = sum(ok for _, ok, _ in res.items)
    log("")
    log(f"Browser smoke test: {'PASSED' if res.ok else 'FAILED'}  ({passed} passed, "
        f"{len(res.items) - passed} failed; screenshots and server log in {args.out})")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
