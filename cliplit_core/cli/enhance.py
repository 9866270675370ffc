"""The ``enhance`` command: files and folders in, ``OUTDIR/<stem>.<format>`` out."""
from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..files.atomic import write_together
from ..model import load_model
from .videos import enhance_video_files, plan_video_outputs
from ..errors import CLIPLITError, ImageReadError
from ..files.images import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, OUTPUT_FORMATS, PNG_AUTO, ImageInfo, PngCompression,
                      check_output_format, encode_image, list_images, read_image_info, save_image)
from ..engine.options import EnhanceOptions, Mode
from ..engine.memory import default_budget, default_device, resolve_device
from ..files.outputs import (ManifestError, OurFiles, PlannedOutput, check_output_option, plan_outputs,
                             prepare_output_dir)
from ..engine.core import enhance_photo
from ..engine.run_context import RunContext
from ..files.pipeline import default_jobs, run_in_order
from ..sharding import RankLost, Ranks, start
from ..validation import JOBS, MAX_MEGAPIXELS, QUALITY, check_number
from ..files.video import VIDEO_EXTENSIONS, is_video
from ..weights.sources import resolve_weights


def _progress_bar(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with open_clip
        return None
    return tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)


def _say(bar, msg: str) -> None:
    """A message on stderr that does not break the progress bar."""
    if bar:
        bar.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr)


def _tile_progress(bar, src: Path):
    """Progress inside one image (tiled runs of big images take minutes on a CPU): 'step k/n'
    after the file name on the bar (two steps per tile: pooling pass, then output pass)."""
    if not bar:
        return None

    def update(done: int, total: int) -> None:
        if total > 1:
            bar.set_postfix_str(f"{src.name[-30:]} step {done}/{total}")
    return update


# a full disk, a quota or a read-only folder stops the run: every later result would fail the same way
_FATAL_WRITE_ERRORS = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EIO") if hasattr(errno, n)}


# Results up to this many pixels are encoded in memory by the pipeline's encode threads (several at
# once on many cores); bigger ones (tiled photos) are encoded by the writer straight into their
# temporary file, so their compressed bytes are never held in memory.
ENCODE_IN_MEMORY_MAX_PIXELS = 50_000_000


class _Enhanced(NamedTuple):
    """One input's result, on its way to the writer."""

    image: np.ndarray | None
    light: np.ndarray | None
    info: ImageInfo
    bits: int
    drops_alpha: bool  # the input has alpha, the output format has none
    encoded: tuple[bytes, ...] | None = None  # the planned files' bytes, once encoded (then no pixels)


class _ResultWriter(NamedTuple):
    """How results become files: the options of every write, for encoding and writing alike."""

    fmt: str
    quality: int
    png: PngCompression
    strip: bool

    def _parts(self, planned: PlannedOutput, done: _Enhanced) -> list[tuple[np.ndarray, dict]]:
        """(pixels, encoder options) of each planned file: the result, then its light map if planned."""
        parts = [(done.image, dict(fmt=self.fmt, bits=done.bits, quality=self.quality,
                                   info=None if self.strip else done.info, png_compression=self.png))]
        if len(planned.files) > 1 and done.light is not None:
            parts.append((done.light, dict(fmt="png", png_compression=self.png)))
        return parts

    @staticmethod
    def in_memory(planned: PlannedOutput, done) -> bool:
        """Whether ``done`` is a result to encode in memory (in the encode threads): small enough."""
        return isinstance(done, _Enhanced) and done.image.shape[0] * done.image.shape[1] <= ENCODE_IN_MEMORY_MAX_PIXELS

    def encode(self, planned: PlannedOutput, done: _Enhanced):
        """``done`` with its files' bytes instead of its pixels. An encoder's OSError (e.g. a JPEG
        over 65,500 pixels wide) leaves ``done`` as it was: the writer encodes it into its file and
        reports the error there, in order, as for any write."""
        try:
            encoded = tuple(encode_image(a, **kw) for a, kw in self._parts(planned, done))
        except OSError:
            return done
        return done._replace(encoded=encoded, image=None, light=None)

    def write(self, planned: PlannedOutput, done: _Enhanced, record=None) -> None:
        """The result and its light map (when planned), all or none; ``record`` notes them in the
        manifest before they are renamed into place (atomic.write_together)."""
        contents = done.encoded if done.encoded is not None else self._parts(planned, done)
        write_together([(dst, lambda tmp, c=c: write_content(tmp, c)) for dst, c in zip(planned.files, contents)],
                       record=record)


