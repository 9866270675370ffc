"""Observability: progress bar, ``log.jsonl``, the loss plot and the sample grid (Pillow only)."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from cliplit_core.files.atomic import write_together
from cliplit_core.files.images import write_png

LOG_NAME = "log.jsonl"


# --------------------------------------------------------------------------- log.jsonl
class JsonlLog:
    """Append-only JSON-lines log; every record gets ``time`` (seconds since the epoch)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._f = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self._f is None:
            return
        rec = {"time": round(time.time(), 3), **record}
        self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._f.flush()

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_log(path: str | os.PathLike) -> list[dict]:
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return out


def truncate_log(path: str | os.PathLike, global_step: int) -> int:
    """Drop records after ``global_step`` (what a killed run logged past its last checkpoint).
    Returns the number of records dropped."""
    p = Path(path)
    if not p.is_file():
        return 0
    recs = read_log(p)
    keep = [r for r in recs if int(r.get("step", 0)) <= global_step]
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in keep)
    write_together([(p, lambda tmp: tmp.write_text(text, encoding="utf-8"))])
    return len(recs) - len(keep)


# --------------------------------------------------------------------------- progress
class Progress:
    """tqdm bar per phase (stage, round, iteration, loss, images/s); silent when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def start(self, desc: str, total: int, initial: int) -> None:
        self.close()
        if not self.enabled:
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="it", file=sys.stderr, dynamic_ncols=True,
                        leave=True)

    def update(self, loss: float, images_per_s: float, extra: str = "") -> None:
        if self.bar is None:
            return
        post = f"loss {loss:.4g}, {images_per_s:.1f} img/s" + (f", {extra}" if extra else "")
        self.bar.set_postfix_str(post, refresh=False)
        self.bar.update(1)

    def grow(self, by: int) -> None:
        """The phase got longer (an extension): raise the bar's total."""
        if self.bar is not None and self.bar.total is not None:
            self.bar.total += int(by)
            self.bar.refresh()

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --------------------------------------------------------------------------- loss plot
PHASE_COLOURS = {"prompt_init": (31, 119, 180), "reconstruction": (44, 160, 44), "enhance": (214, 39, 40),
                 "prompt": (148, 103, 189)}
PANELS = (("prompt_init", "prompt initialisation (cross-entropy)"),
          ("reconstruction", "reconstruction (25 L_identity)"),
          ("enhance", "enhancement (320 L_clip + 22.5 L_identity)"),
          ("prompt", "prompt refinement (200 L_prompt)"))


def _nice(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.1e}"
    return f"{v:.3g}"


def plot_losses(records: list[dict], path: str | os.PathLike, width: int = 900, panel_h: int = 190) -> None:
    """One panel per phase kind: loss against global step, rounds in alternating shades."""
    panels = [(k, t) for k, t in PANELS if any(r.get("phase") == k and "loss" in r for r in records)]
    if not panels:
        panels = [("none", "no losses logged yet")]
    h = panel_h * len(panels) + 10
    img = Image.new("RGB", (width, h), "white")
    d = ImageDraw.Draw(img)
    left, right = 70, width - 15
    for pi, (kind, title) in enumerate(panels):
        top = 10 + pi * panel_h
        bottom = top + panel_h - 35
        d.text((left, top), title, fill=(0, 0, 0))
        box_top = top + 14
        d.rectangle([left, box_top, right, bottom], outline=(120, 120, 120))
        pts = [(int(r["step"]), float(r["loss"]), int(r.get("round", 0))) for r in records
               if r.get("phase") == kind and "loss" in r and math.isfinite(float(r["loss"]))]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = 0.05 * (y1 - y0)
        y0, y1 = y0 - pad, y1 + pad

        def px(x, y):
            return (left + (x - x0) / (x1 - x0) * (right - left),
                    bottom - (y - y0) / (y1 - y0) * (bottom - box_top))

        for frac in (0.0, 0.5, 1.0):
            yv = y0 + frac * (y1 - y0)
            _, yy = px(x0, yv)
            d.line([left - 4, yy, left, yy], fill=(0, 0, 0))
            d.text((4, yy - 6), _nice(yv), fill=(0, 0, 0))
        d.text((left, bottom + 4), f"step {x0}", fill=(0, 0, 0))
        d.text((right - 80, bottom + 4), f"step {x1}", fill=(0, 0, 0))
        base = PHASE_COLOURS.get(kind, (0, 0, 0))
        # raw losses faint, a running mean bold, segments per (round) contiguous run
        segs: list[list] = []
        for x, y, r in pts:
            if segs and segs[-1][0] == r and x - segs[-1][1][-1][0] >= 0:
                segs[-1][1].append((x, y))
            else:
                segs.append([r, [(x, y)]])
        for r, seg in segs:
            shade = base if r % 2 == 0 else tuple(int(c * 0.6) for c in base)
            faint = tuple(int(c + (255 - c) * 0.65) for c in shade)
            if len(seg) > 1:
                d.line([px(x, y) for x, y in seg], fill=faint, width=1)
                k = max(1, len(seg) // 30)
                ys_ = np.convolve([y for _, y in seg], np.ones(k) / k, mode="valid")
                xs_ = [x for x, _ in seg][k - 1:]
                d.line([px(x, y) for x, y in zip(xs_, ys_)], fill=shade, width=2)
            else:
                x, y = seg[0]
                cx, cy = px(x, y)
                d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=shade)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_together([(Path(path), lambda tmp: img.save(tmp, format="PNG"))])


# --------------------------------------------------------------------------- sample grid
def sample_grid(inputs: torch.Tensor, results: torch.Tensor, lights: torch.Tensor,
                path: str | os.PathLike, gap: int = 4) -> None:
    """Rows of (input | result | light map); tensors [K, 3, S, S], [K, 3, S, S], [K, 1, S, S] in 0..1."""
    k, _, s, _ = inputs.shape
    light = lights.clamp(0, 1).expand(-1, 3, -1, -1)
    grid = torch.ones(3, k * s + (k - 1) * gap, 3 * s + 2 * gap)
    for i in range(k):
        y = i * (s + gap)
        for j, t in enumerate((inputs[i], results[i], light[i])):
            x = j * (s + gap)
            grid[:, y:y + s, x:x + s] = t.float().cpu().clamp(0, 1)
    write_png(path, grid.permute(1, 2, 0).numpy())
