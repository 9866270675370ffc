"""Command line: ``python -m cliplit_core {enhance,convert,score} ...``."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from ..command_line import OneLineParser as _Parser  # one-line errors, negative numbers as values
from ..errors import CLIPLITError
from ..wording import COMMAND_LINE
from ..files.images import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, OUTPUT_FORMATS, PNG_AUTO, PngCompression,
                      list_images)
from ..engine.precision import Precision
from ..engine.tile_setting import TileSetting
from ..validation import JOBS, MAX_MEGAPIXELS, QUALITY, STRENGTH, OptionError, argparse_type


def parsed_by(parse, choices: str):
    """An argparse ``type=``: ``parse(text)`` (a tagged value's parser), with argparse's one-line
    error naming the ``choices`` when it raises OptionError."""
    def parse_text(text: str):
        try:
            return parse(text)
        except OptionError:
            raise argparse.ArgumentTypeError(f"must be {choices}, got {text!r}") from None
    parse_text.__name__ = parse.__qualname__  # argparse names the type in some messages
    return parse_text


parse_tile = parsed_by(TileSetting.parse, TileSetting.describe())            # --tile
parse_precision = parsed_by(Precision.parse, Precision.describe_choices())  # --dtype
parse_png_compression = parsed_by(PngCompression.parse, PngCompression.describe())  # --png-compression


def _add_enhance(sub) -> None:
    p = sub.add_parser("enhance", help="enhance backlit photos",
                       description="Enhance backlit photos with a CLIP-LIT model; writes OUTDIR/<stem>.<format> "
                                   "(PNG by default, 16-bit when the input is), keeping the input's colour "
                                   "profile and EXIF.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=f"image files or folders ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}; single images only, "
                        "animations and multi-page files are refused)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the results; never overwrites an input or a file this program did not write "
                        "(such clashes get <stem>_enhanced / <stem>_2 ... instead, with a warning)")
    p.add_argument("--weights", default="official",
                   help="'official' (the authors' released model, downloaded and cached once) "
                        "or a .pth / .safetensors file (default: official)")
    p.add_argument("--strength", type=argparse_type(STRENGTH), default=1.0,
                   help="1 = the authors' result, 0 = unchanged, 0..2 (default 1)")
    p.add_argument("--tile", type=parse_tile, default="auto",
                   help="tile edge in pixels, 'auto' or 0 (whole image if it fits in memory) or 'none' (default "
                        "auto); tiling is exact")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)")
    p.add_argument("--dtype", default="auto", type=parse_precision, metavar="{" + ",".join(Precision.choices()) + "}",
                   help="compute precision: " + "; ".join(f"{p.value} = {p.description}" for p in Precision)
                        + " (default auto)")
    p.add_argument("--fast", action="store_true",
                   help="preview mode: light map predicted at 1/4 resolution and calibrated on exact windows "
                        "(much faster on big photos, slightly different from the exact result; a whole run on one "
                        "photo gains less, the start-up stays; measured figures: docs/performance.md)")
    p.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS), help="output file type (default png)")
    p.add_argument("--bits", default="auto", choices=("auto", "8", "16"),
                   help="bits per channel of the results: auto (default) = 16 for 16-bit inputs written as PNG, "
                        "else 8; 16 needs --format png")
    p.add_argument("--quality", type=argparse_type(QUALITY), default=95, help="JPEG / WebP quality 1..100 (default 95)")
    p.add_argument("--png-compression", type=parse_png_compression, default=PNG_AUTO, metavar="auto|LEVEL",
                   help="how PNG results are compressed: auto (default: 8-bit PNGs with zlib's run-length "
                        "strategy, about the size of level 4 and faster on photos; 16-bit at level 4) or a "
                        "zlib level, 0 (none, fastest, largest) .. 9 (smallest, slowest; ComfyUI's SaveImage uses "
                        "4); the pixels are the same with every setting")
    p.add_argument("--jobs", type=argparse_type(JOBS), default=None, metavar="N",
                   help="images in flight in a folder run: the next images are read and finished ones written "
                        "while the network runs, at most N - 1 read ahead of the one being enhanced "
                        "(default: the CPU cores; 1 = one image after another). The files are the same. A pipelined "
                        "run sets OMP_WAIT_POLICY=PASSIVE unless you set it")
    p.add_argument("--max-pixels", type=argparse_type(MAX_MEGAPIXELS), default=DEFAULT_MAX_PIXELS / 1e6,
                   metavar="MEGAPIXELS",
                   help=f"refuse images larger than this (default {DEFAULT_MAX_PIXELS / 1e6:g}, i.e. 1 gigapixel; "
                        "the message says how much memory a larger one needs)")
    p.add_argument("--strip-metadata", action="store_true",
                   help="do not copy the input's colour profile (ICC) and EXIF into the result")
    p.add_argument("--save-light", action="store_true", help="also write <stem>_light.png (the light map)")
    v = p.add_argument_group("video files (mp4, mov, mkv, avi, webm, m4v; audio is copied unchanged)")
    v.add_argument("--temporal-smoothing", type=float, default=0.0, metavar="SIGMA",
                   help="smooth the light maps over SIGMA frames (Gaussian, never across a scene cut; "
                        "removes flicker); 0 = off (default)")
    v.add_argument("--video-codec", default="h264", choices=("h264", "h265", "lossless"),
                   help="h264 (default), h265, or lossless (FFV1 in .mkv)")
    v.add_argument("--crf", type=int, default=None,
                   help="h264 / h265 quality, 0..51, lower is better (default 18 for h264, 22 for h265)")
    p.set_defaults(func=_run_enhance)


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert weights to our .safetensors format",
                       description="Convert an authors' .pth (or any readable CLIP-LIT weights) to .safetensors.")
    p.add_argument("src", help="source weights (.pth or .safetensors)")
    p.add_argument("dst", help="destination .safetensors file")
    p.add_argument("--padding", choices=("reflect", "zero"), default=None,
                   help="padding variant to record (default: the source's, reflect for the authors' files)")
    p.add_argument("--force", action="store_true",
                   help="replace DST even when it is a file this program did not write (never the source)")
    p.set_defaults(func=_run_convert)


def _run_convert(args) -> int:
    """Exit status as ``enhance``'s: 2 when nothing could be done (bad source, DST a folder or a file
    this program did not write without --force, unusable folder or manifest), 1 when writing failed
    (disk full ...; nothing partial is left)."""
    from ..files.outputs import ManifestError
    from ..weights.checkpoint import convert

    try:
        w = convert(args.src, args.dst, padding=args.padding, force=args.force)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write {args.dst}: {e.strerror or e}", file=sys.stderr)
        return 1
    parts = ["enhancer"] if w.enhancer else []
    if w.prompt_pair is not None:
        parts.append(f"prompt pair {tuple(w.prompt_pair.shape)}")
    print(f"wrote {args.dst} ({', '.join(parts)}; padding {w.padding})")
    return 0


def _passive_openmp_waits(args) -> None:
    """Before torch is loaded, for a run that will pipeline (``--jobs`` above 1, the default on a
    multi-core machine, and more than one photo): OpenMP threads that wait for work sleep instead of
    spinning (``OMP_WAIT_POLICY=PASSIVE``), unless the user set a policy. The reader and writer
    threads share the cores with torch's threads; a spinning OpenMP thread takes a core from the PNG
    encoder, and the encoder, in turn, stalls the network's next parallel region. Runs that are the
    network alone (one photo, videos) keep OpenMP's default, which is faster there. Measured:
    docs/performance.md, "Folders". In-process after torch is loaded it changes nothing (OpenMP
    reads its settings once), so it leaves them alone."""
    from ..files.pipeline import default_jobs

    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or (args.jobs or default_jobs()) <= 1:
        return
    paths, _ = list_images(args.inputs)  # a quick look; the run lists its inputs itself
    if sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in paths) > 1:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def _run_enhance(args) -> int:
    _passive_openmp_waits(args)
    from .enhance import enhance_files

    if args.bits == "16" and not OUTPUT_FORMATS[args.format].sixteen_bit:
        raise CLIPLITError(f"--bits 16 needs --format png (not {args.format})")
    if not args.temporal_smoothing >= 0:
        raise CLIPLITError(f"--temporal-smoothing must be 0 or more frames, got {args.temporal_smoothing}")
    if args.crf is not None and args.video_codec == "lossless":
        raise CLIPLITError("--crf sets the quality of h264 / h265; --video-codec lossless has none")
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise CLIPLITError(f"--crf must be 0..51, got {args.crf}")

    return enhance_files(args)


MODULE_PROG = "python -m cliplit_core"


def program_name(argv0: str | None = None) -> str:
    """How the user started us, for usage lines: ``cliplit`` (the script) or ``python -m cliplit_core``."""
    name = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    return "cliplit" if name in ("cliplit", "cliplit.exe", "cliplit-script.py") else MODULE_PROG


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog or program_name(),
                     description="CLIP-LIT backlit image enhancement (core command line).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{enhance,convert,score}")
    _add_enhance(sub)
    _add_convert(sub)
    try:
        from . import score as cli_score
    except ImportError:
        cli_score = None
    if cli_score is not None:
        cli_score.add_parser(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so unfinished files are removed on the way out."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds():
    try:
        old = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _raise_terminated:  # else the command set its own (sharding)
            signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Exit status: 0 done, 1 some inputs failed or the run stopped (e.g. disk full), 2 a bad option
    or nothing could be done, 130 / 143 interrupted / terminated (no partial file is left).
    ``prog``: the name in usage lines (default: from ``sys.argv[0]``, see :func:`program_name`)."""
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as e:  # a bad option (2) or --help (0): returned, so that callers in Python get the status
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        with _sigterm_unwinds():
            return int(args.func(args) or 0)
    except CLIPLITError as e:
        print(f"error: {e.worded(COMMAND_LINE)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
