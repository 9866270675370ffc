"""The ``enhance`` command: files and folders in, ``OUTDIR/<stem>.<format>`` out."""
from __future__ import annotations

import errno
import sys
from pathlib import Path

import torch

from .atomicfile import write_together
from .checkpoint import load_network
from .errors import ImageReadError
from .imageio import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS, list_images, read_image_info, save_image
from .inference import enhance_with_backoff, resolve_dtype
from .memory import default_budget, resolve_device
from .outputs import OurFiles, PlannedOutput, check_output_option, plan_outputs, prepare_output_dir
from .validation import MAX_MEGAPIXELS, QUALITY, STRENGTH, check_number
from .weights import resolve_weights


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


def _write_result(planned: PlannedOutput, image, light, *, fmt: str, bits: int, quality: int, info) -> None:
    """The result and its light map (when planned), all or none."""
    writes = [(planned.main, lambda tmp: save_image(tmp, image, bits=bits, quality=quality, info=info, fmt=fmt))]
    if len(planned.files) > 1:
        writes.append((planned.files[1], lambda tmp: save_image(tmp, light, fmt="png")))
    write_together(writes)


def enhance_files(args) -> int:
    """Run the ``enhance`` command. Every option is checked, the output folder created and tested,
    and every output file planned before the weights are loaded."""
    strength = check_number(STRENGTH, args.strength)
    quality = check_number(QUALITY, getattr(args, "quality", 95))
    max_pixels = int(check_number(MAX_MEGAPIXELS, getattr(args, "max_pixels", DEFAULT_MAX_PIXELS / 1e6)) * 1e6)
    fmt = getattr(args, "format", "png")
    spec = OUTPUT_FORMATS[fmt]
    outdir = check_output_option(args.output)
    ours = OurFiles(outdir)
    paths, problems = list_images(args.inputs, skip=ours.owns)
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    if not paths:
        print("error: no input images", file=sys.stderr)
        return 1
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    prepare_output_dir(outdir)
    plan, clashes = plan_outputs(paths, outdir, [spec.ext] + (["_light.png"] if args.save_light else []),
                                 ours=ours, in_place_tag="_enhanced")
    for msg in clashes:
        print(f"warning: {msg}", file=sys.stderr)
    weights = resolve_weights(args.weights, progress=None)
    net = load_network(weights)
    failures, enhanced = len(problems), 0
    bar = _progress_bar(len(plan))
    for planned in plan:
        src = planned.src
        try:
            arr, info = read_image_info(src, max_pixels=max_pixels)
        except ImageReadError as e:
            failures += 1
            _say(bar, f"error: {e} -- skipped")
            if bar:
                bar.update(1)
            continue
        x = torch.from_numpy(arr).permute(2, 0, 1)[None]
        del arr
        if getattr(args, "fast", False):
            from .preview import enhance_preview

            res = enhance_preview(net, x, strength=strength, device=device, dtype=args.dtype)
        else:
            res = enhance_with_backoff(net, x, strength=strength, tile=args.tile, device=device, dtype=dtype,
                                       memory_budget=default_budget(device), progress=_tile_progress(bar, src))
        bits = getattr(args, "bits", "8")
        bits = (16 if info.bits == 16 and spec.sixteen_bit else 8) if bits == "auto" else int(bits)
        if x.shape[1] in (2, 4) and not spec.alpha:
            _say(bar, f"warning: {src.name}: {fmt} has no alpha channel; the result drops it")
        try:
            _write_result(planned, res.image[0].permute(1, 2, 0).cpu().numpy(),
                          res.light[0, 0].clamp(0, 1).cpu().numpy()[..., None], fmt=fmt, bits=bits, quality=quality,
                          info=None if getattr(args, "strip_metadata", False) else info)
            ours.record(planned.files)
        except OSError as e:
            failures += 1
            _say(bar, f"error: cannot write {planned.main}: {e.strerror or e}")
            if e.errno in _FATAL_WRITE_ERRORS:
                _say(bar, f"error: stopped; {enhanced} of {len(plan)} results were written, nothing partial is left")
                break
            if bar:
                bar.update(1)
            continue
        enhanced += 1
        if bar:
            bar.set_postfix_str(src.name[-30:])
            bar.update(1)
    if bar:
        bar.close()
    print(f"enhanced {enhanced} of {len(plan)} images into {outdir}"
          + (f"; {failures} inputs failed" if failures else ""),
          file=sys.stderr)
    return 1 if failures else 0
