"""Soft depth edges made hard: a blurred step in a disparity map becomes a step at its middle.

At an occlusion boundary a pixel sees one surface (or a mix of two), never a surface at a
depth in between.  Depth models, and maps that were filtered or resized, blur their steps:
the pixels of the transition get in-between disparities, and rendered as they are they
become a ring of half-blurred pixels around every object (a sharp subject's rim is
softened, the background next to it is half sharp).  A blurred step keeps its true edge
at the middle of the transition, so each in-between value is moved to the nearer of the
two levels around it.

What counts as a soft step (everything else is left exactly as it is):

* *steep*: the disparity changes by more than ``STEEP`` units per image size and pixel
  (3 full ranges across the image), far steeper than slanted floors, walls and tables;
* *in between*: the value lies between the lowest and highest disparity within ``RADIUS``
  (20 pixels per 640 of the image's longer side: three sigmas of a blur up to 6.7), more than 2 % of their span from both,
  and that span is over ``MIN_SPAN`` (the benchmark's discontinuity threshold);
* *gradual*: no neighbour differs by more than ``MAX_STEP`` of that span (a hard step, as
  in an exact map, jumps its whole span from one pixel to the next and is left alone);
* *narrow*: at most ``MAX_STEEP_SHARE`` of a window three radii wide is steep, so a steep
  but smooth slope (a road going into the distance) stays continuous.

Measured on the public benchmark (``bench/run_bench.py --variant``): exact maps unchanged
(PSNR 39.21 either way), maps blurred with sigma 2 px 34.20 -> 37.01 dB, sigma 6 px
32.65 -> 35.30 dB; dilated and eroded maps (hard steps in the wrong place) are not changed.
"""
from __future__ import annotations

import math

import numpy as np

RADIUS = 20.0           # pixels per 640 of the longer side: reach of the levels around a step
STEEP = 3.0             # disparity per (image size x pixel) from which a change is steep
MIN_SPAN = 0.05         # levels closer than this are not a step
IN_BETWEEN = 0.02       # values within this fraction of either level already belong to it
MAX_STEP = 0.3          # largest neighbour difference, as a fraction of the span, of a soft step
MAX_STEEP_SHARE = 0.7   # largest share of steep pixels around a step (more: a steep slope)


def _grid_levels(d: np.ndarray, r: int, f: int):
    """Lowest and highest disparity within radius r, on the f-times reduced grid."""
    import cv2
    if f > 1:
        box = np.ones((f, f), np.uint8)
        hi = np.ascontiguousarray(cv2.dilate(d, box, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::f, ::f])
        lo = np.ascontiguousarray(cv2.erode(d, box, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::f, ::f])
    else:
        hi = lo = d
    rs = max(1, int(round(r / f)))
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rs + 1, 2 * rs + 1))
    return cv2.dilate(hi, se), cv2.erode(lo, se)


def _levels(d: np.ndarray, r: int, f: int):
    """:func:`_grid_levels` at full size (nearest neighbour)."""
    import cv2
    H, W = d.shape
    hi, lo = _grid_levels(d, r, f)
    if f > 1:
        hi = cv2.resize(hi, (W, H), interpolation=cv2.INTER_NEAREST)
        lo = cv2.resize(lo, (W, H), interpolation=cv2.INTER_NEAREST)
    return hi, lo


def _steep(d: np.ndarray, steep_thr: float) -> np.ndarray:
    import cv2
    gx = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy) > 8.0 * steep_thr          # Sobel is 8x the slope per pixel


def _candidates(d: np.ndarray, r: int, f: int, steep_thr: float) -> np.ndarray:
    import cv2
    steep = _steep(d, steep_thr)
    if not steep.any():
        return np.zeros(d.shape, bool), None
    hi, lo = _levels(d, r, f)
    span = hi - lo
    t = (d - lo) / np.maximum(span, 1e-6)
    k3 = np.ones((3, 3), np.uint8)
    step = np.maximum(cv2.dilate(d, k3) - d, d - cv2.erode(d, k3))
    w = 6 * r + 1
    share = cv2.boxFilter(steep.astype(np.float32), -1, (w, w), borderType=cv2.BORDER_REPLICATE)
    sel = (steep & (t > IN_BETWEEN) & (t < 1.0 - IN_BETWEEN) & (span > MIN_SPAN)
           & (step < MAX_STEP * span) & (share < MAX_STEEP_SHARE))
    return sel, (t, hi, lo)