def write_content(tmp: Path, content) -> None:
    """Fill one planned file's temporary file: with its encoded bytes, or by encoding ``(pixels, options)``."""
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        pixels, options = content
        save_image(tmp, pixels, **options)


def _unfit_for_format(plan: list[PlannedOutput], fmt: str) -> dict[Path, str]:
    """input -> why its result cannot be written as ``fmt`` (from the image headers)."""
    unfit = {}
    for item in plan:
        try:
            check_output_format(item.src, fmt)
        except ImageReadError as e:
            unfit[item.src] = str(e)
    return unfit


def options_from_args(args) -> EnhanceOptions:
    """The enhancement options of an ``enhance`` command line (strength, mode, precision, tile, smoothing)."""
    return EnhanceOptions(strength=args.strength, mode=Mode.PREVIEW if getattr(args, "fast", False) else Mode.EXACT,
                          precision=getattr(args, "dtype", "auto"), tile=getattr(args, "tile", "auto"),
                          temporal_smoothing=getattr(args, "temporal_smoothing", 0.0))


def enhance_files(args) -> int:
    """Run the ``enhance`` command. Every option is checked, the output folder created and tested,
    and every output file planned before the weights are loaded. Under torchrun each process
    plans all outputs alike, then enhances its share of the inputs."""
    options = options_from_args(args)
    quality = check_number(QUALITY, getattr(args, "quality", 95))
    max_pixels = int(check_number(MAX_MEGAPIXELS, getattr(args, "max_pixels", DEFAULT_MAX_PIXELS / 1e6)) * 1e6)
    png = PngCompression.parse(getattr(args, "png_compression", PNG_AUTO))
    jobs = check_number(JOBS, getattr(args, "jobs", None) or default_jobs())
    outdir = check_output_option(args.output)
    resolve_device(args.device)  # a device this machine lacks is an error before anything else
    ranks = start(args.device, default_device())  # torchrun: this process's share of the inputs
    try:
        ranks.watch_each_other()
        return _enhance_files(args, ranks, options=options, quality=quality, max_pixels=max_pixels,
                              outdir=outdir, png=png, jobs=jobs)
    except RankLost as e:  # this rank's files are complete; the run as a whole is not
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        ranks.finish()


class _Planned(NamedTuple):
    """What every rank plans alike before any file is written."""

    ours: OurFiles
    plan: list[PlannedOutput]            # images
    video_plan: list[tuple[Path, Path]]
    net: object
    failures: int                        # inputs that could not be listed or the format cannot hold (rank 0)
    with_videos: bool
    refused: int = 0                     # planned results the output format cannot hold (not in ``plan``)


def _status_of(error: Exception) -> int:
    """The exit status a single process ends with after ``error`` (``main``'s)."""
    return 2 if isinstance(error, CLIPLITError) else 1


