#!/usr/bin/env python3
"""End-to-end smoke test of the CLIP-LIT node pack inside a real ComfyUI.

Usage:
    python tools/comfyui_smoke.py --comfyui PATH [--python PYTHON] [--port 8188]
        [--workflow tests/fixtures/workflows/legacy_api.json] [--shared ../shared] [--quick]

What it does:
  1. uses the pack as the user installed it: a copy in PATH/custom_nodes/ under any
     name (a git clone, an unpacked download, or a symlink; recognised by its
     pyproject.toml) is tested as it is; only without one is this repository linked
     in as custom_nodes/ComfyUI-CLIP-LIT. Likewise PATH/models/cliplit/enhancement_model.pth
     is kept when it is the authors' file (a copy with the same sha256 as
     <shared>/data/official_weights/enhancement_model.pth, or a link to it) and
     linked there when absent. Copies <shared>/data/backlit_small/*.png into
     PATH/input/;
  2. starts ComfyUI (``--cpu --listen 127.0.0.1 --port PORT``) with its log
     captured to a file, waits for it, and checks /object_info for the pack's
     nodes (and the log for an import failure of the pack): each node keeps the
     interface saved workflows know (tests/fixtures/workflows/legacy_interface.json:
     input names, order, types, defaults, ranges; outputs);
  3. runs the API-format workflow once per test image (nodes are found by
     ``class_type``, not by id), waits for each prompt in /history and compares
     the saved PNG with <shared>/data/reference_small/<name>.png (pass if the
     max abs difference is <= 1 level of 8 bits);
  4. checks that the CLIP Light Score node (if in the workflow) shows its
     scores (its ``ui`` text in /history: one "image N: score" line per image,
     and, where aiohttp is installed, the node's text on the websocket; by default with a tiny random-weights open_clip config written
     into models/cliplit/, since the test machine cannot download the OpenAI
     CLIP weights; --clip workflow keeps the workflow's ViT-B-32/openai), that a
     prompt naming a missing model file is rejected clearly and that a corrupt
     model file gives a clear node error, the server running on after both;
  5. unless --quick: runs one full-size photo (2048x1536, automatic tiling on
     CPU) against <shared>/data/reference_full/, and cancels a long tiled run
     with POST /interrupt, which must stop the Backlit Enhance node within
     seconds;
  6. always stops the server. Exit status 0 only if everything passed.

Only the standard library plus numpy and Pillow (for the comparison) are used.
The workflow must be in ComfyUI's API format ("Export (API)"), i.e. a dict
``{"<node id>": {"class_type": ..., "inputs": {...}}}``, not the UI format
with "nodes" and "links".
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_LINK_NAME = "ComfyUI-CLIP-LIT"  # the link made when custom_nodes has no copy of the pack yet
PACK_PROJECT_NAME = "comfyui-clip-lit"  # pyproject.toml's [project] name: how an installed copy is recognised
MODEL_FOLDER = "cliplit"
WEIGHTS_NAME = "enhancement_model.pth"
REQUIRED_NODES = ("CLIPLITLoader", "CLIPLITBacklitEnhance", "CLIPLITLightScore")
ENHANCE_NODE = "CLIPLITBacklitEnhance"
LOADER_NODE = "CLIPLITLoader"
SCORE_NODE = "CLIPLITLightScore"
BAD_MODEL_NAME = "cliplit_smoke_missing_model_do_not_create.pth"
# Offline CLIP for the light score: a tiny open_clip config with random weights
# (no download possible on the test machine). The real ViT-B-32/openai is used with --clip workflow.
TINY_CLIP_NAME = "cliplit_smoke_tiny_clip.json"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
MAX_LEVEL_DIFF = 1
LEGACY_INTERFACE = REPO_ROOT / "tests" / "fixtures" / "workflows" / "legacy_interface.json"
SCORE_LINE = re.compile(r"^image 1: [01]\.\d{4}$", re.MULTILINE)


class SmokeError(Exception):
    """A failure that stops the run (setup, server start)."""


# --------------------------------------------------------------------------
# small helpers

def log(msg: str = "") -> None:
    print(msg, flush=True)


def resolve_path(value: str, *, base: Path) -> Path:
    """Resolve a user-given path: as given (relative to cwd) if it exists,
    otherwise relative to ``base`` (the repository root)."""
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    alt = (base / p)
    return alt.resolve() if alt.exists() else p.resolve()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Http:
    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body=None):
        """Returns (status, parsed JSON or raw text). Raises URLError on
        connection problems."""
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body):
        return self.request("POST", path, body)


# --------------------------------------------------------------------------
# setup of the ComfyUI tree

def is_pack(folder: Path) -> bool:
    """True when ``folder`` is a copy of this node pack (a clone, a download or a link; any name)."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return (folder / "__init__.py").is_file() and re.search(
        rf'^name\s*=\s*"{re.escape(PACK_PROJECT_NAME)}"\s*$', text, re.M) is not None


def installed_packs(custom_nodes: Path) -> list[Path]:
    """The copies of the pack that ComfyUI loads from ``custom_nodes`` (it skips NAME.disabled)."""
    return sorted(p for p in custom_nodes.iterdir()
                  if not p.name.endswith(".disabled") and p.is_dir() and is_pack(p))


