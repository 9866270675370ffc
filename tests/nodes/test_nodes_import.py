"""The pack imports both ways (ComfyUI's package-with-a-dash and plain ``import nodes``), never
shadows ComfyUI's own ``nodes`` / ``comfy`` modules, and its ComfyUI code path works against
stand-ins of comfy.model_management / comfy.utils / folder_paths (no ComfyUI needed)."""
from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from pathlib import Path
from tests.support.nodes_support import OFFICIAL_WEIGHTS, REPO, require, shown_texts

import nodes
from nodes import comfy_env

IDS = {"CLIPLITLoader": "Load CLIP-LIT", "CLIPLITBacklitEnhance": "Backlit Enhance",
       "CLIPLITLightScore": "CLIP Light Score"}
PACK_FILES = sorted((REPO / "nodes").glob("*.py")) + [REPO / "__init__.py"]


def test_plain_import_exposes_the_three_nodes():
    assert set(nodes.NODE_CLASS_MAPPINGS) == set(IDS)
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS == IDS


def _node_list(pack):
    """What ComfyUI registers from a V3 pack: comfy_entrypoint() -> extension -> get_node_list()."""
    extension = asyncio.run(pack.comfy_entrypoint())
    return asyncio.run(extension.get_node_list())


def test_comfy_entrypoint_lists_the_three_nodes():
    listed = {cls.GET_SCHEMA().node_id: cls.GET_SCHEMA().display_name for cls in _node_list(nodes)}
    assert listed == IDS