def _enhance_files(args, ranks: Ranks, *, options: EnhanceOptions, quality: int, max_pixels: int, outdir: Path,
                   png: PngCompression, jobs: int) -> int:
    """Plan, agree, enhance this rank's share, agree on the counts and the exit status. Every rank
    reaches both agreements, also when its own planning or work raised (it re-raises afterwards),
    so that no rank waits for one that gave up."""
    try:
        planned = _plan_run(args, ranks, outdir)
    except Exception as e:
        failed_ranks = _agree_before_leaving(ranks, 1, status=_status_of(e))
        if failed_ranks == ranks.world and not ranks.is_main:
            return _status_of(e)  # the same error on every rank (bad weights, output folder): said once, by rank 0
        raise
    # every rank has named all outputs before any is written; a rank that could not plan stops all
    _, status = ranks.agree(0, status=planned if isinstance(planned, int) else 0)
    if status:
        return status
    try:
        enhanced, failures = _enhance_share(args, ranks, planned, options=options, quality=quality,
                                            max_pixels=max_pixels, png=png, jobs=jobs)
    except Exception as e:
        _agree_before_leaving(ranks, 0, 0, 1, status=_status_of(e))
        raise
    (enhanced, failures, crashed), status = ranks.agree(enhanced, failures, 0, status=1 if failures else 0,
                                                        leaving=True)
    if ranks.is_main:
        total = len(planned.plan) + len(planned.video_plan) + planned.refused
        if crashed:
            print(f"error: {crashed} of {ranks.world} processes stopped on an error (above); the rest of their "
                  "shares was not enhanced", file=sys.stderr)
        print(f"enhanced {enhanced} of {total} {'inputs' if planned.with_videos else 'images'} into {outdir}"
              + (f"; {failures} inputs failed" if failures else "")
              + (f" ({ranks.world} processes)" if ranks.world > 1 else ""), file=sys.stderr)
    return status


def _agree_before_leaving(ranks: Ranks, *counts: int, status: int) -> int | None:
    """This rank's work raised: meet the others at the agreement they will wait at, with the
    failure's status, before the error goes on (a lost rank does not hide the error). Returns the
    last count summed over the ranks (None when a rank was lost)."""
    try:
        return ranks.agree(*counts, status=status, leaving=True)[0][-1]
    except RankLost:
        return None


def _plan_run(args, ranks: Ranks, outdir: Path) -> _Planned | int:
    """Inputs listed, output folder prepared, every output planned, weights loaded; or the exit status."""
    fmt = getattr(args, "format", "png")
    spec = OUTPUT_FORMATS[fmt]
    ours = OurFiles(outdir)
    paths, problems = list_images(args.inputs, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS, skip=ours.owns)
    videos = [p for p in paths if is_video(p)]
    paths = [p for p in paths if not is_video(p)]
    for msg in problems if ranks.is_main else ():
        print(f"error: {msg}", file=sys.stderr)
    if ours.warning and ranks.is_main:
        print(f"warning: {ours.warning}", file=sys.stderr)
    if not paths and not videos:
        if ranks.is_main:
            print("error: no input images", file=sys.stderr)
        return 1
    prepare_output_dir(outdir)
    plan, clashes = plan_outputs(paths, outdir, [spec.ext] + (["_light.png"] if args.save_light else []),
                                 ours=ours, in_place_tag="_enhanced")

    def plan_videos(vids, folder, suffix):
        part, msgs = plan_outputs(vids, folder, [suffix], ours=ours, in_place_tag="_enhanced")
        return [(p.src, p.main) for p in part], msgs

    video_plan, video_clashes = plan_video_outputs(videos, outdir, getattr(args, "video_codec", "h264"), plan_videos)
    for msg in clashes + video_clashes if ranks.is_main else ():
        print(f"warning: {msg}", file=sys.stderr)
    unfit = _unfit_for_format(plan, fmt)  # results the format cannot hold: refused before any work
    for msg in unfit.values() if ranks.is_main else ():
        print(f"error: {msg} -- skipped", file=sys.stderr)
    planned = len(plan) + len(video_plan)
    plan = [item for item in plan if item.src not in unfit]
    if not plan and not video_plan:
        if ranks.is_main:
            print(f"enhanced 0 of {planned} images into {outdir}; {len(problems) + len(unfit)} inputs failed",
                  file=sys.stderr)
        return 1
    weights = resolve_weights(args.weights, progress=None)
    net = load_model(weights)
    return _Planned(ours, plan, video_plan, net, len(problems) + len(unfit) if ranks.is_main else 0, bool(videos),
                    refused=len(unfit))