def link_pack(comfyui: Path, pack: Path) -> Path:
    """The pack folder ComfyUI loads: the user's installed copy (a folder or a link, any name) as it is;
    without one, ``pack`` linked in as custom_nodes/ComfyUI-CLIP-LIT."""
    custom_nodes = comfyui / "custom_nodes"
    if not custom_nodes.is_dir():
        raise SmokeError(f"{custom_nodes} does not exist: is {comfyui} a ComfyUI checkout?")
    found = installed_packs(custom_nodes)
    if len(found) > 1:
        raise SmokeError(f"{custom_nodes} holds {len(found)} copies of the pack ({', '.join(p.name for p in found)}): "
                         f"ComfyUI would load each; keep one (or rename the others to NAME.disabled)")
    if found:
        installed = found[0]
        kind = f"a link to {installed.resolve()}" if installed.is_symlink() else "a folder"
        log(f"[setup] pack installed: {installed} ({kind})")
        if installed.resolve() != pack.resolve():
            log(f"[setup] note: ComfyUI loads {installed}, not {pack}: that copy is what is tested")
        return installed
    link = custom_nodes / PACK_LINK_NAME
    if link.is_symlink():  # a link to a folder that is gone
        link.unlink()
    elif link.exists():
        raise SmokeError(f"{link} exists and is not this node pack; move it away first")
    link.symlink_to(pack, target_is_directory=True)
    log(f"[setup] linked {link} -> {pack}")
    return link


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def link_weights(comfyui: Path, weights: Path) -> Path:
    """models/cliplit/<weights' name>: kept when it is the same file as ``weights`` (a link to it, or a copy
    with the same sha256), linked to ``weights`` when absent; a different file there is an error."""
    folder = comfyui / "models" / MODEL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / weights.name
    if dest.is_file():  # a copy, or a link that resolves
        kind = f"a link to {dest.resolve()}" if dest.is_symlink() else "a copy"
        if not weights.is_file():
            log(f"[setup] weights: {dest} ({kind}; {weights} is missing, not compared)")
            return dest
        if dest.resolve() != weights.resolve() and sha256_of(dest) != sha256_of(weights):
            raise SmokeError(f"{dest} ({kind}) is not the same file as {weights} (sha256 {sha256_of(dest)} vs "
                             f"{sha256_of(weights)}); move it away first")
        log(f"[setup] weights ok: {dest} ({kind}, same content as {weights})")
        return dest
    if not weights.is_file():
        raise SmokeError(f"weights file not found: {weights} (and no {weights.name} in {folder})")
    if dest.is_symlink():  # a link to a file that is gone
        dest.unlink()
    elif dest.exists():
        raise SmokeError(f"{dest} exists and is not a file; move it away first")
    dest.symlink_to(weights.resolve())
    log(f"[setup] linked {dest} -> {weights}")
    return dest


def write_tiny_clip(comfyui: Path) -> Path:
    folder = comfyui / "models" / MODEL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / TINY_CLIP_NAME
    dest.write_text(json.dumps(TINY_CLIP_CONFIG, indent=1), encoding="utf-8")
    log(f"[setup] wrote offline CLIP config {dest} (random weights: light scores are meaningless)")
    return dest


def use_tiny_clip(prompt: dict) -> None:
    """Point every CLIP-LIT loader at the tiny offline CLIP (random weights)."""
    for lid in nodes_of(prompt, LOADER_NODE):
        inputs = prompt[lid]["inputs"]
        inputs["clip_model"] = TINY_CLIP_NAME
        inputs["clip_pretrained"] = "none"


def copy_inputs(comfyui: Path, images_dir: Path) -> list[Path]:
    images = sorted(images_dir.glob("*.png"))
    if not images:
        raise SmokeError(f"no test images (*.png) in {images_dir}")
    input_dir = comfyui / "input"
    input_dir.mkdir(parents=True, exist_ok=True)
    for img in images:
        shutil.copyfile(img, input_dir / img.name)
    log(f"[setup] copied {len(images)} test images into {input_dir}")
    return images


# --------------------------------------------------------------------------
# server process

class Server:
    def __init__(self, comfyui: Path, python: str, port: int, log_path: Path):
        self.comfyui = comfyui
        self.python = python
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def start(self) -> None:
        if port_in_use("127.0.0.1", self.port):
            raise SmokeError(f"port {self.port} is already in use on 127.0.0.1; "
                             "stop that server or pass --port")
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port)]
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self._log_file = open(self.log_path, "wb")
        log(f"[server] starting: {' '.join(cmd)} (cwd {self.comfyui})")
        log(f"[server] log: {self.log_path}")
        self.proc = subprocess.Popen(cmd, cwd=str(self.comfyui), stdout=self._log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, http: Http, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise SmokeError(f"ComfyUI exited with code {self.proc.returncode} before it was ready.\n"
                                 f"--- log tail ({self.log_path}) ---\n{tail(self.log_path)}")
            try:
                status, _ = http.get("/system_stats")
                if status == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        raise SmokeError(f"ComfyUI not ready after {timeout:.0f} s.\n"
                         f"--- log tail ({self.log_path}) ---\n{tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            log("[server] stopping")
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# --------------------------------------------------------------------------
# workflow handling

def load_api_workflow(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SmokeError(f"workflow not found: {path}")
    except json.JSONDecodeError as e:
        raise SmokeError(f"workflow {path} is not valid JSON: {e}")
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict):
        data = data["prompt"]
    if not isinstance(data, dict) or "nodes" in data and "links" in data:
        raise SmokeError(f"{path} looks like a UI workflow (nodes/links); "
                         "this test needs the API format (dict of node id -> class_type/inputs)")
    bad = [k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)]
    if bad:
        raise SmokeError(f"{path}: entries without class_type: {bad[:5]}")
    return data


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    return sorted((nid for nid, n in prompt.items() if n.get("class_type") == class_type), key=str)


def is_link(value) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int))


