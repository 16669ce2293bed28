"""Highlight recovery: clipped light sources get back energy above the clipping level.

A camera clips lamps, stars, string lights and glints to white; blurred at their clipped
value they turn into dull grey discs.  Real bright bokeh needs their energy back.  Only
small, isolated clipped spots brighter than their surroundings are treated as light
sources; large clipped areas (paper, sky, white walls) are left alone, so surfaces that
really are white do not glow.
"""
from __future__ import annotations

import numpy as np

DEFAULT_GAIN = 6.0          # radiance of a recovered highlight, in multiples of the clip level
CLIP_LEVEL = 0.98           # linear value from which a channel counts as clipped
RAMP_START = 0.85           # boost fades in from here, so anti-aliased rims stay smooth
MAX_AREA_FRACTION = 0.002   # a light source covers at most this fraction of the frame ...
MIN_MAX_AREA = 64           # ... but at least this many pixels are allowed
SURROUND_MAX = 0.45         # mean linear luminance around a light source must stay below this


def highlight_mask(lin: np.ndarray) -> np.ndarray:
    """float32 weight in [0, 1] of 'this pixel is part of a clipped light source'."""
    import cv2
    h, w = lin.shape[:2]
    v = lin.max(axis=2) if lin.ndim == 3 else lin
    core = (v >= CLIP_LEVEL).astype(np.uint8)
    if not core.any():
        return np.zeros((h, w), np.float32)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    max_area = max(MIN_MAX_AREA, MAX_AREA_FRACTION * h * w)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    small[0] = False
    if not small[1:].any():
        return np.zeros((h, w), np.float32)
    # luminance of the surroundings, ignoring all clipped pixels
    lum = (lin.mean(axis=2) if lin.ndim == 3 else lin).astype(np.float32)
    free = 1.0 - core.astype(np.float32)
    k = max(7, int(round(0.01 * max(h, w))) | 1)
    num = cv2.boxFilter(lum * free, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(free, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
    surround = num / np.maximum(den, 1.0)
    # per component: mean surround over its pixels
    sums = np.bincount(labels.ravel(), weights=surround.ravel(), minlength=n)
    mean_surround = sums / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    keep = small & (mean_surround < SURROUND_MAX)
    if not keep.any():
        return np.zeros((h, w), np.float32)
    sel = keep[labels].astype(np.uint8)
    sel = cv2.dilate(sel, np.ones((3, 3), np.uint8))          # include the anti-aliased rim
    ramp = np.clip((v - RAMP_START) / (CLIP_LEVEL - RAMP_START), 0.0, 1.0)
    return (ramp * sel).astype(np.float32)


def boost(lin: np.ndarray, gain: float = DEFAULT_GAIN) -> tuple[np.ndarray, int]:
    """Return (image with light sources scaled towards `gain` x, number of boosted pixels)."""
    if gain <= 1.0:
        return lin, 0
    m = highlight_mask(lin)
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return lin, 0
    out = lin.copy()
    f = 1.0 + (gain - 1.0) * m[ys, xs]
    out[ys, xs] *= f[:, None] if out.ndim == 3 else f
    return out, int(ys.size)
