"""Procedural scenes in even light: a textured background and a textured subject with its mask.

A :class:`Scene` is what a camera would record in good, even light (display-referred RGB
in 0..1, mid-tones kept away from 0 and 1) plus the subject's mask; :mod:`.lighting`
turns it into a lit photo. Everything is a pure function of a NumPy generator, so a
scene is fixed by its seed.

Backgrounds: a sky gradient with clouds over textured ground, or a textured wall.
Subjects: one or two shapes (ellipse, rotated rectangle, polygon, blob) filled with a
texture (noise, stripes, checks) and a soft shading, covering about 10 to 45 % of the
picture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBJECT_AREA = (0.10, 0.45)  # share of the picture the subject covers (by construction, roughly)
REFLECTANCE_RANGE = (0.03, 0.97)  # nothing pure black or white in even light


@dataclass(frozen=True)
class Scene:
    colors: np.ndarray  # [H, W, 3] float32 in 0..1: the scene in even light
    subject: np.ndarray  # [H, W] float32 in 0..1: the subject's mask (soft at its edge)


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """[H, W] float32 noise in about -1..1, smooth over ``h / cells`` pixels (bilinear value noise)."""
    cells = max(1, int(cells))
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
    ys = np.linspace(0, cells, h, dtype=np.float32)
    xs = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(np.int64), cells - 1)
    x0 = np.minimum(xs.astype(np.int64), cells - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no visible grid
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def random_color(rng: np.random.Generator, value: tuple[float, float], saturation: float = 0.6) -> np.ndarray:
    """An RGB colour with its brightest channel in ``value`` and up to ``saturation``."""
    v = rng.uniform(*value)
    s = rng.uniform(0.0, saturation)
    rgb = v * (1 - s * rng.uniform(0, 1, 3))
    return rgb.astype(np.float32)


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """[H, W] float32 in about -1..1: noise, stripes or checks, at a random scale and angle."""
    kind = rng.integers(3)
    if kind == 0:
        return smooth_noise(rng, h, w, rng.integers(3, 16))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 16) * max(h, w) / 96
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / period
    if kind == 1:
        return np.sin(2 * np.pi * u).astype(np.float32)
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period
    return np.where((np.floor(u) + np.floor(v)) % 2 == 0, 1.0, -1.0).astype(np.float32)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """[H, W, 3]: sky over ground, or a wall."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    if rng.uniform() < 0.6:
        top, low = random_color(rng, (0.45, 0.85)), random_color(rng, (0.55, 0.9), 0.3)
        sky = top * (1 - yy) + low * yy
        sky = sky + 0.08 * smooth_noise(rng, h, w, rng.integers(2, 6))[..., None]
        horizon = rng.uniform(0.55, 0.85) + 0.05 * smooth_noise(rng, 1, w, 4)[0]
        ground = random_color(rng, (0.25, 0.7)) * (1 + 0.3 * texture(rng, h, w))[..., None]
        return np.where((yy[..., 0] > horizon[None, :])[..., None], ground, sky)
    wall = random_color(rng, (0.35, 0.85)) * (1 + 0.25 * texture(rng, h, w))[..., None]
    return wall * (1 + 0.15 * smooth_noise(rng, h, w, 2))[..., None]


def shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """[H, W] bool: one shape (ellipse, rotated rectangle, polygon or blob) near the middle."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    side = min(h, w)
    cy, cx = rng.uniform(0.35, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r = rng.uniform(0.18, 0.34) * side
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    kind = rng.integers(4)
    if kind == 0:  # ellipse
        a, b = r, r * rng.uniform(0.5, 1.2)
        return (u / a) ** 2 + (v / b) ** 2 <= 1
    if kind == 1:  # rectangle
        a, b = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.6, 1.4)
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    theta = np.arctan2(v, u)
    rad = np.hypot(u, v)
    if kind == 2:  # regular polygon
        n = int(rng.integers(3, 8))
        sector = np.pi / n
        return rad * np.cos((theta % (2 * sector)) - sector) <= r * np.cos(sector)
    wobble = sum(rng.uniform(0, 0.25) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    return rad <= r * (1 + wobble)


def soften(mask: np.ndarray) -> np.ndarray:
    """A 3x3 box blur: the mask's edge spans a pixel or two, like a lens's."""
    m = np.pad(mask.astype(np.float32), 1, mode="edge")
    h, w = mask.shape
    return sum(m[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def subject(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(colours [H, W, 3], mask [H, W] bool) of a subject made of one or two shapes."""
    mask = shape_mask(rng, h, w)
    if rng.uniform() < 0.4:
        mask |= shape_mask(rng, h, w)
    base = random_color(rng, (0.35, 0.9), 0.8)
    pattern = 1 + rng.uniform(0.1, 0.35) * texture(rng, h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(mask)
    if len(ys):
        cy, cx, spread = ys.mean(), xs.mean(), max(ys.std() + xs.std(), 1.0)
        shading = 1 - 0.25 * np.clip(np.hypot(yy - cy, xx - cx) / (1.5 * spread), 0, 1)
    else:
        shading = np.ones((h, w), np.float32)
    return base * (pattern * shading)[..., None], mask


def make_scene(rng: np.random.Generator, height: int, width: int | None = None) -> Scene:
    """A scene of ``height`` x ``width`` pixels (square when ``width`` is None)."""
    h, w = int(height), int(width or height)
    bg = background(rng, h, w)
    fg, hard = subject(rng, h, w)
    mask = soften(hard)
    colors = bg * (1 - mask[..., None]) + fg * mask[..., None]
    colors = np.clip(colors, *REFLECTANCE_RANGE).astype(np.float32)
    return Scene(colors, mask.astype(np.float32))
