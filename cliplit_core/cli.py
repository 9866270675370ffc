"""Command line: ``python -m cliplit_core {enhance,convert,score} ...``."""
from __future__ import annotations

import argparse
import sys

from .errors import CLIPLITError

DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16"}


def parse_tile(text: str) -> int | str | None:
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    if t in ("none", "0", "whole"):
        return None
    try:
        v = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile must be 'auto', 'none' or a positive integer, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"--tile must be positive, got {v}")
    return v


def _add_enhance(sub) -> None:
    p = sub.add_parser("enhance", help="enhance backlit photos",
                       description="Enhance backlit photos with a CLIP-LIT model; writes OUTDIR/<stem>.png (8-bit).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (png, jpg, webp, bmp, tiff)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("--weights", default="official",
                   help="'official' (the authors' released model, downloaded and cached once) "
                        "or a .pth / .safetensors file (default: official)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="1 = the authors' result, 0 = unchanged, in between or a little beyond (default 1)")
    p.add_argument("--tile", type=parse_tile, default="auto",
                   help="tile edge in pixels, 'auto' (whole image if it fits in memory) or 'none' (default auto); "
                        "tiling is exact")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=sorted(DTYPES),
                   help="compute precision; auto (default) = float16 on CUDA, float32 elsewhere")
    p.add_argument("--fast", action="store_true",
                   help="preview mode: light map predicted at reduced resolution, upsampled edge-aware")
    p.add_argument("--save-light", action="store_true", help="also write <stem>_light.png (the light map)")
    p.set_defaults(func=_run_enhance)


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert weights to our .safetensors format",
                       description="Convert an authors' .pth (or any readable CLIP-LIT weights) to .safetensors.")
    p.add_argument("src", help="source weights (.pth or .safetensors)")
    p.add_argument("dst", help="destination .safetensors file")
    p.add_argument("--padding", choices=("reflect", "zero"), default=None,
                   help="padding variant to record (default: the source's, reflect for the authors' files)")
    p.set_defaults(func=_run_convert)


def _run_convert(args) -> int:
    from .checkpoint import convert

    w = convert(args.src, args.dst, padding=args.padding)
    parts = ["enhancer"] if w.enhancer else []
    if w.prompt_pair is not None:
        parts.append(f"prompt pair {tuple(w.prompt_pair.shape)}")
    print(f"wrote {args.dst} ({', '.join(parts)}; padding {w.padding})")
    return 0


def _run_enhance(args) -> int:
    from .enhance_files import enhance_files

    return enhance_files(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cliplit_core",
                                     description="CLIP-LIT backlit image enhancement (core command line).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{enhance,convert,score}")
    _add_enhance(sub)
    _add_convert(sub)
    try:
        from . import cli_score
    except ImportError:
        cli_score = None
    if cli_score is not None:
        cli_score.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIPLITError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
