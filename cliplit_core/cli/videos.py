"""The ``enhance`` command's video inputs: output names, one progress bar in frames per video."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from ..engine.options import EnhanceOptions
from ..engine.run_context import RunContext
from ..files.outputs import OurFiles
from ..files.video import VideoError, enhance_video, output_suffix


def plan_video_outputs(videos: list[Path], outdir: Path, codec: str,
                       plan_outputs) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Output paths for videos, planned like images' (``plan_outputs``) per output container."""
    plan, problems = [], []
    for suffix in dict.fromkeys(output_suffix(v, codec) for v in videos):
        part, msgs = plan_outputs([v for v in videos if output_suffix(v, codec) == suffix], outdir, suffix)
        plan += part
        problems += msgs
    order = {v: k for k, v in enumerate(videos)}
    return sorted(plan, key=lambda pair: order[pair[0]]), problems


def _frame_bar(name: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with open_clip
        return None
    return tqdm(unit="frame", desc=name[-30:], file=sys.stderr, dynamic_ncols=True, leave=False)


def enhance_video_files(net, plan: list[tuple[Path, Path]], options: EnhanceOptions, run: RunContext, *,
                        codec: str, crf: int | None, ours: OurFiles,
                        say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> tuple[int, int]:
    """Enhance each (video, output) pair as ``options`` say; returns (enhanced, failed). A failed
    video is reported and skipped, leaving nothing; a result is recorded in the output folder's
    manifest (``ours``) like an image's, so a rerun replaces it."""
    done = failed = 0
    for src, dst in plan:
        bar = _frame_bar(src.name)

        def progress(k, total, bar=bar):
            if bar is not None:
                if total and bar.total != total:
                    bar.total = total
                bar.update(k - bar.n)
        try:
            n = enhance_video(net, src, dst, options=options, run=run, codec=codec, crf=crf, progress=progress,
                              record=ours.record)
        except VideoError as e:
            failed += 1
            say(f"error: {e} -- skipped")
            continue
        except OSError as e:  # as for an image: a result we cannot write or list as ours is not written
            failed += 1
            say(f"error: cannot write {dst}: {e.strerror or e}")
            continue
        finally:
            if bar is not None:
                bar.close()
        done += 1
        say(f"{src.name}: {n} frames -> {dst}")
    return done, failed
