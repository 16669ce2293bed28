"""Finishing steps after the lens: texture, grain, borders, saturation.

They run in this order on the rendered image (:func:`apply`), using the original and the
signed CoC map to know where, and how much, the image was blurred:

* **texture** (paintings): a fraction of the original's fine high-pass texture (canvas,
  brush strokes, paper) is put back where the lens blurred it; soft-clipped, and left out
  near large edges, so the blurred shapes do not sharpen again;
* **grain** (old photos): the photo's grain is measured in its flat areas (the high-pass
  residual's standard deviation as a function of brightness, and its correlation between
  neighbouring pixels) and matching synthetic grain is added where the blur removed the
  original's;
* **borders** (scans): scanner borders and frames found by :func:`detect_border` are put
  back as they were (the pipeline also keeps them sharp while rendering);
* **saturation**.

How much a pixel was blurred: a disc of radius r averages about pi r^2 independent grain
samples, so the fraction of fine detail that survives is about 1 / (sqrt(pi) r); what
finishing puts back is weighted by ``sqrt(1 - 1 / (pi r^2))`` (0 for r < 1/sqrt(pi): pixels
in focus are never touched).  Texture and grain work on sRGB-encoded values (grain and
canvas are perceptually uniform there), everything else in linear light.
"""
from __future__ import annotations

import math

import numpy as np


GRAIN_HIGHPASS_SIGMA = 1.5      # px: what "grain" means (residual of a Gaussian of this sigma)
GRAIN_BINS = 8                  # brightness bins of the grain-vs-brightness curve
TEXTURE_SIGMA = 1.5             # px at 2000 px long side (scales with the image), fine texture
TEXTURE_CLIP = 2.5              # soft clip of the texture at this many robust standard deviations
BORDER_MAX_FRACTION = 0.15      # borders are searched in the outer 15% of each side
MOSAIC_PIXELS = 1_500_000       # grain of larger photos is measured on a mosaic of this size
MOSAIC_TILES = 8                # ... of 8 x 8 tiles spread over the photo


# -- weights ---------------------------------------------------------------------------------

def blur_weight(coc) -> np.ndarray:
    """Fraction of fine detail (grain, texture) the lens removed at each pixel, in [0, 1).

    ``sqrt(1 - 1/(pi r^2))`` for a CoC radius r above 1/sqrt(pi) px, else 0."""
    r = np.abs(np.asarray(coc, np.float32))
    with np.errstate(divide="ignore"):
        w = 1.0 - 1.0 / (np.float32(math.pi) * r * r)
    return np.sqrt(np.clip(w, 0, 1)).astype(np.float32)


def _gauss(a, sigma):
    import cv2
    if sigma <= 0:
        return a
    return cv2.GaussianBlur(a, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)


