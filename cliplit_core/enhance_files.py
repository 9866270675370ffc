"""The ``enhance`` command: files and folders in, ``OUTDIR/<stem>.<format>`` out."""
from __future__ import annotations

import sys
from pathlib import Path

from .checkpoint import load_network
from .errors import ImageReadError
from .enhance_videos import enhance_video_files, plan_video_outputs
from .imageio import IMAGE_EXTENSIONS, OUTPUT_FORMATS, list_images, read_image_info, write_image, write_png
from .memory import default_budget, default_device
from .photo import enhance_photo
from .sharding import Ranks, start
from .video import VIDEO_EXTENSIONS, is_video
from .weights import resolve_weights


def plan_outputs(paths: list[Path], outdir: Path, ext: str = ".png") -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair each input with a distinct output path (suffix ``ext``); never an input file itself."""
    inputs = {p.resolve() for p in paths}
    used: set[Path] = set()
    plan, problems = [], []
    for p in paths:
        stem, n = p.stem, 1
        out = outdir / f"{stem}{ext}"
        while out.resolve() in used or out.resolve() in inputs:
            if out.resolve() in inputs and n == 1:
                problems.append(f"{p}: output {out} would overwrite an input; writing {stem}_enhanced{ext} instead")
                out = outdir / f"{stem}_enhanced{ext}"
                n += 1
                continue
            out = outdir / f"{stem}_{n}{ext}"
            n += 1
        used.add(out.resolve())
        plan.append((p, out))
    return plan, problems


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


def enhance_files(args) -> int:
    ranks = start(args.device, default_device())  # torchrun: this process's share of the inputs
    try:
        return _enhance_files(args, ranks)
    finally:
        ranks.finish()


def _enhance_files(args, ranks: Ranks) -> int:
    paths, problems = list_images(args.inputs, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
    videos = [p for p in paths if is_video(p)]
    paths = [p for p in paths if not is_video(p)]
    for msg in problems if ranks.is_main else ():
        print(f"error: {msg}", file=sys.stderr)
    if not paths and not videos:
        print("error: no input images", file=sys.stderr)
        return 1
    device = ranks.device
    weights = resolve_weights(args.weights, progress=None)
    net = load_network(weights)
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    fmt = getattr(args, "format", "png")
    spec = OUTPUT_FORMATS[fmt]
    plan, clashes = plan_outputs(paths, outdir, spec.ext)
    video_plan, video_clashes = plan_video_outputs(videos, outdir, getattr(args, "video_codec", "h264"), plan_outputs)
    clashes += video_clashes
    for msg in clashes if ranks.is_main else ():
        print(f"warning: {msg}", file=sys.stderr)
    failures, enhanced = len(problems) if ranks.is_main else 0, 0
    planned = len(plan) + len(video_plan)
    ranks.wait_for_all()  # every rank has named all outputs before any is written
    plan, video_plan = ranks.share(plan), ranks.share(video_plan)
    bar = _progress_bar(len(plan)) if plan and ranks.is_main else None
    for src, dst in plan:
        try:
            arr, info = read_image_info(src, native=True)
        except ImageReadError as e:
            failures += 1
            _say(bar, f"error: {e} -- skipped")
            if bar:
                bar.update(1)
            continue
        bits = getattr(args, "bits", "8")
        bits = (16 if info.bits == 16 and spec.sixteen_bit else 8) if bits == "auto" else int(bits)
        image, light = enhance_photo(net, arr, strength=args.strength, tile=args.tile, device=device,
                                     dtype=args.dtype, memory_budget=default_budget(device), bits=bits,
                                     with_light=args.save_light, fast=getattr(args, "fast", False),
                                     progress=_tile_progress(bar, src))
        if arr.shape[2] in (2, 4) and not spec.alpha:
            _say(bar, f"warning: {src.name}: {fmt} has no alpha channel; the result drops it")
        del arr  # a huge photo's pixels are not needed while its result is encoded
        write_image(dst, image, bits=bits,
                    quality=getattr(args, "quality", 95), info=None if getattr(args, "strip_metadata", False) else info)
        if light is not None:
            write_png(dst.with_name(dst.stem + "_light.png"), light)
        enhanced += 1
        if bar:
            bar.set_postfix_str(src.name[-30:])
            bar.update(1)
    if bar:
        bar.close()
    if video_plan:
        done, failed = enhance_video_files(net, video_plan, args, device, default_budget(device))
        enhanced, failures = enhanced + done, failures + failed
    enhanced, failures = ranks.total(enhanced, failures)
    if ranks.is_main:
        print(f"enhanced {enhanced} of {planned} {'inputs' if videos else 'images'} into {outdir}"
              + (f"; {failures} inputs failed" if failures else "")
              + (f" ({ranks.world} processes)" if ranks.world > 1 else ""), file=sys.stderr)
    return 1 if failures else 0
