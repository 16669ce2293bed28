"""Highlight recovery: clipped light sources get back energy above the clipping level.

A camera clips lamps, stars, string lights and glints to white; blurred at their clipped
value they turn into dull grey discs.  Real bright bokeh needs their energy back.  Only
small, isolated clipped spots brighter than their surroundings are treated as light
sources; large clipped areas (paper, sky, white walls) are left alone, so surfaces that
really are white do not glow.
"""
from __future__ import annotations

import numpy as np

DEFAULT_GAIN = 4.0          # radiance of a recovered highlight, in multiples of the clip level
CLIP_LEVEL = 0.95           # linear value from which a pixel counts as clipped (all channels)
RAMP_START = 0.80           # boost fades in from here, so anti-aliased rims stay smooth
MAX_AREA_FRACTION = 0.004   # a light source covers at most this fraction of the frame ...
MIN_MAX_AREA = 64           # ... but at least this many pixels are allowed
SURROUND_MAX = 0.40         # mean linear luminance around a light source must stay below this
SURROUND_SIZE = 0.1         # ... measured over a box this fraction of the longer image side
SURROUND_REF = 0.15         # a light in surroundings this bright gets `gain`; darker -> more


def highlight_mask(lin: np.ndarray, gain: float = DEFAULT_GAIN):
    """Where and how much clipped light sources are raised.

    Returns ``(ys, xs, factor)``: pixel coordinates and the float32 factor each is raised by
    (sparse: light sources are small), or None when nothing is a light source.  The
    darker the surroundings of a light source, the more the exposure was set for them and
    the more the light itself was overexposed: the gain scales with
    SURROUND_REF / surround luminance, between 2 and 3 x `gain`.
    """
    import cv2
    h, w = lin.shape[:2]
    if lin.ndim == 3:
        core = (lin[..., 0] >= CLIP_LEVEL) & (lin[..., 1] >= CLIP_LEVEL) & (lin[..., 2] >= CLIP_LEVEL)
    else:
        core = lin >= CLIP_LEVEL
    if not core.any():
        return None
    core = core.view(np.uint8)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(core, connectivity=8)
    max_area = max(MIN_MAX_AREA, MAX_AREA_FRACTION * h * w)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    small[0] = False
    if not small.any():
        return None
    # luminance of the surroundings, ignoring clipped pixels, on a reduced copy
    f = max(1, int(round(max(h, w) / 640)))
    lum = (lin.mean(axis=2) if lin.ndim == 3 else lin).astype(np.float32)
    free = 1.0 - core.astype(np.float32)
    if f > 1:
        sw, sh = max(1, w // f), max(1, h // f)
        lum = cv2.resize(lum * free, (sw, sh), interpolation=cv2.INTER_AREA)
        free = cv2.resize(free, (sw, sh), interpolation=cv2.INTER_AREA)
    else:
        lum = lum * free
    k = max(7, int(round(SURROUND_SIZE * max(h, w) / f)) | 1)
    num = cv2.boxFilter(lum, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(free, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
    surround = num / np.maximum(den, 1e-3)
    cy = np.clip((cents[:, 1] / f).astype(int), 0, surround.shape[0] - 1)
    cx = np.clip((cents[:, 0] / f).astype(int), 0, surround.shape[1] - 1)
    mean_surround = surround[cy, cx]
    keep = small & (mean_surround < SURROUND_MAX)
    if not keep.any():
        return None
    comp_gain = np.where(keep, np.clip(gain * SURROUND_REF / np.maximum(mean_surround, 1e-3),
                                       min(2.0, gain), 3.0 * gain), 1.0).astype(np.float32)
    # sparse: the clipped pixels of the kept light sources and a 1-pixel rim around them
    cy, cx = np.nonzero(core)
    lab = labels[cy, cx]
    sel = keep[lab]
    cy, cx, g0 = cy[sel], cx[sel], comp_gain[lab[sel]]
    oy, ox = np.divmod(np.arange(9), 3)
    ny = np.clip(cy[:, None] + oy[None, :] - 1, 0, h - 1).ravel()
    nx = np.clip(cx[:, None] + ox[None, :] - 1, 0, w - 1).ravel()
    g = np.repeat(g0, 9)
    idx = ny.astype(np.int64) * w + nx
    order = np.lexsort((g, idx))                    # per pixel, the largest gain of a neighbour
    idx, g = idx[order], g[order]
    last = np.r_[idx[1:] != idx[:-1], True]
    idx, g = idx[last], g[last]
    ys, xs = np.divmod(idx, w)
    px = lin[ys, xs]
    v = px.min(axis=1) if px.ndim == 2 else px
    ramp = np.clip((v - RAMP_START) / (CLIP_LEVEL - RAMP_START), 0.0, 1.0)
    return ys, xs, (1.0 + (g - 1.0) * ramp).astype(np.float32)


def boost(lin: np.ndarray, gain: float = DEFAULT_GAIN, coc: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Return (image with light sources scaled towards `gain` x, number of boosted pixels).

    `coc` (H, W), optional: signed CoC in working pixels; light sources that stay in focus
    (|coc| < 1) keep their clipped value (they stay clipped in the output).
    """
    if gain <= 1.0:
        return lin, 0
    found = highlight_mask(lin, gain)
    if found is None:
        return lin, 0
    ys, xs, factor = found
    m = factor - 1.0
    if coc is not None:
        m *= np.clip(np.abs(coc[ys, xs]) - 0.5, 0.0, 1.0)
    sel = m > 1e-6
    if not sel.any():
        return lin, 0
    ys, xs, f = ys[sel], xs[sel], 1.0 + m[sel]
    out = lin.copy()
    out[ys, xs] *= f[:, None] if out.ndim == 3 else f
    return out, int(ys.size)