def downstream(prompt: dict, start: set[str]) -> set[str]:
    """All nodes that (transitively) take an input from a node in ``start``."""
    found = set(start)
    changed = True
    while changed:
        changed = False
        for nid, node in prompt.items():
            if nid in found:
                continue
            if any(is_link(v) and v[0] in found for v in node.get("inputs", {}).values()):
                found.add(nid)
                changed = True
    return found - set(start)


def remove_nodes(prompt: dict, class_type: str) -> dict:
    drop = set(nodes_of(prompt, class_type))
    drop |= downstream(prompt, drop)
    return {k: v for k, v in prompt.items() if k not in drop}


def combo_options(spec) -> list | None:
    """Options of a combo input from /object_info (V1 or V3 style)."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1].get("options")
    return None


def loader_model_input(object_info: dict) -> tuple[str | None, list]:
    """Name and options of CLIPLITLoader's model-file combo input (the one whose
    options contain the weights file, else the first combo)."""
    info = object_info.get(LOADER_NODE, {})
    first = (None, [])
    for section in ("required", "optional"):
        for name, spec in (info.get("input", {}).get(section) or {}).items():
            opts = combo_options(spec)
            if opts is None:
                continue
            if WEIGHTS_NAME in opts:
                return name, opts
            if first[0] is None:
                first = (name, opts)
    return first


def interface_differences(node_id: str, info: dict, legacy: dict) -> list[str]:
    """How a node's /object_info entry differs from the interface saved workflows rely on
    (``legacy``: one node of legacy_interface.json); empty when they still load and run."""
    diffs = []
    sections = info.get("input", {})
    got = {name: (section, spec) for section in ("required", "optional")
           for name, spec in (sections.get(section) or {}).items()}
    order = [n for section in ("required", "optional")
             for n in (info.get("input_order") or {}).get(section, (sections.get(section) or {}))]
    if [n for n in order if n in legacy["input"]] != list(legacy["input"]):
        diffs.append(f"{node_id}: input order {order} != {list(legacy['input'])}")
    for name, want in legacy["input"].items():
        if name not in got:
            diffs.append(f"{node_id}: input {name!r} is gone")
            continue
        section, spec = got[name]
        opts = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
        typ = "COMBO" if combo_options(spec) is not None else spec[0]
        if (section, typ) != (want["section"], want["type"]):
            diffs.append(f"{node_id}.{name}: {section} {typ}, was {want['section']} {want['type']}")
        for key in ("default", "min", "max", "step"):
            if key in want and opts.get(key) != want[key]:
                diffs.append(f"{node_id}.{name}: {key} {opts.get(key)!r}, was {want[key]!r}")
        if "options" in want and combo_options(spec) != want["options"]:
            diffs.append(f"{node_id}.{name}: options {combo_options(spec)}, were {want['options']}")
    new_required = [n for n, (section, _) in got.items() if section == "required" and n not in legacy["input"]]
    if new_required:
        diffs.append(f"{node_id}: new required inputs {new_required} (saved workflows lack them)")
    for key in ("output", "output_name", "output_node", "display_name"):
        if info.get(key) != legacy[key]:
            diffs.append(f"{node_id}: {key} {info.get(key)!r}, was {legacy[key]!r}")
    return diffs


def describe_node(name: str, info: dict) -> str:
    parts = []
    for section in ("required", "optional"):
        for inp, spec in (info.get("input", {}).get(section) or {}).items():
            opts = combo_options(spec)
            if opts is not None:
                shown = ", ".join(map(str, opts[:4])) + (", ..." if len(opts) > 4 else "")
                t = f"COMBO[{shown}]"
            else:
                t = spec[0] if isinstance(spec, list) and spec else str(spec)
            parts.append(f"{inp}:{t}" + ("?" if section == "optional" else ""))
    outs = ", ".join(f"{n}:{t}" for n, t in zip(info.get("output_name", []), info.get("output", [])))
    return f"  {name} ({info.get('display_name', '')}): in({'; '.join(parts)}) -> out({outs})"


# --------------------------------------------------------------------------
# prompt execution

def format_post_error(status: int, body) -> str:
    if not isinstance(body, dict):
        return f"HTTP {status}: {str(body)[:500]}"
    lines = [f"HTTP {status}"]
    err = body.get("error")
    if isinstance(err, dict):
        lines.append(f"error: {err.get('type')}: {err.get('message')} {err.get('details') or ''}".rstrip())
    elif err:
        lines.append(f"error: {err}")
    for nid, ne in (body.get("node_errors") or {}).items():
        for e in ne.get("errors", []):
            lines.append(f"node {nid} ({ne.get('class_type')}): {e.get('type')}: "
                         f"{e.get('message')}: {e.get('details')}")
    return "\n    ".join(lines)


def execution_error_text(entry: dict) -> str:
    status = entry.get("status") or {}
    lines = [f"status={status.get('status_str')}"]
    for msg in status.get("messages") or []:
        if not (isinstance(msg, list) and len(msg) == 2):
            continue
        event, data = msg
        if event in ("execution_error", "execution_interrupted"):
            lines.append(f"{event} in node {data.get('node_id')} ({data.get('node_type')}): "
                         f"{data.get('exception_type', '')}: {data.get('exception_message', '')}".rstrip())
            tb = data.get("traceback") or []
            if tb:
                lines.append("traceback (last lines):\n      " +
                             "\n      ".join([ln for ln in "".join(tb).rstrip().splitlines()
                                          if ln.strip(" ^~")][-8:]))
    return "\n    ".join(lines)


def submit(http: Http, prompt: dict):
    """POST /prompt. Returns (prompt_id or None, error text or None)."""
    status, body = http.post("/prompt", {"prompt": prompt, "client_id": "cliplit-smoke"})
    if status != 200 or not isinstance(body, dict) or "prompt_id" not in body:
        return None, format_post_error(status, body)
    if body.get("node_errors"):
        # accepted, but some outputs were dropped by validation
        return body["prompt_id"], "accepted with node_errors: " + format_post_error(status, body)
    return body["prompt_id"], None


def wait_history(http: Http, server: Server, prompt_id: str, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise SmokeError(f"ComfyUI died while running prompt {prompt_id}.\n"
                             f"--- log tail ---\n{tail(server.log_path)}")
        status, body = http.get(f"/history/{prompt_id}")
        if status == 200 and isinstance(body, dict) and prompt_id in body:
            entry = body[prompt_id]
            st = entry.get("status") or {}
            if st.get("completed") or st.get("status_str") in ("success", "error"):
                return entry
        time.sleep(0.5)
    try:
        http.post("/interrupt", {})
    except (urllib.error.URLError, OSError):
        pass
    return None


def saved_images(comfyui: Path, entry: dict, save_ids: list[str], prefixes: dict[str, str]) -> dict[str, list[Path]]:
    """Files written by each SaveImage node: from the history outputs, else by
    globbing output/ for the unique prefix."""
    out_dir = comfyui / "output"
    result = {}
    for nid in save_ids:
        files = []
        for img in (entry.get("outputs", {}).get(nid, {}) or {}).get("images", []) or []:
            if img.get("type", "output") == "output":
                files.append(out_dir / img.get("subfolder", "") / img["filename"])
        if not files:
            pfx = prefixes[nid]
            files = sorted((out_dir / os.path.dirname(pfx)).glob(os.path.basename(pfx) + "_*_.png"))
        result[nid] = files
    return result


def compare(result_path: Path, ref_path: Path) -> tuple[bool, str]:
    import numpy as np
    from PIL import Image

    if not result_path.is_file():
        return False, f"missing output {result_path}"
    if not ref_path.is_file():
        return False, f"missing reference {ref_path}"
    with Image.open(result_path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.int16)
    with Image.open(ref_path) as im:
        b = np.asarray(im.convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return False, f"size {a.shape[1]}x{a.shape[0]} != reference {b.shape[1]}x{b.shape[0]}"
    d = np.abs(a - b)
    mx = int(d.max())
    return mx <= MAX_LEVEL_DIFF, (f"max|diff|={mx} mean={d.mean():.4f} "
                                  f">1: {int((d > 1).sum())} px-ch ({a.shape[1]}x{a.shape[0]})")


# --------------------------------------------------------------------------
# main flow

class Results:
    def __init__(self):
        self.items: list[tuple[str, bool, str]] = []

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.items.append((name, ok, detail))
        log(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(ok for _, ok, _ in self.items)


def check_import_log(log_path: Path, pack_name: str = PACK_LINK_NAME) -> list[str]:
    """Lines of ComfyUI's log that report an import failure of our pack (installed as custom_nodes/
    ``pack_name``), with the traceback logged just before ComfyUI's "Cannot import" line."""
    lines = tail(log_path, 100000).splitlines()
    bad = []
    for i, line in enumerate(lines):
        if pack_name not in line:
            continue
        if "Cannot import" in line:
            start = i
            while start > 0 and not lines[start].startswith("Traceback") and i - start < 60:
                start -= 1
            if lines[start].startswith("Traceback"):
                bad.extend(lines[start:i])
            bad.append(line.strip())
        elif "IMPORT FAILED" in line:
            bad.append(line.strip())
    return bad


