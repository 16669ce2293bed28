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
CLIP_LEVEL = 0.95           # linear value from which a pixel counts as clipped (all channels)
RAMP_START = 0.80           # boost fades in from here, so anti-aliased rims stay smooth
MAX_AREA_FRACTION = 0.004   # a light source covers at most this fraction of the frame ...
MIN_MAX_AREA = 64           # ... but at least this many pixels are allowed
SURROUND_MAX = 0.40         # mean linear luminance around a light source must stay below this
SURROUND_SIZE = 0.1         # ... measured over a box this fraction of the longer image side
COLOUR_MIN_EXCESS = 0.15    # summed rim excess (linear) a light needs before its rim colour is used
COLOUR_WEIGHT = 0.5         # the rim's hue is measured on a few pixels: shrink it half-way to white
RIM_RADIUS = 2              # the rim: pixels this close to a light's clipped core ...
BACKGROUND_RADIUS = 5       # ... its background: the ring beyond, out to this distance ...
BACKGROUND_QUANTILE = 0.1   # ... at this low quantile per channel (glows and spikes are bright)
MAX_RATIO = 20.0            # red/green or blue/green at most (a rim with almost no green)


def highlight_mask(lin: np.ndarray, gain: float = DEFAULT_GAIN):
    """Where and how much clipped light sources are raised.

    Returns ``(ys, xs, factor)``: pixel coordinates and the float32 factor each is raised by
    ((N, 3) per channel for colour images, (N,) for grey; sparse: light sources are small),
    or None when nothing is a light source.  A light source's clipped pixels are raised to
    `gain` times the clip level, tinted by the light's colour seen at its unclipped rim
    (:func:`_colours`), never below their clipped value.  (An earlier version raised lights
    in darker surroundings more; on the benchmark that was worse than one gain for all:
    how far a light was overexposed is not told by its surroundings.)
    """
    import cv2
    h, w = lin.shape[:2]
    lin = np.ascontiguousarray(lin, np.float32)
    if lin.ndim == 3:     # clipped in every channel: one pass (cv2.inRange gives 0/255)
        core = cv2.inRange(lin, (CLIP_LEVEL,) * 3, (np.inf,) * 3)
    else:
        core = cv2.inRange(lin, CLIP_LEVEL, np.inf)
    if not cv2.countNonZero(core):
        return None
    f = max(1, int(round(max(h, w) / 640)))                 # scale of the surround estimate
    sw, sh = max(1, w // f), max(1, h // f)
    clipped_share = cv2.resize(core, (sw, sh), interpolation=cv2.INTER_AREA) if f > 1 else None
    np.bitwise_and(core, 1, out=core)                       # 0/1
    # the clipped pixels (row-major like np.nonzero, 4x faster) and their light sources; the
    # sizes and centres from those pixels (OpenCV's statistics pass visits every pixel of
    # the frame: 12 MP 38 ms, against 7 ms for the labels alone)
    n, labels = cv2.connectedComponents(core, connectivity=8)
    nz = cv2.findNonZero(core).reshape(-1, 2)
    cy, cx = nz[:, 1].astype(np.intp), nz[:, 0].astype(np.intp)
    lab = labels[cy, cx]
    del labels
    area = np.bincount(lab, minlength=n)
    cents = np.stack([np.bincount(lab, cx, n), np.bincount(lab, cy, n)], axis=1) / np.maximum(area, 1)[:, None]
    max_area = max(MIN_MAX_AREA, MAX_AREA_FRACTION * h * w)
    small = area <= max_area
    small[0] = False
    if not small.any():
        return None
    # luminance of the surroundings, ignoring clipped pixels, on a reduced copy
    to_lum = (lambda a: cv2.transform(a, np.full((1, 3), 1 / 3, np.float32))) if lin.ndim == 3 else (lambda a: a)
    if f > 1:
        # reduced first (the mean commutes with it), then the clipped pixels' share taken out
        # at their mean luminance (they all lie within 5 % of it): no full-size temporaries
        clipped_share = clipped_share.astype(np.float32) * np.float32(1 / 255)
        clipped_lum = float(np.mean(cv2.mean(lin, mask=core)[:lin.shape[2] if lin.ndim == 3 else 1]))
        free = 1.0 - clipped_share
        lum = to_lum(cv2.resize(lin, (sw, sh), interpolation=cv2.INTER_AREA)) - clipped_share * np.float32(clipped_lum)
        np.maximum(lum, 0.0, out=lum)
    else:
        free = 1.0 - core.astype(np.float32)
        lum = to_lum(lin) * free
    k = max(7, int(round(SURROUND_SIZE * max(h, w) / f)) | 1)
    num = cv2.boxFilter(lum, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
    den = cv2.boxFilter(free, -1, (k, k), normalize=False, borderType=cv2.BORDER_REFLECT)
    surround = num / np.maximum(den, 1e-3)
    sy = np.clip((cents[:, 1] / f).astype(int), 0, surround.shape[0] - 1)
    sx = np.clip((cents[:, 0] / f).astype(int), 0, surround.shape[1] - 1)
    mean_surround = surround[sy, sx]
    keep = small & (mean_surround < SURROUND_MAX)
    if not keep.any():
        return None
    comp_gain = np.where(keep, gain, 1.0).astype(np.float32)
    # sparse: the clipped pixels of the kept light sources and a 1-pixel rim around them
    sel = keep[lab]
    cy, cx, lab = cy[sel], cx[sel], lab[sel]
    idx, lab_px = _around(cy, cx, lab, comp_gain, 1, h, w)
    ys, xs = np.divmod(idx, w)
    g = comp_gain[lab_px]
    px = lin[ys, xs]
    v = px.min(axis=1) if px.ndim == 2 else px
    ramp = np.clip((v - RAMP_START) / (CLIP_LEVEL - RAMP_START), 0.0, 1.0)
    if lin.ndim == 3:
        colour = _colours(lin, core, cy, cx, lab, comp_gain, n, h, w)
        # per channel: the light's colour times the gain, never below the clipped value
        target = np.maximum(g[:, None] * colour[lab_px], 1.0)
        factor = 1.0 + (target - 1.0) * ramp[:, None]
    else:
        factor = 1.0 + (g - 1.0) * ramp
    return ys, xs, factor.astype(np.float32)


def _around(cy, cx, lab, comp_gain, r, h, w):
    """Unique flat indices of the (2r+1)^2 neighbourhoods of the given pixels, each with the
    label of a neighbouring light source (the one with the largest gain)."""
    k = 2 * r + 1
    oy, ox = np.divmod(np.arange(k * k), k)
    ny = np.clip(cy[:, None] + oy[None, :] - r, 0, h - 1).ravel()
    nx = np.clip(cx[:, None] + ox[None, :] - r, 0, w - 1).ravel()
    lb = np.repeat(lab, k * k)
    idx = ny.astype(np.int64) * w + nx
    order = np.lexsort((comp_gain[lb], idx))
    idx, lb = idx[order], lb[order]
    last = np.r_[idx[1:] != idx[:-1], True]
    return idx[last], lb[last]


def _colours(lin, core, cy, cx, lab, comp_gain, n, h, w):
    """Colour of each light source (RGB, luminance 1 before the shrink to white), from the
    unclipped pixels around it.

    A clipped light is white in the image whatever its colour.  The pixels just around it
    (partly covered edge pixels, the light's own glow and star spikes) are not clipped in
    every channel and show its hue over the background.  Their excess over the background
    gives the colour:

    * the rim is every non-clipped pixel within ``RIM_RADIUS`` of the core; the background is
      a low quantile (``BACKGROUND_QUANTILE``) of each channel in the ring beyond it, out to
      ``BACKGROUND_RADIUS``: a glow or a spike there would raise a mean;
    * red/green and blue/green are measured separately, each on the rim pixels where both
      of its channels are unclipped: a warm lamp's glow has red clipped long after blue and
      green are not, and those pixels still tell blue from green;
    * lights whose rim shows too little excess stay white.
    """
    import cv2
    flat_core = core.ravel().astype(bool)
    # the rings around a core are the rings around its boundary pixels
    inner = cv2.erode(core, np.ones((3, 3), np.uint8))
    edge = inner[cy, cx] == 0
    if not edge.any():                                     # no pixel outside any core
        return np.ones((n, 3))
    by, bx, bl = cy[edge], cx[edge], lab[edge]
    idx_r, lab_r = _around(by, bx, bl, comp_gain, RIM_RADIUS, h, w)
    idx_b, lab_b = _around(by, bx, bl, comp_gain, BACKGROUND_RADIUS, h, w)
    pos = np.minimum(np.searchsorted(idx_r, idx_b), idx_r.size - 1)
    ring = (idx_r[pos] != idx_b) & ~flat_core[idx_b]
    ry, rx = np.divmod(idx_b[ring], w)
    bg = _low_quantile(lab_b[ring], lin[ry, rx].astype(np.float64), n, BACKGROUND_QUANTILE)
    rim = ~flat_core[idx_r]
    ry, rx = np.divmod(idx_r[rim], w)
    rpx = lin[ry, rx].astype(np.float64)
    rl = lab_r[rim]
    exc = np.maximum(rpx - bg[rl], 0.0)
    unclipped = rpx < CLIP_LEVEL
    ratio = np.ones((n, 3))
    good = np.ones(n, bool)
    for c in (0, 2):                                       # red and blue against green
        both = unclipped[:, c] & unclipped[:, 1]
        sc = np.bincount(rl[both], exc[both, c], minlength=n)
        sg = np.bincount(rl[both], exc[both, 1], minlength=n)
        ok = sc + sg > COLOUR_MIN_EXCESS
        ratio[ok, c] = np.minimum(sc[ok] / np.maximum(sg[ok], 1e-9), MAX_RATIO)
        good &= ok
    colour = np.ones((n, 3))
    colour[good] = ratio[good] / (ratio[good] @ np.array([0.2126, 0.7152, 0.0722]))[:, None]
    return 1.0 + COLOUR_WEIGHT * (colour - 1.0)


def _low_quantile(labels, values, n, q):
    """Per label, the `q` quantile (the lower of the two neighbouring values) of each column of
    `values`; 0 for labels with no values."""
    out = np.zeros((n, values.shape[1]))
    cnt = np.bincount(labels, minlength=n)
    has = cnt > 0
    start = np.cumsum(cnt) - cnt
    k = (start + np.floor(q * (cnt - 1)).astype(np.int64))[has]
    for c in range(values.shape[1]):
        order = np.lexsort((values[:, c], labels))
        out[has, c] = values[order, c][k]
    return out


def boost_factors(lin: np.ndarray, gain: float = DEFAULT_GAIN, coc: np.ndarray | None = None):
    """Sparse highlight boost: ``(ys, xs, factor)`` of the pixels to raise, or None.

    `coc` (H, W), optional: signed CoC in working pixels; light sources that stay in focus
    (|coc| < 1) keep their clipped value (they stay clipped in the output).  Multiplying
    ``lin[ys, xs]`` by ``factor`` gives :func:`boost`'s image; the renderer applies it band
    by band, so no boosted copy of the whole photo is made.
    """
    if gain <= 1.0:
        return None
    return blurred_only(highlight_mask(lin, gain), coc)


def blurred_only(found, coc: np.ndarray | None = None):
    """:func:`boost_factors` from :func:`highlight_mask`'s result: light sources that stay in
    focus (``|coc| < 1``, working pixels) are dropped.  (The renderer finds the lights while
    the depth map is prepared, then calls this.)"""
    if found is None:
        return None
    ys, xs, factor = found
    m = factor - 1.0
    if coc is not None:
        w = np.clip(np.abs(coc[ys, xs]) - 0.5, 0.0, 1.0)
        m *= w[:, None] if m.ndim == 2 else w
    sel = (m.max(axis=1) if m.ndim == 2 else m) > 1e-6
    if not sel.any():
        return None
    return ys[sel], xs[sel], 1.0 + m[sel]


def boost(lin: np.ndarray, gain: float = DEFAULT_GAIN, coc: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Return (image with light sources scaled towards `gain` x, number of boosted pixels).

    `coc` as in :func:`boost_factors`.
    """
    found = boost_factors(lin, gain, coc)
    if found is None:
        return lin, 0
    ys, xs, f = found
    out = lin.copy()
    out[ys, xs] *= f
    return out, int(ys.size)