def _load_like_comfyui(folder, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_import_as_package_with_a_dash_like_comfyui(tmp_path):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    link = custom_nodes / "ComfyUI-CLIP-LIT"
    link.symlink_to(REPO, target_is_directory=True)
    name = str(link).replace(".", "_x_")  # ComfyUI's module name: the folder's full path
    comfy_nodes = type(sys)("nodes")  # stands for ComfyUI's nodes.py
    saved = {k: sys.modules.get(k) for k in ("nodes", "comfy", "folder_paths")}
    path_before = list(sys.path)
    sys.modules["nodes"] = comfy_nodes
    try:
        pack = _load_like_comfyui(str(link), name)
        assert sys.modules["nodes"] is comfy_nodes  # ComfyUI's nodes module untouched
        assert sys.path == path_before  # nothing inserted
        assert not hasattr(pack, "NODE_CLASS_MAPPINGS")  # ComfyUI would register V1-style instead of V3
        by_id = {cls.GET_SCHEMA().node_id: cls for cls in _node_list(pack)}
        assert {k: c.GET_SCHEMA().display_name for k, c in by_id.items()} == IDS
        enhance_cls = by_id["CLIPLITBacklitEnhance"]
        assert enhance_cls.__module__ == f"{name}.nodes.enhance"
        core = sys.modules["cliplit_core.engine.inference"]  # the pack's own core, under its own name
        assert Path(core.__file__).resolve().is_relative_to(REPO.resolve())
        assert "comfy" not in sys.modules or sys.modules["comfy"] is saved["comfy"]
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[k]


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node, node.module or "", node.level


@pytest.mark.parametrize("path", PACK_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_pack_never_imports_itself_absolutely(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
                and isinstance(n.value, ast.Name) and n.value.id == "sys"], "the pack must not touch sys.path"
    for node, module, level in _imports(path):
        top = module.split(".")[0]
        if level == 0:
            assert top != "nodes", f"{path.name}:{node.lineno}: absolute 'import nodes' is ComfyUI's nodes.py"
            if top in ("tests", "trainer", "benchmarks", "tools"):
                assert path.name == "comfy_env.py" and module == "tests.support", \
                    f"{path.name}:{node.lineno}: the nodes import only the core and ComfyUI"
        if top in ("comfy", "folder_paths", "comfy_extras", "comfy_api") and level == 0:
            assert path.name == "comfy_env.py", f"{path.name}:{node.lineno}: only comfy_env.py talks to ComfyUI"


def test_every_input_has_a_tooltip_and_outputs_are_described():
    for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"}
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                assert isinstance(entry, tuple) and len(entry) == 2, (node_id, name)
                assert entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert cls.CATEGORY == "image/enhance/CLIP-LIT"
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
        assert all(cls.OUTPUT_TOOLTIPS) and cls.DESCRIPTION
        assert issubclass(cls, comfy_env.io.ComfyNode) and "execute" in vars(cls)
    assert list(nodes.CLIPLITLoader.RETURN_TYPES) == ["CLIPLIT_MODEL"]
    assert list(nodes.CLIPLITBacklitEnhance.RETURN_TYPES) == ["IMAGE", "MASK"]
    assert list(nodes.CLIPLITLightScore.RETURN_TYPES) == ["FLOAT", "STRING", "MASK"]
    assert nodes.CLIPLITBacklitEnhance.INPUT_TYPES()["required"]["strength"][1]["default"] == 1.0


# a measured figure: "9x", "2.3x", "40 dB", "99.9 %", "15 %"
MEASURED = re.compile(r"\d(\.\d+)?\s*(x\b|×|dB\b|%)")


def test_texts_shown_in_comfyui_hold_no_measured_figures():
    """Speed and accuracy figures live in docs/performance.md (measured there), not in tooltips."""
    for where, text in shown_texts().items():
        assert not MEASURED.search(text), f"{where}: {MEASURED.search(text).group(0)!r} in {text!r}"


# ----------------------------------------------------------------------------- ComfyUI code path
FAKE_MM = '''
import enum, torch
class VRAMState(enum.Enum):
    DISABLED = 0; NO_VRAM = 1; LOW_VRAM = 2; NORMAL_VRAM = 3; HIGH_VRAM = 4; SHARED = 5
vram_state = VRAMState.DISABLED
OOM_EXCEPTION = torch.cuda.OutOfMemoryError
FREE = 1 << 40
calls = []
def get_torch_device(): return torch.device("cpu")
def unet_offload_device(): return torch.device("cpu")
def intermediate_device(): return torch.device("cpu")
def free_memory(memory_required, device, keep_loaded=[]): calls.append(["free_memory", int(memory_required), str(device)])
def get_free_memory(dev=None, torch_free_too=False): return FREE
def soft_empty_cache(force=False): calls.append(["soft_empty_cache"])
class InterruptProcessingException(Exception): pass
interrupt_processing = False
def interrupt_current_processing(value=True):
    global interrupt_processing
    interrupt_processing = value
def throw_exception_if_processing_interrupted():
    global interrupt_processing
    if interrupt_processing:
        interrupt_processing = False
        raise InterruptProcessingException()
'''
FAKE_UTILS = '''
PROGRESS_BAR_HOOK = None
class ProgressBar:  # as in ComfyUI 0.8.0
    def __init__(self, total, node_id=None):
        self.total = total; self.current = 0; self.hook = PROGRESS_BAR_HOOK; self.node_id = node_id
    def update_absolute(self, value, total=None, preview=None):
        if total is not None: self.total = total
        if value > self.total: value = self.total
        self.current = value
        if self.hook is not None: self.hook(self.current, self.total, preview, node_id=self.node_id)
    def update(self, value): self.update_absolute(self.current + value)
'''
FAKE_FOLDER_PATHS = '''
import os
models_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
folder_names_and_paths = {}
def get_folder_paths(name): return folder_names_and_paths[name][0][:]
def get_filename_list(name):
    paths, exts = folder_names_and_paths[name]
    out = set()
    for p in paths:
        for root, _, files in os.walk(p, followlinks=True):
            for f in files:
                if not exts or os.path.splitext(f)[1].lower() in exts:
                    out.add(os.path.relpath(os.path.join(root, f), p).replace(os.sep, "/"))
    return sorted(out)
def get_full_path(name, filename):
    for p in folder_names_and_paths[name][0]:
        f = os.path.join(p, filename)
        if os.path.isfile(f): return f
    return None
'''
FAKE_SERVER = '''
class PromptServer:
    instance = None
    def __init__(self): self.texts = []
    def send_progress_text(self, text, node_id, sid=None): self.texts.append([node_id, text])
PromptServer.instance = PromptServer()
'''
DRIVER = '''
import asyncio, importlib.util, json, os, sys
root = sys.argv[1]
sys.path.insert(0, root)                      # ComfyUI puts its root on sys.path
import nodes as comfy_nodes                    # ComfyUI's nodes.py
import folder_paths, torch
import comfy.model_management as mm, comfy.utils as cu
folder_paths.folder_names_and_paths["cliplit"] = (["/extra/cliplit"], set())  # from extra_model_paths.yaml
pack_dir = os.path.join(root, "custom_nodes", "ComfyUI-CLIP-LIT")
name = pack_dir.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, os.path.join(pack_dir, "__init__.py"))
pack = importlib.util.module_from_spec(spec); sys.modules[name] = pack; spec.loader.exec_module(pack)
out = {"comfy_nodes_intact": sys.modules["nodes"] is comfy_nodes and comfy_nodes.COMFY_SENTINEL,
       "folders": folder_paths.folder_names_and_paths["cliplit"][0],
       "exts": sorted(folder_paths.folder_names_and_paths["cliplit"][1])}
out["v1_mappings"] = hasattr(pack, "NODE_CLASS_MAPPINGS")
M = {c.GET_SCHEMA().node_id: c for c in asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())}
out["choices"] = M["CLIPLITLoader"].INPUT_TYPES()["required"]["model_name"][1]["options"]
model = M["CLIPLITLoader"].execute("enhancement_model.pth")[0]
x = torch.rand(1, 80, 100, 3)
whole, light = M["CLIPLITBacklitEnhance"].execute(model, x)
mm.FREE = 2 * 200 * 4 * 50 * 50        # ComfyUI says little memory is free: tiles
updates = []
cu.PROGRESS_BAR_HOOK = lambda v, t, p, node_id=None: (updates.append([v, t]), mm.throw_exception_if_processing_interrupted())
tiled, light2 = M["CLIPLITBacklitEnhance"].execute(model, x)
out["tiled_vs_whole"] = float((light2 - light).abs().max())
out["updates"] = list(updates)
out["calls"] = list(mm.calls)
updates.clear()
def hook(v, t, p, node_id=None):      # the user presses Cancel during the 2nd tile
    updates.append([v, t])
    if len(updates) == 2:
        mm.interrupt_current_processing()
    mm.throw_exception_if_processing_interrupted()
cu.PROGRESS_BAR_HOOK = hook
try:
    M["CLIPLITBacklitEnhance"].execute(model, x, strength=0.5)
    out["interrupt"] = "not interrupted"
except mm.InterruptProcessingException:
    out["interrupt"] = updates
try:
    M["CLIPLITLoader"].execute("enhancement_model.pth", prompt_pair="nope.pth")
except Exception as e:
    out["error_type"] = type(e).__module__ + "." + type(e).__qualname__
    out["error"] = str(e)
sys.modules[name + ".nodes.comfy_env"].show_text_on_node("7", "image 1: 0.5000")
import server
out["node_texts"] = server.PromptServer.instance.texts
print("RESULT" + json.dumps(out))
'''


STANDIN_API = (REPO / "tests" / "support" / "comfy_api_standin.py").read_text(encoding="utf-8")


def fake_comfyui(root, version="0.8.0", comfy_api=STANDIN_API):
    """A ComfyUI folder of stand-ins with the pack linked into custom_nodes/ (``comfy_api``
    None: a ComfyUI from before the V3 node API)."""
    (root / "comfy").mkdir(parents=True)
    (root / "comfy" / "__init__.py").write_text("")
    (root / "comfy" / "model_management.py").write_text(FAKE_MM)
    (root / "comfy" / "utils.py").write_text(FAKE_UTILS)
    (root / "folder_paths.py").write_text(FAKE_FOLDER_PATHS)
    (root / "server.py").write_text(FAKE_SERVER)
    (root / "comfyui_version.py").write_text(f"__version__ = {version!r}\n")
    (root / "nodes.py").write_text("COMFY_SENTINEL = True\nNODE_CLASS_MAPPINGS = {}\n")
    if comfy_api is not None:
        (root / "comfy_api" / "latest").mkdir(parents=True)
        (root / "comfy_api" / "__init__.py").write_text("")
        (root / "comfy_api" / "latest" / "__init__.py").write_text(comfy_api)
    (root / "custom_nodes").mkdir()
    (root / "custom_nodes" / "ComfyUI-CLIP-LIT").symlink_to(REPO, target_is_directory=True)
    return root


def test_comfyui_code_path_with_stand_ins(tmp_path):
    """V3 registration only, model folder registration (keeping extra_model_paths.yaml entries),
    free_memory first, tiles from ComfyUI's free memory, ProgressBar updates, Cancel within one
    tile, node errors, text shown on a node."""
    require(OFFICIAL_WEIGHTS)
    root = fake_comfyui(tmp_path / "ComfyUI")
    (root / "models" / "cliplit").mkdir(parents=True)
    (root / "models" / "cliplit" / "enhancement_model.pth").symlink_to(OFFICIAL_WEIGHTS)
    (root / "driver.py").write_text(textwrap.dedent(DRIVER))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(root / "driver.py"), str(root)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["comfy_nodes_intact"] is True
    assert out["v1_mappings"] is False
    assert out["node_texts"] == [["7", "image 1: 0.5000"]]
    assert out["folders"] == ["/extra/cliplit", str(root / "models" / "cliplit")]
    assert {".pth", ".safetensors"} <= set(out["exts"])
    assert "enhancement_model.pth" in out["choices"]
    assert out["tiled_vs_whole"] < 1e-4
    assert out["calls"] and out["calls"][0][0] == "free_memory" and out["calls"][0][2] == "cpu"
    assert len(out["updates"]) > 2 and out["updates"][-1][0] == out["updates"][-1][1]  # tiles, bar full
    assert out["interrupt"] != "not interrupted" and len(out["interrupt"]) == 2  # stopped in the 2nd tile
    assert out["error_type"] == "CLIP-LIT.CLIPLITNodeError"
    assert out["error"].startswith("Load CLIP-LIT: prompt-pair file 'nope.pth' not found")


OLD_COMFYUI_DRIVER = '''
import importlib.util, json, logging, os, sys
root = sys.argv[1]
sys.path.insert(0, root)
records = []
class Keep(logging.Handler):
    def emit(self, record): records.append([record.levelname, record.getMessage()])
logging.getLogger().addHandler(Keep()); logging.getLogger().setLevel(logging.DEBUG)
pack_dir = os.path.join(root, "custom_nodes", "ComfyUI-CLIP-LIT")
name = pack_dir.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, os.path.join(pack_dir, "__init__.py"))
pack = importlib.util.module_from_spec(spec); sys.modules[name] = pack; spec.loader.exec_module(pack)
print("RESULT" + json.dumps({"records": records, "entrypoint": hasattr(pack, "comfy_entrypoint"),
                             "mappings": getattr(pack, "NODE_CLASS_MAPPINGS", None)}))
'''


@pytest.mark.parametrize("comfy_api, why", [
    (None, "it has no V3 node API (No module named 'comfy_api')"),
    (STANDIN_API + "\nui = types.SimpleNamespace()\n", "its comfy_api.latest lacks ui.PreviewText"),
], ids=["no comfy_api", "no PreviewText"])
def test_too_old_comfyui_gets_one_clear_line_and_starts(tmp_path, comfy_api, why):
    root = fake_comfyui(tmp_path / "ComfyUI", version="0.3.40", comfy_api=comfy_api)
    (root / "driver.py").write_text(textwrap.dedent(OLD_COMFYUI_DRIVER))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(root / "driver.py"), str(root)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    warnings = [msg for level, msg in out["records"] if level in ("WARNING", "ERROR", "CRITICAL")]
    assert warnings == [f"CLIP-LIT nodes not loaded: they need ComfyUI {comfy_env.MIN_COMFYUI} or newer, this "
                        f"ComfyUI is 0.3.40 and {why}; update ComfyUI"]
    assert "Traceback" not in proc.stderr
    assert out["mappings"] == {} and out["entrypoint"] is False  # ComfyUI goes on, registering nothing


def test_minimum_comfyui_is_declared_for_the_registry():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    comfy = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["comfy"]
    assert comfy["requires-comfyui"] == f">={comfy_env.MIN_COMFYUI}"


def test_stand_in_refuses_what_the_oldest_supported_comfyui_refuses():
    """ComfyUI 0.3.48 refuses a node whose input and output ids collide (e.g. input and output 'image')."""
    from tests.support import comfy_api_standin as standin

    class Clash(standin.io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return standin.io.Schema(node_id="Clash", inputs=[standin.io.Image.Input("image")],
                                     outputs=[standin.io.Image.Output("image")])

    with pytest.raises(ValueError, match="ids must all differ"):
        Clash.GET_SCHEMA()
    for cls in nodes.NODES:
        cls.GET_SCHEMA()