def _grey(img):
    a = np.asarray(img, np.float32)
    if a.ndim == 2:
        return a
    if a.shape[2] == 1:
        return a[..., 0]
    return a[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def _is_monochrome(img) -> bool:
    a = np.asarray(img)
    if a.ndim == 2 or a.shape[2] == 1:
        return True
    return bool(np.abs(a[..., 0] - a[..., 1]).max() < 1e-4 and np.abs(a[..., 1] - a[..., 2]).max() < 1e-4)


_LUT = {}


def _lut(name):
    """65536-entry float32 tables of the sRGB transfer functions (built once)."""
    if name not in _LUT:
        from .color import linear_to_srgb, srgb_to_linear
        x = np.arange(65536, dtype=np.float64) / 65535
        _LUT["enc"] = linear_to_srgb(x).astype(np.float32)
        _LUT["dec"] = srgb_to_linear(x).astype(np.float32)
    return _LUT[name]


def _index16(v):
    a = np.clip(np.asarray(v, np.float32), 0, 1)
    a *= np.float32(65535)
    a += np.float32(0.5)
    return a.astype(np.uint16)


def _to_s(lin):
    """sRGB encoding through a 16-bit table (error < 1e-4; refocus.color's float64
    formulas take seconds at 12 MP).  Finishing only keeps its results where it changes
    pixels, so in-focus pixels never go through the table."""
    return np.take(_lut("enc"), _index16(lin))


def _to_lin(s):
    return np.take(_lut("dec"), _index16(s))


def _where_blurred(k, new, old):
    """`new` where the weight k > 0, else exactly `old` (no round trip through sRGB)."""
    kk = k[..., None] if new.ndim == 3 else k
    return np.where(kk > 0, new, old).astype(np.float32, copy=False)


# -- grain -----------------------------------------------------------------------------------

class GrainModel:
    """Grain of a photo: high-pass std (sRGB units) against brightness, and lag-1 correlation."""

    def __init__(self, levels, stds, rho, n_samples):
        self.levels = np.asarray(levels, np.float32)     # bin centres, sRGB grey 0..1
        self.stds = np.asarray(stds, np.float32)
        self.rho = float(rho)                            # lag-1 correlation of the residual
        self.n_samples = int(n_samples)

    def std_at(self, brightness):
        return np.interp(brightness, self.levels, self.stds).astype(np.float32)

    @property
    def sigma(self) -> float:
        """Gaussian blur of white noise whose high-pass residual has the measured lag-1
        correlation (0 = white), from a table measured once on synthetic noise."""
        sig, rho = _rho_table()
        if self.rho <= rho[0]:
            return 0.0
        return float(np.interp(self.rho, rho, sig))

    def describe(self) -> str:
        return (f"grain std {self.stds.min() * 255:.1f}..{self.stds.max() * 255:.1f} /255, "
                f"correlation {self.rho:.2f}")


_RHO_TABLE = None


def _rho_table():
    """(sigmas, lag-1 correlations of the high-passed noise), increasing."""
    global _RHO_TABLE
    if _RHO_TABLE is None:
        n = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
        sig = np.array([0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0])
        rho = []
        for sg in sig:
            r = _highpass(_gauss(n, sg))
            rho.append(_lag1(r, np.ones(r.shape, bool)))
        rho = np.maximum.accumulate(np.array(rho))
        _RHO_TABLE = (sig, rho)
    return _RHO_TABLE


def _highpass(g, sigma=GRAIN_HIGHPASS_SIGMA):
    return g - _gauss(g, sigma)


def _lag1(r, mask):
    """Correlation of r with its right and lower neighbours over mask pixels."""
    num = den = 0.0
    for a, b, m in ((r[:, :-1], r[:, 1:], mask[:, :-1] & mask[:, 1:]),
                    (r[:-1], r[1:], mask[:-1] & mask[1:])):
        if m.sum() < 50:
            continue
        x, y = a[m].astype(np.float64), b[m].astype(np.float64)
        x -= x.mean()
        y -= y.mean()
        num += (x * y).sum()
        den += math.sqrt((x * x).sum() * (y * y).sum())
    return num / den if den > 0 else 0.0


def estimate_grain(linear, *, exclude=None) -> GrainModel | None:
    """Measure a photo's grain in its flat areas (None when there are too few of them).

    Flat: the local standard deviation of the smoothed image (structure, not grain) is in
    the lowest third.  `exclude`: boolean mask of pixels not to use (e.g. borders)."""
    grey = _grey(linear)
    m = max(2, int(3 * GRAIN_HIGHPASS_SIGMA))
    seams = None
    if grey.size > 2 * MOSAIC_PIXELS:
        # large photos: measure on a mosaic of tiles spread over the image (grain is the same
        # everywhere; the tiles' seams are left out of the measurement)
        n = MOSAIC_TILES
        ts = int(math.sqrt(MOSAIC_PIXELS / (n * n)))
        H, W = grey.shape
        ys = np.linspace(0, H - ts, n).astype(int)
        xs = np.linspace(0, W - ts, n).astype(int)
        grey = np.block([[grey[y:y + ts, x:x + ts] for x in xs] for y in ys])
        if exclude is not None:
            ex = np.asarray(exclude, bool)
            exclude = np.block([[ex[y:y + ts, x:x + ts] for x in xs] for y in ys])
        seams = np.zeros(grey.shape, bool)
        for k in range(1, n):
            seams[k * ts - m:k * ts + m] = True
            seams[:, k * ts - m:k * ts + m] = True
    g = _to_s(grey)
    r = _highpass(g)
    smooth = _gauss(g, 2.0)
    struct = np.sqrt(np.maximum(_gauss(smooth * smooth, 3.0) - _gauss(smooth, 3.0) ** 2, 0))
    ok = np.ones(g.shape, bool) if seams is None else ~seams
    ok[:m], ok[-m:], ok[:, :m], ok[:, -m:] = False, False, False, False
    ok &= (smooth > 0.02) & (smooth < 0.98)                     # clipped areas have no grain
    if exclude is not None:
        ok &= ~np.asarray(exclude, bool)
    if ok.sum() < 200:
        return None
    step = max(1, int(math.sqrt(g.size / 1e6)))
    flat = ok & (struct <= np.percentile(struct[::step, ::step][ok[::step, ::step]], 33))
    if flat.sum() < 200:
        return None
    vals, res = smooth[flat], r[flat]
    edges = np.quantile(vals, np.linspace(0, 1, GRAIN_BINS + 1))
    levels, stds = [], []
    glob = 1.4826 * float(np.median(np.abs(res - np.median(res))))
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (vals >= lo) & (vals <= hi)
        if sel.sum() < 30 or hi - lo < 1e-6 and levels:
            continue
        rr = res[sel]
        levels.append(float(np.median(vals[sel])))
        stds.append(1.4826 * float(np.median(np.abs(rr - np.median(rr)))))
    if not levels:
        levels, stds = [0.5], [glob]
    order = np.argsort(levels)
    return GrainModel(np.array(levels)[order], np.array(stds)[order], _lag1(r, flat), flat.sum())


def synth_grain(shape, model: GrainModel, *, seed=0) -> np.ndarray:
    """Unit grain: Gaussian noise blurred to the model's correlation, scaled so that its
    high-pass residual (the quantity :func:`estimate_grain` measures) has std 1."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(shape).astype(np.float32)
    n = _gauss(n, model.sigma)
    hp = _highpass(n)
    return (n / max(float(hp.std()), 1e-6)).astype(np.float32)


def add_grain(out, original, coc, amount=1.0, *, model=None, seed=0, exclude=None):
    """Add grain matched to `original` where `out` was blurred; returns (image, model or None)."""
    if amount <= 0:
        return out, None
    model = model or estimate_grain(original, exclude=exclude)
    if model is None:
        return out, None
    w = blur_weight(coc) * np.float32(amount)
    if not w.any():
        return out, model
    a = np.asarray(out, np.float32)
    s = _to_s(a)
    bright = _gauss(_grey(s) if s.ndim == 3 else s, 2.0)
    n = synth_grain(bright.shape, model, seed=seed) * model.std_at(bright) * w
    s = s + (n[..., None] if s.ndim == 3 else n)        # same grain in every channel: luminance grain
    return _where_blurred(w, _to_lin(s), a), model


# -- texture ---------------------------------------------------------------------------------

def texture_sigma(shape) -> float:
    return TEXTURE_SIGMA * max(1.0, max(shape[:2]) / 2000.0)


def add_texture(out, original, coc, amount):
    """Put back `amount` (0..1) of the original's fine texture where the lens blurred it."""
    if amount <= 0:
        return out
    w = blur_weight(coc)
    if not w.any():
        return out
    sig = texture_sigma(original.shape)
    o = _to_s(np.asarray(original, np.float32))
    t = o - _gauss(o, sig)
    # large edges: where the image at 4x the texture scale still has a steep gradient; the
    # texture there would be the edge itself, so it is left out (feathered)
    import cv2
    step = max(1, int(math.sqrt(t.shape[0] * t.shape[1] / 1e6)))      # statistics on ~1 MP
    big = _gauss(_grey(o) if o.ndim == 3 else o, 2 * sig)
    gm = np.hypot(cv2.Sobel(big, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(big, cv2.CV_32F, 0, 1, ksize=3)) / 8
    thr = max(float(np.percentile(gm[::step, ::step], 90)), 1e-4) * 2.0
    calm = np.clip(1.5 - gm / thr, 0, 1)
    calm = _gauss(calm, 2 * sig)
    c = TEXTURE_CLIP * 1.4826 * float(np.median(np.abs(t[::step, ::step]))) + 1e-4
    t = c * np.tanh(t / c)
    k = (w * calm * np.float32(amount)).astype(np.float32)
    a = np.asarray(out, np.float32)
    s = _to_s(a) + t * (k[..., None] if t.ndim == 3 else k)
    return _where_blurred(k, _to_lin(s), a)


# -- borders ---------------------------------------------------------------------------------

def _uniform_run(lines, tol):
    """How many leading lines (rows of `lines`, outermost first) form a border: near-uniform
    lines (each of one colour; stripes such as a mount and a frame line are fine) that end at
    a sharp line along the side; 0 when there is none.  When the uniform lines fill the whole
    search zone (plain content next to the border), the border ends at the last sharp step
    between two uniform lines."""
    meds = []
    for row in lines:
        med = float(np.median(row))
        if np.mean(np.abs(row - med) <= tol) < 0.97:
            break
        meds.append(med)
    n = len(meds)
    if n == 0:
        return 0
    if n >= len(lines):
        steps = [i + 1 for i in range(n - 1) if abs(meds[i + 1] - meds[i]) > 4 * tol]
        return steps[-1] if steps else 0
    inner = lines[min(n + 1, len(lines) - 1)]                   # (skip one row of transition)
    if np.mean(np.abs(inner - meds[-1]) > 2 * tol) < 0.25:
        return 0                                                 # no sharp line: sky, wall ...
    return n


def _frame_lines(gs, max_fraction, *, span=0.8):
    """Widths (top, bottom, left, right) of a frame whose inner edge is a straight line
    along all four sides (an edge crossing at least `span` of the side's middle part,
    within the outer `max_fraction`), or None.  The innermost such line counts."""
    import cv2
    h, w = gs.shape
    gy = np.abs(cv2.Sobel(gs, cv2.CV_32F, 0, 1, ksize=3)) / 4
    gx = np.abs(cv2.Sobel(gs, cv2.CV_32F, 1, 0, ksize=3)) / 4
    thr = 0.06
    mh, mw = int(h * max_fraction), int(w * max_fraction)
    out = []
    for grad, lines_of in ((gy, lambda a: a[:, mw:w - mw]), (gy[::-1], lambda a: a[:, mw:w - mw]),
                           (gx.T, lambda a: a[:, mh:h - mh]), (gx.T[::-1], lambda a: a[:, mh:h - mh])):
        zone = lines_of(grad)[: (mh if grad.shape[0] == h else mw) + 1]
        # a line may wander by a pixel: the strongest of three neighbouring rows per column
        if zone.shape[0] < 4 or zone.shape[1] < 8:
            return None
        z = np.maximum(np.maximum(zone[:-2], zone[1:-1]), zone[2:])
        frac = (z > thr).mean(axis=1)
        rows = np.nonzero(frac >= span)[0]
        rows = rows[rows >= 1]
        if rows.size == 0:
            return None
        r = int(rows.max())
        # a step between rows k and k + 1 answers on both; the border is rows 0..k
        lo = max(0, r - 2)
        m = zone[lo:r + 4].mean(axis=1)
        k = lo + int(np.argmax(m[:-1] + m[1:]))        # the step lies between rows k and k + 1
        out.append(k + 1)
    return tuple(out)


def _mount_region(gs, tol):
    """An old photo's mount or paper around an arched or oval picture: the region of one
    colour connected to the image edge, covering most of at least three sides and at most
    40% of the image, no deeper than a third of the short side.  Boolean mask or None."""
    import cv2
    h, w = gs.shape
    ring = np.concatenate([gs[0], gs[-1], gs[:, 0], gs[:, -1]])
    c = float(np.median(ring))
    if np.mean(np.abs(ring - c) <= tol) < 0.5:
        return None
    cand = (np.abs(gs - c) <= max(2 * tol, 0.06)).astype(np.uint8)
    n, lab = cv2.connectedComponents(cand, connectivity=4)
    edge_labels = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    edge_labels = edge_labels[edge_labels > 0]
    if edge_labels.size == 0:
        return None
    region = np.isin(lab, edge_labels)
    sides = sum(float(e.mean()) >= 0.5 for e in (region[0], region[-1], region[:, 0], region[:, -1]))
    if sides < 3 or region.mean() > 0.4:
        return None
    depth = cv2.distanceTransform(np.pad(np.ones((h - 2, w - 2), np.uint8), 1), cv2.DIST_L2, 3)
    if depth[region].max() > min(h, w) / 3:
        return None
    return region


def detect_border(linear, *, max_fraction=BORDER_MAX_FRACTION):
    """Scanner borders and frames along the image edges.

    A side has a border when its outermost rows (or columns) are near-uniform -- one colour,
    or several stripes such as a mount and a frame line -- and end at a sharp line that runs
    along most of the side (a sky or a plain wall fades out instead and is not a border).
    An old photo's mount around an arched or oval picture (paper of one colour connected to
    the edge along at least three sides) is found too.
    Returns ``(mask, widths)``: a float32 (H, W) mask, 1 on the border, and the widths in
    pixels of the straight bands (top, bottom, left, right); ``(None, widths)`` when there
    is none.
    """
    import cv2
    g = _to_s(_grey(linear))
    H, W = g.shape
    s = min(1.0, 1000.0 / max(H, W))
    gs = cv2.resize(g, (max(1, round(W * s)), max(1, round(H * s))), interpolation=cv2.INTER_AREA) if s < 1 else g
    gs = cv2.medianBlur(np.ascontiguousarray(gs), 3)
    h, w = gs.shape
    noise = 1.4826 * float(np.median(np.abs(_highpass(gs, 1.0))))
    tol = 0.03 + 3 * noise
    # each side is judged on its middle 70%, away from the other sides' borders
    mh, mw = int(h * max_fraction), int(w * max_fraction)
    mid_r, mid_c = gs[:, mw:w - mw], gs[mh:h - mh]
    sides = {"top": mid_r[: mh + 1], "bottom": mid_r[::-1][: mh + 1],
             "left": mid_c.T[: mw + 1], "right": mid_c.T[::-1][: mw + 1]}
    widths = {}
    for name, lines in sides.items():
        n = _uniform_run(lines, tol) if lines.shape[0] > 2 and lines.shape[1] > 4 else 0
        widths[name] = int(math.ceil(n / s)) if n else 0
    frame = _frame_lines(gs, max_fraction)
    if frame is not None:                       # a distinct frame: its inner edge on all four sides
        for name, n in zip(("top", "bottom", "left", "right"), frame):
            widths[name] = max(widths[name], int(math.ceil(n / s)))
    widths = (widths["top"], widths["bottom"], widths["left"], widths["right"])
    mount = _mount_region(gs, tol)
    if not any(widths) and mount is None:
        return None, widths
    m = np.zeros((H, W), np.float32)
    if mount is not None:
        mm = cv2.resize(mount.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
        # one pixel more, so the mount's edge against the picture stays crisp
        m = cv2.dilate(mm, np.ones((3, 3), np.uint8)).astype(np.float32)
    t, b, l, r = widths
    if t:
        m[:t] = 1
    if b:
        m[H - b:] = 1
    if l:
        m[:, :l] = 1
    if r:
        m[:, W - r:] = 1
    return m, widths


def border_text(widths, mask=None) -> str:
    names = ("top", "bottom", "left", "right")
    parts = [f"{n} {v} px" for n, v in zip(names, widths) if v]
    if mask is not None:
        band = sum(widths[:2]) * mask.shape[1] + sum(widths[2:]) * mask.shape[0]
        if mask.sum() > 1.2 * band:
            parts.append(f"mount or paper around the picture, {100 * float(mask.mean()):.0f}% of the image")
    return ", ".join(parts)


# -- saturation ------------------------------------------------------------------------------

def saturate(img, amount: float):
    """Scale the colourfulness around each pixel's luminance (Rec. 709 weights, linear light)."""
    if img.ndim == 2 or img.shape[2] == 1:
        return img
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.clip(y[..., None] + (img - y[..., None]) * np.float32(amount), 0, 1).astype(np.float32)


# -- all -------------------------------------------------------------------------------------

def apply(out, original, coc, settings, *, notes=None, border_mask=None, seed=0):
    """Apply the finishing steps the settings ask for; returns the new image.

    `border_mask`: (H, W) in [0, 1] of the borders to restore (from :func:`detect_border`;
    the pipeline finds it before rendering).  One line per step is appended to `notes`.
    """
    notes = notes if notes is not None else []
    out = np.asarray(out, np.float32)
    original = np.asarray(original, np.float32)
    if out.ndim == 3 and out.shape[2] == 1:             # (H, W, 1): work on (H, W)
        res = apply(out[..., 0], original.reshape(out.shape[:2]), coc, settings, notes=notes,
                    border_mask=border_mask, seed=seed)
        return res[..., None]
    if getattr(settings, "texture", 0) > 0:
        out = add_texture(out, original, coc, settings.texture)
        notes.append(f"finish: texture x{settings.texture:g} of the fine texture (sigma "
                     f"{texture_sigma(original.shape):.1f} px) kept in blurred areas")
    if getattr(settings, "grain", 0) > 0:
        excl = border_mask > 0.5 if border_mask is not None else None
        out, model = add_grain(out, original, coc, settings.grain, seed=seed, exclude=excl)
        if model is None:
            notes.append("finish: grain not added (too few flat areas to measure the photo's grain)")
        else:
            notes.append(f"finish: grain x{settings.grain:g} re-synthesised in blurred areas "
                         f"({model.describe()}" + (", monochrome" if _is_monochrome(original) else "") + ")")
    if border_mask is not None:
        m = np.clip(np.asarray(border_mask, np.float32), 0, 1)
        mm = m[..., None] if out.ndim == 3 else m
        out = (original * mm + out * (1 - mm)).astype(np.float32)
        notes.append("finish: border restored from the original")
    if settings.saturation != 1.0:
        out = saturate(out, settings.saturation)
        notes.append(f"finish: saturation x{settings.saturation:g}")
    return out