def run_images(args, http, server, res, object_info, workflow, images, comfyui, ref_dir):
    save_ids = nodes_of(workflow, "SaveImage")
    load_ids = nodes_of(workflow, "LoadImage")
    loader_ids = nodes_of(workflow, LOADER_NODE)
    enhance_ids = nodes_of(workflow, ENHANCE_NODE)
    score_ids = nodes_of(workflow, SCORE_NODE)
    if len(load_ids) != 1:
        res.add("workflow", False, f"expected exactly 1 LoadImage node, found {load_ids}")
        return
    if not save_ids:
        res.add("workflow", False, "no SaveImage node in the workflow")
        return
    if not enhance_ids:
        res.add("workflow", False, f"no {ENHANCE_NODE} node in the workflow")
        return
    # SaveImage nodes fed straight from the enhancer are the ones compared
    # with the reference; others (if any) only have to write a file.
    compared = [s for s in save_ids
                if is_link(workflow[s]["inputs"].get("images"))
                and workflow[s]["inputs"]["images"][0] in enhance_ids]
    if not compared:
        compared = list(save_ids)
    log(f"[workflow] LoadImage={load_ids} SaveImage={save_ids} (compared: {compared}) "
        f"{LOADER_NODE}={loader_ids} {ENHANCE_NODE}={enhance_ids} {SCORE_NODE}={score_ids}")

    model_input, model_opts = loader_model_input(object_info)
    run_tag = time.strftime("%Y%m%d_%H%M%S")
    score_seen = False
    score_reported = False
    for img in images:
        name = img.stem
        prompt = copy.deepcopy(workflow)
        prompt[load_ids[0]]["inputs"]["image"] = img.name
        if model_input and WEIGHTS_NAME in model_opts:
            for lid in loader_ids:
                prompt[lid]["inputs"][model_input] = WEIGHTS_NAME
        prefixes = {}
        for sid in save_ids:
            prefixes[sid] = f"cliplit_smoke/{run_tag}_{name}_n{sid}"
            prompt[sid]["inputs"]["filename_prefix"] = prefixes[sid]
        t0 = time.monotonic()
        prompt_id, err = submit(http, prompt)
        if prompt_id is None:
            res.add(f"image {name}", False, f"POST /prompt rejected:\n    {err}")
            continue
        if err:
            log(f"  note: {err}")
        entry = wait_history(http, server, prompt_id, args.prompt_timeout)
        dt = time.monotonic() - t0
        if entry is None:
            res.add(f"image {name}", False, f"no result after {args.prompt_timeout:.0f} s (prompt {prompt_id})")
            continue
        if (entry.get("status") or {}).get("status_str") != "success":
            res.add(f"image {name}", False, f"execution failed ({dt:.1f} s):\n    {execution_error_text(entry)}")
            continue
        files = saved_images(comfyui, entry, save_ids, prefixes)
        for sid in save_ids:
            if not files[sid]:
                res.add(f"image {name} SaveImage {sid}", False, "no file written")
                continue
            if sid not in compared:
                res.add(f"image {name} SaveImage {sid}", True, f"wrote {len(files[sid])} file(s), not compared")
                continue
            for f in files[sid]:
                ok, detail = compare(f, ref_dir / f"{name}.png")
                res.add(f"image {name} [{f.name}]", ok, f"{detail}, {dt:.1f} s")
        for sid in score_ids:
            shown = ((entry.get("outputs") or {}).get(sid) or {}).get("text") or []
            text = shown[0] if shown and isinstance(shown[0], str) else ""
            if SCORE_LINE.search(text):
                score_seen = True
                if not score_reported or args.verbose:
                    log(f"  {SCORE_NODE} {sid} shows: {text!r}")
                    score_reported = True
            else:
                res.add(f"image {name} {SCORE_NODE} {sid}", False,
                        f"its ui output in /history holds no scores: {json.dumps(shown)[:300]}")
    if score_ids and score_seen:
        res.add(f"{SCORE_NODE} shows its scores (ui text in /history)", True)


