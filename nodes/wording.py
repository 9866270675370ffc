"""The nodes' own words: Load CLIP-LIT's built-in list entries, and how the nodes phrase the steps
the core's messages ask of the user (cliplit_core/wording.py): which folder to put a file in, which
list entry to choose, which input to set; never a command-line option."""
from __future__ import annotations

from cliplit_core import wording as _wording

OFFICIAL = "official (download if missing)"  # model_name's entry for the authors' released model
NO_PROMPT_FILE = "(none: from model file, else zero-shot)"  # prompt_pair's entry for no separate file
LOADER = "Load CLIP-LIT"

NODES = _wording.HostWording("ComfyUI", {
    "named_file_by_hand": ", then queue the workflow again with model_name '{choice}' (or choose the file itself "
                          "in model_name; press R in ComfyUI to refresh the lists)",
    "named_file_mismatch": "; delete it and queue the workflow again to download the authors' file, or choose it "
                           "by its file name in model_name to use it as your own weights",
    "clip_weights_into_folder": f", then put it into {{folder}} and type its file name into clip_pretrained in "
                                f"{LOADER}",
    "clip_weights_path": f", then type its full path into clip_pretrained in {LOADER}",
    "check_clip_model": f"; check clip_model in {LOADER} (the CLIP model these weights were made for)",
    "use_clip_model": f": set clip_model in {LOADER} to {{model!r}}",
}, choices={"official": OFFICIAL})


def node_words(error: BaseException) -> str:
    """``error``'s message in the nodes' words."""
    return _wording.worded(error, NODES)
