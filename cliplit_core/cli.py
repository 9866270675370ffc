"""Command line: ``python -m cliplit_core {enhance,convert,score} ...``."""
from __future__ import annotations

import argparse
import sys

from .errors import CLIPLITError
from .imageio import OUTPUT_FORMATS

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
                       description="Enhance backlit photos with a CLIP-LIT model; writes OUTDIR/<stem>.<format> "
                                   "(PNG by default, 16-bit when the input is), keeping the input's colour "
                                   "profile and EXIF.")
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
                   help="preview mode: light map predicted at 1/4 resolution and calibrated on exact windows "
                        "(the network about 9x faster on a CPU at 3 MP, 17x on CPUs with native bfloat16; a whole "
                        "run on one photo gains less, the start-up stays; about 40 dB from the exact result)")
    p.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS), help="output file type (default png)")
    p.add_argument("--bits", default="auto", choices=("auto", "8", "16"),
                   help="bits per channel of the results: auto (default) = 16 for 16-bit inputs written as PNG, "
                        "else 8; 16 needs --format png")
    p.add_argument("--quality", type=int, default=95, help="JPEG / WebP quality 1..100 (default 95)")
    p.add_argument("--strip-metadata", action="store_true",
                   help="do not copy the input's colour profile (ICC) and EXIF into the result")
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

    if args.bits == "16" and not OUTPUT_FORMATS[args.format].sixteen_bit:
        raise CLIPLITError(f"--bits 16 needs --format png (not {args.format})")
    if not 1 <= args.quality <= 100:
        raise CLIPLITError(f"--quality must be 1..100, got {args.quality}")

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
