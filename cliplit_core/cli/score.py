"""``python -m cliplit_core score``: CLIP Light Scores of image files.

Prints one JSON object per image, ``{"file": ..., "light_score": ...}`` (plus
``"heatmap": PATH`` with ``--heatmap DIR``), in input order. ``--model`` is our
``.safetensors`` holding a prompt pair (its metadata names the CLIP model) or an
authors' prompt ``.pth`` (then ``--clip-model`` / ``--clip-pretrained`` /
``--prompt-length`` describe it; the defaults are the authors': ViT-B-32, openai, 16).
Without ``--model`` the images are scored zero-shot, with two plain text prompts.

Exit status: 0 all scored, 1 some images could not be read (each reported on
stderr, the others still scored), 2 nothing could be done (bad model file, CLIP
weights unavailable, ...).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CLIPLITError, ImageReadError
from ..wording import COMMAND_LINE
from ..files.atomic import write_together
from ..files.images import list_images, read_image, save_image
from ..validation import BATCH_SIZE, PROMPT_LENGTH, argparse_type, check_number
from ..files.outputs import ManifestError, OurFiles, check_output_option, plan_outputs, prepare_output_dir

if TYPE_CHECKING:  # torch is imported when scoring runs: parsing the command line (--help) stays light
    import torch


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``score`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "score", help="CLIP Light Score of images (probability 'well-lit')",
        description="Print the CLIP Light Score (1 - S(I), probability 'well-lit' under the prompt pair, or under "
                    "zero-shot text prompts without --model) of each image as one JSON object per line.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--model", default=None, metavar="FILE",
                   help="our .safetensors with a prompt pair, or the authors' prompt_pair.pth (default: zero-shot "
                        "text prompts, 'a backlit photo with a dark underexposed subject' / 'a well-lit photo')")
    p.add_argument("--clip-model", default=None, metavar="NAME|CONFIG.json",
                   help="open_clip model name or model-config JSON (default: from the file's metadata, else ViT-B-32)")
    p.add_argument("--clip-pretrained", default=None, metavar="TAG|FILE|none",
                   help="open_clip pretrained tag, local weights file, or 'none' for random weights "
                        "(default: from the file's metadata, else openai)")
    p.add_argument("--prompt-length", type=argparse_type(PROMPT_LENGTH), default=None, metavar="N",
                   help="number of prompt tokens (default: from the file's metadata, else 16)")
    p.add_argument("--heatmap", default=None, metavar="DIR",
                   help="also write DIR/<stem>_light.png, a spatial light-score map of the image's size "
                        "(one extra CLIP pass per window: 9 on a square photo, 15 on a 4:3 one, at most 32 "
                        "whatever the shape)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--batch-size", type=argparse_type(BATCH_SIZE), default=16, metavar="N", help="heatmap windows per CLIP call (default 16; each image is scored on its own)")
    p.set_defaults(func=run)
    return p


def _read_rgb(path: Path) -> torch.Tensor:
    """[3, H, W] float32 in 0..1 (gray expanded, alpha dropped)."""
    import torch

    arr = read_image(path)
    c = arr.shape[2]
    if c in (1, 2):
        arr = np.repeat(arr[..., :1], 3, axis=2)
    elif c == 4:
        arr = arr[..., :3]
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


def _device(name: str | None) -> torch.device:
    from ..engine.memory import resolve_device

    return resolve_device(name)


def load_scorer(model_file=None, clip_model=None, clip_pretrained=None, prompt_length=None, device="cpu"):
    """(``[2, embed_dim]`` text features, backbone): from the prompt pair in ``model_file``,
    or from the zero-shot text prompts when it is None."""
    import torch

    from ..clip.backbone import DEFAULT_PRETRAINED, DEFAULT_SCORE_MODEL, load_backbone
    from ..clip.prompts import PromptPair, zero_shot_text_features

    if model_file is None:
        backbone = load_backbone(clip_model or DEFAULT_SCORE_MODEL, clip_pretrained or DEFAULT_PRETRAINED,
                                 device=device)
        return zero_shot_text_features(backbone), backbone
    pair = PromptPair.load(model_file, prompt_length=prompt_length, clip_model=clip_model,
                           clip_pretrained=clip_pretrained)
    backbone = load_backbone(pair.clip_model, pair.clip_pretrained, device=device)
    pair.check_fits(backbone)
    pair = pair.to(backbone.device).requires_grad_(False)
    with torch.no_grad():
        return pair.text_features(backbone), backbone


def run(args) -> int:
    """Score the inputs; returns the exit status (raises CLIPLITError for fatal problems)."""
    from ..clip import light_scores

    check_number(BATCH_SIZE, args.batch_size)
    if args.prompt_length is not None:
        check_number(PROMPT_LENGTH, args.prompt_length)
    if args.prompt_length is not None and args.model is None:
        raise CLIPLITError("--prompt-length describes a prompt file: it needs --model")
    heat_dir = check_output_option(args.heatmap, "--heatmap") if args.heatmap else None
    ours = OurFiles(heat_dir) if heat_dir is not None else None
    paths, problems = list_images(args.inputs, skip=ours.owns if ours else None)
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    if ours is not None and ours.warning:
        print(f"warning: {ours.warning}", file=sys.stderr)
    if not paths:
        raise CLIPLITError("no input images")
    device = _device(args.device)
    heat_files: dict[Path, Path] = {}
    if heat_dir is not None:
        prepare_output_dir(heat_dir, "--heatmap")
        plan, clashes = plan_outputs(paths, heat_dir, ["_light.png"], ours=ours)
        for msg in clashes:
            print(f"warning: {msg}", file=sys.stderr)
        heat_files = {planned.src: planned.main for planned in plan}
    model_path = Path(args.model) if args.model is not None else None
    if model_path is not None and not model_path.exists():
        raise CLIPLITError(f"{model_path}: model file not found")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text, backbone = load_scorer(model_path, args.clip_model, args.clip_pretrained, args.prompt_length,
                                         device)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except CLIPLITError:
        raise
    except (RuntimeError, ValueError, OSError) as e:  # anything open_clip / torch raise unexpectedly
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise CLIPLITError(f"cannot set up the CLIP scorer: {type(e).__name__}: {first}") from None
    failed = len(problems)

    # one image in memory at a time, scored (and its heatmap made) by the same code as the node's
    for path in paths:
        try:
            im = _read_rgb(path)[None]
        except ImageReadError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        result = light_scores.score_batch(im, text, backbone, light_scores.plan(im, heatmap=heat_dir is not None),
                                          batch_size=args.batch_size)
        del im
        rec = {"file": str(path), "light_score": round(float(result.scores[0]), 6)}
        if heat_dir is not None:
            out = heat_files[path]
            try:  # the file shows where the image looks well lit (docs/heatmap.md): 1 - backlit-ness
                pixels = (1.0 - result.backlit_heatmap[0]).clamp(0, 1).numpy()[..., None]
                write_together([(out, lambda tmp: save_image(tmp, pixels, fmt="png"))], record=ours.record)
            except ManifestError as e:  # a map it cannot record is not written
                print(f"error: {e}; stopped", file=sys.stderr)
                failed += 1
                break
            except OSError as e:
                print(f"error: cannot write {out}: {e.strerror or e}; stopped", file=sys.stderr)
                failed += 1
                break
            rec["heatmap"] = str(out)
        print(json.dumps(rec), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m cliplit_core.cli.score ...``)."""
    parser = argparse.ArgumentParser(prog="python -m cliplit_core")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIPLITError as e:
        print(f"error: {e.worded(COMMAND_LINE)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