def _hardened_at_steep(d: np.ndarray, r: int, f: int, steep_thr: float):
    """The full-size pass of :func:`harden_soft_edges` evaluated at the steep pixels only
    (a few percent of a model's map): the same selection and values as
    ``_candidates(d, r, f, steep_thr)``, without full-size temporaries for the levels, the
    position between them and the neighbour step.  Returns (ys, xs, new values) or None."""
    import cv2
    H, W = d.shape
    steep = _steep(d, steep_thr)
    if not steep.any():
        return None
    w = 6 * r + 1
    share = cv2.boxFilter(steep.astype(np.float32), -1, (w, w), borderType=cv2.BORDER_REPLICATE)
    ys, xs = np.nonzero(steep & (share < MAX_STEEP_SHARE))
    del share, steep
    if ys.size == 0:
        return None
    # levels on the reduced grid, read where _levels' nearest-neighbour resize would read
    # them (the same index maps, made by resizing index ramps)
    hi, lo = _grid_levels(d, r, f)
    if f > 1:
        hs, ws = hi.shape
        col = cv2.resize(np.arange(ws, dtype=np.float32)[None, :], (W, 1), interpolation=cv2.INTER_NEAREST)
        row = cv2.resize(np.arange(hs, dtype=np.float32)[:, None], (1, H), interpolation=cv2.INTER_NEAREST)
        sy, sx = row[ys, 0].astype(np.intp), col[0, xs].astype(np.intp)
    else:
        sy, sx = ys, xs
    hi_p, lo_p, v = hi[sy, sx], lo[sy, sx], d[ys, xs]
    span = hi_p - lo_p
    t = (v - lo_p) / np.maximum(span, 1e-6)
    # largest difference to a 3x3 neighbour (outside the image: none)
    nmax, nmin = v.copy(), v.copy()
    for dy in (-1, 0, 1):
        yy = np.clip(ys + dy, 0, H - 1)
        for dx in (-1, 0, 1):
            if dy or dx:
                nb = d[yy, np.clip(xs + dx, 0, W - 1)]
                np.maximum(nmax, nb, out=nmax)
                np.minimum(nmin, nb, out=nmin)
    step = np.maximum(nmax - v, v - nmin)
    keep = (t > IN_BETWEEN) & (t < 1.0 - IN_BETWEEN) & (span > MIN_SPAN) & (step < MAX_STEP * span)
    if not keep.any():
        return None
    return ys[keep], xs[keep], np.where(t[keep] >= 0.5, hi_p[keep], lo_p[keep])


def harden_soft_edges(disparity: np.ndarray) -> tuple[np.ndarray, int]:
    """Return (disparity with its soft steps made hard, number of pixels changed).

    `disparity`: (H, W) float, 1 = near.  The input is not modified; when nothing is a soft
    step the same array is returned.  Large maps are first checked on a subsampled copy
    (pixels taken, not averaged, so hard steps stay hard), and the full-size work is done
    only when that copy has soft steps.
    """
    d = np.ascontiguousarray(disparity, np.float32)
    H, W = d.shape
    if H < 3 or W < 3:
        return disparity, 0
    scale = max(H, W) / 640.0
    r = max(2, int(round(RADIUS * scale)))
    f = max(1, int(math.floor(scale)))
    steep_thr = STEEP / max(H, W)
    if f > 1:
        small = np.ascontiguousarray(d[::f, ::f])
        sel, _ = _candidates(small, max(2, int(round(r / f))), 1, STEEP / max(small.shape))
        if not sel.any():
            return disparity, 0
    found = _hardened_at_steep(d, r, f, steep_thr)
    if found is None:
        return disparity, 0
    ys, xs, values = found
    out = d.copy()
    out[ys, xs] = values
    return out, int(ys.size)


def clean_depth_edges(disparity: np.ndarray, linear: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """Both clean-ups a map gets before rendering: soft steps made hard
    (:func:`harden_soft_edges`), then, when the photo is given, steps moved onto the photo's
    outlines (:func:`refocus.depth.align.align_depth_edges`).

    Returns (map, pixels hardened, pixels moved); the same array when nothing changed.
    """
    d, n_hard = harden_soft_edges(disparity)
    n_moved = 0
    if linear is not None:
        from .align import align_depth_edges
        d, n_moved = align_depth_edges(d, linear)
    return d, n_hard, n_moved