def _enhance_share(args, ranks: Ranks, planned: _Planned, *, options: EnhanceOptions, quality: int, max_pixels: int,
                   png: PngCompression, jobs: int) -> tuple[int, int]:
    """This rank's share of the planned inputs; returns (enhanced, failures) of this rank."""
    fmt = getattr(args, "format", "png")
    spec = OUTPUT_FORMATS[fmt]
    device, net, ours = ranks.device, planned.net, planned.ours
    plan, video_plan = ranks.share(planned.plan), ranks.share(planned.video_plan)
    bar = _progress_bar(len(plan)) if plan and ranks.is_main else None
    bits_option = getattr(args, "bits", "auto")
    results = _ResultWriter(fmt, quality, png, getattr(args, "strip_metadata", False))
    counts = {"enhanced": 0, "failures": planned.failures}

    warned = set()

    def warn_once(message: str) -> None:
        """The engine's warnings (a small tile, emulated half precision ...), each said once per run."""
        if message not in warned:
            warned.add(message)
            _say(bar, f"warning: {message}")

    def read(item: PlannedOutput):
        try:
            return read_image_info(item.src, native=True, max_pixels=max_pixels)
        except ImageReadError as e:
            return e

    def work(item: PlannedOutput, got):
        if isinstance(got, ImageReadError):
            return got
        arr, info = got
        bits = (16 if info.bits == 16 and spec.sixteen_bit else 8) if bits_option == "auto" else int(bits_option)
        run = RunContext(device=device, memory_budget=default_budget(device), progress=_tile_progress(bar, item.src),
                         warn=warn_once)
        image, light = enhance_photo(net, arr, options=options, run=run, bits=bits, with_light=args.save_light)
        return _Enhanced(image, light, info, bits, drops_alpha=arr.shape[2] in (2, 4) and not spec.alpha)

    def finish(item: PlannedOutput, done) -> bool:
        """Messages, the files and the counts of one input, in input order; False stops the run."""
        src = item.src
        if isinstance(done, ImageReadError):
            counts["failures"] += 1
            _say(bar, f"error: {done} -- skipped")
            if bar:
                bar.update(1)
            return True
        if done.drops_alpha:
            _say(bar, f"warning: {src.name}: {fmt} has no alpha channel; the result drops it")
        try:
            results.write(item, done, record=ours.record)
        except ManifestError as e:  # every later result would be written unrecorded: stop, write nothing more
            counts["failures"] += 1
            _say(bar, f"error: {e}; stopped, {counts['enhanced']} of {len(plan)} results were written")
            return False
        except OSError as e:
            counts["failures"] += 1
            _say(bar, f"error: cannot write {item.main}: {e.strerror or e}")
            if e.errno in _FATAL_WRITE_ERRORS:
                _say(bar, f"error: stopped; {counts['enhanced']} of {len(plan)} results were written, "
                          "nothing partial is left")
                return False
            if bar:
                bar.update(1)
            return True
        counts["enhanced"] += 1
        if bar:
            bar.set_postfix_str(src.name[-30:])
            bar.update(1)
        return True

    try:
        stopped = not run_in_order(plan, read, work, finish, jobs=jobs, encode=results.encode,
                                   encodes=results.in_memory)
    finally:
        if bar:  # also when interrupted: a bar left open would shift later bars of this process
            bar.close()
    enhanced, failures = counts["enhanced"], counts["failures"]
    if video_plan and not stopped:
        done, failed = enhance_video_files(net, video_plan, options,
                                           RunContext(device=device, memory_budget=default_budget(device),
                                                      warn=warn_once),
                                           codec=getattr(args, "video_codec", "h264"), crf=getattr(args, "crf", None),
                                           ours=ours)
        enhanced, failures = enhanced + done, failures + failed
    return enhanced, failures
