"""Aperture kernels: the shape of a bokeh disc (circle, or an N-blade polygon)."""
from __future__ import annotations

import math

import numpy as np

from .errors import BadInputError

SHAPES = ("circle", "polygon")
SUPERSAMPLE = 8


def validate(shape: str, blades: int, rotation: float) -> None:
    if shape not in SHAPES:
        raise BadInputError(f"--aperture: unknown aperture {shape!r}; choose one of {', '.join(SHAPES)}")
    if shape == "polygon" and not (3 <= int(blades) <= 16):
        raise BadInputError(f"--blades: {blades} blades is out of range (3..16; real lenses have 5..9)")
    if not math.isfinite(rotation):
        raise BadInputError(f"--rotation: {rotation} is not a finite angle")


def inside(x: np.ndarray, y: np.ndarray, radius: float, shape: str = "circle",
           blades: int = 6, rotation: float = 0.0) -> np.ndarray:
    """Point-in-aperture test for points (x, y) relative to the centre, y pointing down.

    A polygon is regular with its vertices on the circle of `radius` (circumradius);
    `rotation` (degrees, counter-clockwise) turns it; at 0 a vertex points up.
    """
    if shape == "circle":
        return x * x + y * y <= radius * radius
    n = int(blades)
    rot = math.radians(rotation)
    apothem = radius * math.cos(math.pi / n)
    ok = np.ones(np.broadcast(x, y).shape, bool)
    for j in range(n):
        # outward normal of edge j, between vertices j and j+1 (vertex 0 points up)
        a = -math.pi / 2 - rot + (2 * j + 1) * math.pi / n
        ok &= x * math.cos(a) + y * math.sin(a) <= apothem
    return ok


def kernel(radius: float, shape: str = "circle", blades: int = 6, rotation: float = 0.0) -> np.ndarray:
    """Normalised (sum 1) anti-aliased kernel of the aperture at the given radius in pixels.

    Each tap is the fraction of its pixel covered by the aperture (8x8 supersampling), so
    small and non-integer radii are rendered accurately.  Size: odd, 2*ceil(r + 0.5) + 1.
    """
    radius = abs(float(radius))
    half = int(math.ceil(radius + 0.5))
    n = 2 * half + 1
    ss = SUPERSAMPLE
    off = (np.arange(ss) + 0.5) / ss - 0.5
    c = np.arange(-half, half + 1, dtype=np.float64)
    xs = (c[:, None] + off[None, :]).ravel()
    X, Y = np.meshgrid(xs, xs)
    r_eff = max(radius, 0.5 / math.sqrt(math.pi) * 1.0)   # never smaller than one pixel's area
    cov = inside(X, Y, r_eff, shape, blades, rotation).reshape(n, ss, n, ss).mean(axis=(1, 3))
    if cov.sum() <= 0:
        cov[half, half] = 1.0
    return (cov / cov.sum()).astype(np.float32)