def score_texts_over_websocket(port: int, prompt: dict, timeout: float) -> dict[str, str] | None:
    """Queue ``prompt`` and collect the per-node texts the browser receives over the websocket
    (binary message type 3, what ComfyUI's frontend shows on the node). None without aiohttp."""
    try:
        import asyncio
        import struct
        import uuid

        import aiohttp
    except ImportError:
        return None

    async def collect() -> dict[str, str]:
        client_id, texts = str(uuid.uuid4()), {}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws?clientId={client_id}") as ws:
                await session.post(f"http://127.0.0.1:{port}/prompt", json={"prompt": prompt, "client_id": client_id})
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    msg = await ws.receive(timeout=timeout)
                    if msg.type == aiohttp.WSMsgType.BINARY and struct.unpack(">I", msg.data[:4])[0] == 3:
                        (n,) = struct.unpack(">I", msg.data[4:8])
                        texts[msg.data[8:8 + n].decode()] = msg.data[8 + n:].decode()
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        if json.loads(msg.data).get("type") in ("execution_success", "execution_error"):
                            break
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
        return texts

    return asyncio.run(collect())


def node_texts_with(python: str, port: int, prompt: dict, timeout: float) -> dict[str, str] | None:
    """score_texts_over_websocket() run by ComfyUI's own python, which has aiohttp."""
    code = ("import importlib.util, json, sys; spec = importlib.util.spec_from_file_location('smoke', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(json.dumps(m.score_texts_over_websocket(int(sys.argv[2]), json.load(sys.stdin), "
            "float(sys.argv[3]))))")
    r = subprocess.run([python, "-c", code, str(Path(__file__).resolve()), str(port), str(timeout)],
                       input=json.dumps(prompt), capture_output=True, text=True, timeout=timeout + 60)
    if r.returncode != 0:
        raise SmokeError(f"websocket check failed: {r.stderr[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_score_on_node(args, res, server, workflow, images):
    """The CLIP Light Score's scores reach the browser as the node's own text."""
    score_ids = nodes_of(workflow, SCORE_NODE)
    if not score_ids:
        return
    prompt = copy.deepcopy(workflow)
    for nid in nodes_of(prompt, "LoadImage"):
        prompt[nid]["inputs"]["image"] = images[0].name
    for lid in nodes_of(prompt, LOADER_NODE):
        prompt[lid]["inputs"]["model_name"] = WEIGHTS_NAME
    for sid in score_ids:
        prompt[sid]["inputs"]["heatmap_window"] = 0.45  # not a cached result: the node runs again
    for sid in nodes_of(prompt, "SaveImage"):
        prompt[sid]["inputs"]["filename_prefix"] = "cliplit_smoke/score_on_node"
    texts = node_texts_with(server.python, args.port, prompt, args.prompt_timeout)
    if texts is None:
        log(f"[skip] {SCORE_NODE} text on the node: aiohttp is not installed for {server.python}")
        return
    shown = {sid: texts.get(sid, "") for sid in score_ids}
    ok = all(SCORE_LINE.search(t) for t in shown.values())
    res.add(f"{SCORE_NODE} shows its scores on the node (websocket)", ok, json.dumps(shown)[:300])


def run_bad_model(http, server, res, object_info, workflow, images, timeout):
    loader_ids = nodes_of(workflow, LOADER_NODE)
    if not loader_ids:
        res.add("bad model name", False, f"no {LOADER_NODE} node in the workflow")
        return
    model_input, _ = loader_model_input(object_info)
    if model_input is None:
        # not a combo: take the first string input of the loader in the workflow
        for k, v in workflow[loader_ids[0]]["inputs"].items():
            if isinstance(v, str):
                model_input = k
                break
    if model_input is None:
        res.add("bad model name", False, f"cannot find the model-file input of {LOADER_NODE}")
        return
    prompt = copy.deepcopy(workflow)
    for lid in loader_ids:
        prompt[lid]["inputs"][model_input] = BAD_MODEL_NAME
    for nid in nodes_of(prompt, "LoadImage"):
        prompt[nid]["inputs"]["image"] = images[0].name
    for sid in nodes_of(prompt, "SaveImage"):
        prompt[sid]["inputs"]["filename_prefix"] = "cliplit_smoke/bad_model"
    prompt_id, err = submit(http, prompt)
    if prompt_id is None:
        clear = BAD_MODEL_NAME in err or "not in list" in err.lower() or "not found" in err.lower()
        res.add("bad model name rejected", clear, f"\n    {err}")
    else:
        entry = wait_history(http, server, prompt_id, timeout)
        if entry is None:
            res.add("bad model name", False, f"prompt accepted and no result after {timeout:.0f} s")
        elif (entry.get("status") or {}).get("status_str") == "success":
            res.add("bad model name", False, "prompt with a missing model file succeeded?!")
        else:
            text = execution_error_text(entry)
            res.add("bad model name fails at run time", "execution_error" in text, f"\n    {text}")
    try:
        status, body = http.get("/object_info")
        alive = status == 200 and isinstance(body, dict) and LOADER_NODE in body and server.alive()
    except (urllib.error.URLError, OSError) as e:
        alive, status = False, str(e)
    res.add("server alive after bad prompt", alive, f"GET /object_info -> {status}")


def enhance_only(workflow: dict, image_name: str, prefix: str, **enhance_inputs) -> dict:
    """The workflow without score nodes, on ``image_name``, with extra Backlit Enhance inputs."""
    prompt = remove_nodes(copy.deepcopy(workflow), SCORE_NODE)
    for nid in nodes_of(prompt, "LoadImage"):
        prompt[nid]["inputs"]["image"] = image_name
    for lid in nodes_of(prompt, LOADER_NODE):
        prompt[lid]["inputs"]["model_name"] = WEIGHTS_NAME
    for eid in nodes_of(prompt, ENHANCE_NODE):
        prompt[eid]["inputs"].update(enhance_inputs)
    for sid in nodes_of(prompt, "SaveImage"):
        prompt[sid]["inputs"]["filename_prefix"] = f"{prefix}_n{sid}"
    return prompt


def submit_photo(http, res, label, workflow, comfyui, data, name, tag, prefix, **enhance_inputs):
    """Copy backlit/<name>.jpg into ComfyUI's input folder and queue the enhance-only workflow on it:
    (prompt, prompt id), or None after reporting a missing photo / rejected prompt as ``label``."""
    src = data / "backlit" / f"{name}.jpg"
    if not src.is_file():
        res.add(label, False, f"missing {src}")
        return None
    input_name = f"cliplit_smoke_{tag}_{name}.jpg"
    shutil.copyfile(src, comfyui / "input" / input_name)
    prompt = enhance_only(workflow, input_name, prefix, **enhance_inputs)
    prompt_id, err = submit(http, prompt)
    if prompt_id is None:
        res.add(label, False, f"POST /prompt rejected:\n    {err}")
        return None
    return prompt, prompt_id


def run_full_tiled(http, server, res, workflow, comfyui, data, timeout):
    """One full-size photo vs reference_full; on CPU the automatic plan tiles it (1024-pixel tiles)."""
    name = "110_51093502029_o"
    prefix = f"cliplit_smoke/{time.strftime('%Y%m%d_%H%M%S')}_full_{name}"
    t0 = time.monotonic()
    queued = submit_photo(http, res, "full-size tiled image", workflow, comfyui, data, name, "full", prefix,
                          tile_size=0)
    if queued is None:
        return
    prompt, prompt_id = queued
    entry = wait_history(http, server, prompt_id, timeout)
    dt = time.monotonic() - t0
    if entry is None or (entry.get("status") or {}).get("status_str") != "success":
        res.add("full-size tiled image", False, execution_error_text(entry or {}))
        return
    save_ids = nodes_of(prompt, "SaveImage")
    files = saved_images(comfyui, entry, save_ids, {sid: f"{prefix}_n{sid}" for sid in save_ids})
    for sid in save_ids:
        for f in files[sid]:
            ok, detail = compare(f, data / "reference_full" / f"{name}.png")
            res.add(f"full-size {name}, automatic tiling [{f.name}]", ok, f"{detail}, {dt:.1f} s")


def run_interrupt(http, server, res, workflow, comfyui, data, timeout):
    """Cancel a long tiled run: ComfyUI must report it interrupted within about one tile."""
    queued = submit_photo(http, res, "interrupt", workflow, comfyui, data, "111_51093504404_o", "interrupt",
                          "cliplit_smoke/interrupt", tile_size=256, strength=0.95)  # strength: not a cached result
    if queued is None:
        return
    prompt_id = queued[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, q = http.get("/queue")
        if status == 200 and isinstance(q, dict) and any(prompt_id in map(str, item) for item in q.get("queue_running", [])):
            break
        time.sleep(0.2)
    time.sleep(6.0)  # let the enhancement get going (image load + a few tiles)
    http.post("/interrupt", {})
    t0 = time.monotonic()
    entry = wait_history(http, server, prompt_id, timeout)
    dt = time.monotonic() - t0
    if entry is None:
        res.add("interrupt", False, f"no result {timeout:.0f} s after POST /interrupt")
        return
    msgs = [m for m in (entry.get("status") or {}).get("messages") or [] if isinstance(m, list) and len(m) == 2]
    hit = [d for e, d in msgs if e == "execution_interrupted"]
    where = hit[0].get("node_type") if hit else None
    ok = bool(hit) and where == ENHANCE_NODE and dt < 10.0
    res.add("interrupt stops a tiled Backlit Enhance", ok,
            f"interrupted in {where}, {dt:.2f} s after POST /interrupt (tile 256 on a 2048x1536 photo)"
            if hit else f"not interrupted: {execution_error_text(entry)}")


def run_bad_file(http, server, res, workflow, comfyui, images, timeout):
    """A corrupt file in models/cliplit/ gives a clear node error; the server keeps running."""
    bad = comfyui / "models" / MODEL_FOLDER / "cliplit_smoke_corrupt.pth"
    bad.write_bytes(b"this is not a checkpoint, just text saved with the wrong extension\n" * 20)
    try:
        prompt = enhance_only(workflow, images[0].name, "cliplit_smoke/bad_file")
        for lid in nodes_of(prompt, LOADER_NODE):
            prompt[lid]["inputs"]["model_name"] = bad.name
        prompt_id, err = submit(http, prompt)
        if prompt_id is None:
            res.add("corrupt model file", False, f"POST /prompt rejected (file not listed?):\n    {err}")
            return
        entry = wait_history(http, server, prompt_id, timeout)
        text = execution_error_text(entry or {})
        first = text.splitlines()[1] if len(text.splitlines()) > 1 else text
        ok = entry is not None and "execution_error" in text and "not a checkpoint" in text
        res.add("corrupt model file gives a clear node error", ok, first.strip())
    finally:
        bad.unlink(missing_ok=True)
    status, _ = http.get("/system_stats")
    res.add("server alive after corrupt file", status == 200 and server.alive(), f"GET /system_stats -> {status}")


def run_child(cmd: list[str], env: dict) -> int:
    """Run the re-executed script; pass Ctrl-C / SIGTERM on to it so that it
    can stop its server, instead of killing it outright."""
    child = subprocess.Popen(cmd, env=env)

    def forward(signum, frame):
        if child.poll() is None:
            child.send_signal(signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue


def have_numpy_pillow() -> bool:
    try:
        import numpy  # noqa: F401
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", required=True, help="ComfyUI checkout (has main.py)")
    ap.add_argument("--python", help="python for ComfyUI (default: COMFYUI/.venv/bin/python if present, else this python)")
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--workflow", default="tests/fixtures/workflows/legacy_api.json",
                    help="API-format workflow (relative paths: cwd, then repo root)")
    ap.add_argument("--shared", default=str(REPO_ROOT.parent / "shared"),
                    help="shared/ folder holding data/ (default: ../shared beside the repo)")
    ap.add_argument("--pack", default=str(REPO_ROOT),
                    help="node pack folder to link into custom_nodes when none is installed there yet "
                         "(default: this repo; an installed copy, folder or link of any name, is used as it is)")
    ap.add_argument("--log", help="server log file (default: a file in the temp dir)")
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--prompt-timeout", type=float, default=600.0, help="seconds per prompt")
    ap.add_argument("--no-light-score", action="store_true",
                    help=f"drop {SCORE_NODE} nodes (and their consumers) from the workflow")
    ap.add_argument("--clip", choices=("tiny", "workflow"), default="tiny",
                    help="CLIP for the light score: 'tiny' = a tiny random-weights open_clip config written into "
                         "models/cliplit/ (works offline; default), 'workflow' = the workflow's own settings "
                         "(ViT-B-32 / openai: needs the weights or internet)")
    ap.add_argument("--quick", action="store_true",
                    help="skip the full-size tiled image and the interrupt test (about a minute each on CPU)")
    ap.add_argument("--skip-images", action="store_true", help="only start the server and check /object_info")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    comfyui = Path(args.comfyui).expanduser().resolve()
    if not (comfyui / "main.py").is_file():
        log(f"error: {comfyui} has no main.py")
        return 2
    python = args.python or (str(comfyui / ".venv" / "bin" / "python")
                             if (comfyui / ".venv" / "bin" / "python").exists() else sys.executable)
    if not args.skip_images and not have_numpy_pillow():
        # the comparison needs numpy + Pillow; ComfyUI's own python has both
        if os.environ.get("CLIPLIT_SMOKE_REEXEC") or os.path.abspath(python) == os.path.abspath(sys.executable):
            log(f"error: numpy and Pillow are needed for the comparison and {sys.executable} lacks them")
            return 2
        log(f"[setup] numpy/Pillow missing here; re-running under {python}")
        env = dict(os.environ, CLIPLIT_SMOKE_REEXEC="1")
        argv_full = list(sys.argv[1:] if argv is None else argv)
        if args.python is None:
            argv_full += ["--python", python]
        return run_child([python, str(Path(__file__).resolve())] + argv_full, env)
    shared = resolve_path(args.shared, base=REPO_ROOT)
    data = shared / "data"
    pack = Path(args.pack).expanduser().resolve()
    log_path = Path(args.log).resolve() if args.log else Path(tempfile.gettempdir()) / f"comfyui_smoke_{args.port}.log"

    res = Results()
    server = Server(comfyui, python, args.port, log_path)
    http = Http(f"http://127.0.0.1:{args.port}")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        workflow = None
        if not args.skip_images:
            workflow = load_api_workflow(resolve_path(args.workflow, base=REPO_ROOT))
            if args.no_light_score:
                workflow = remove_nodes(workflow, SCORE_NODE)
            elif args.clip == "tiny":
                use_tiny_clip(workflow)
        installed = link_pack(comfyui, pack)
        if args.clip == "tiny":
            write_tiny_clip(comfyui)
        link_weights(comfyui, data / "official_weights" / WEIGHTS_NAME)
        images = copy_inputs(comfyui, data / "backlit_small")

        server.start()
        t0 = time.monotonic()
        server.wait_ready(http, args.start_timeout)
        log(f"[server] ready after {time.monotonic() - t0:.1f} s")

        bad_import = check_import_log(log_path, installed.name)
        res.add("pack imported", not bad_import, "\n    ".join(bad_import)[-4000:])

        status, object_info = http.get("/object_info")
        if status != 200 or not isinstance(object_info, dict):
            res.add("GET /object_info", False, f"HTTP {status}")
            return 1
        missing = [n for n in REQUIRED_NODES if n not in object_info]
        res.add("nodes registered", not missing,
                f"missing {missing}" if missing else f"{len(object_info)} node types")
        for n in REQUIRED_NODES:
            if n in object_info:
                log(describe_node(n, object_info[n]))
        legacy = json.loads(LEGACY_INTERFACE.read_text(encoding="utf-8"))["nodes"]
        diffs = [d for n in REQUIRED_NODES if n in object_info
                 for d in interface_differences(n, object_info[n], legacy[n])]
        res.add("inputs and outputs as saved workflows know them", not diffs, "\n    ".join(diffs))
        model_input, opts = loader_model_input(object_info)
        if LOADER_NODE in object_info:
            res.add(f"{WEIGHTS_NAME} offered by {LOADER_NODE}", WEIGHTS_NAME in opts,
                    f"input {model_input!r} options {opts[:5]}")
        if missing or args.skip_images:
            return 0 if res.ok else 1

        run_images(args, http, server, res, object_info, workflow, images, comfyui, data / "reference_small")
        run_score_on_node(args, res, server, workflow, images)
        run_bad_model(http, server, res, object_info, workflow, images, args.prompt_timeout)
        run_bad_file(http, server, res, workflow, comfyui, images, args.prompt_timeout)
        if not args.quick:
            run_full_tiled(http, server, res, workflow, comfyui, data, args.prompt_timeout)
            run_interrupt(http, server, res, workflow, comfyui, data, args.prompt_timeout)
    except SmokeError as e:
        res.add("setup/server", False, str(e))
    except KeyboardInterrupt as e:
        res.add("interrupted", False, str(e))
    except (urllib.error.URLError, OSError) as e:
        res.add("connection", False, f"{e}\n--- log tail ---\n{tail(log_path)}")
    except Exception:  # noqa: BLE001 - report any bug here as a failure, still stop the server
        import traceback
        res.add("smoke script error", False, traceback.format_exc())
    finally:
        server.stop()
        passed = sum(ok for _, ok, _ in res.items)
        failed = len(res.items) - passed
        log("")
        log("=" * 60)
        log(f"ComfyUI smoke test: {'PASSED' if res.ok else 'FAILED'}  (server log: {log_path})")
        for name, ok, _ in res.items:
            if not ok:
                log(f"  failed: {name}")
        log(f"{passed} passed, {failed} failed")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
