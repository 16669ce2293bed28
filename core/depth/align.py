"""Depth edges moved onto the photo's outlines: a map whose steps sit a few pixels off.

A depth map from a model, or one drawn or filtered by hand, often has its steps a few pixels
away from the object's outline in the photo: grown (a halo of background rendered at the
subject's depth: a sharp ring of background around a sharp subject, or a blurred ring of it
around a blurred one) or shrunk (the subject's rim rendered as background).  The photo says
where the outline really is.  For each step of the map this module looks along the step's
normal, up to ``REACH`` pixels to both sides, for the photo's colour edge, and moves the step
there when the evidence is clear:

* *strong*: the new place is the photo edge nearest to the map's edge among those with at
  least ``PEAK`` of the strongest (so repeated edges, bars or a fence, give the neighbour);
  its colour jump, averaged along the outline (``ALONG``), is ``RATIO`` times what the photo
  has at the map's edge, and over ``MIN_CONTRAST``;
* *kept*: a map edge that already sits on a photo edge (a local peak of at least ``KEEP`` of
  the strongest) stays: an object's own inner edges (a coin's rim, a sign's border) do not
  pull an exact outline inwards;
* *alike*: the band of pixels that changes side looks more like the side it joins than like
  the side it leaves, and both sides are there in the map beyond the new place (a hair one
  pixel wide has no inside to shrink to);
* *consistent*: an odd shift gives way to the one most of the outline nearby, facing the
  same way, has (``MODE``); an outline moves only where most of it (``MAJORITY``) wants to
  move the same way (a map that is off is off along the whole outline, while a correct map
  only disagrees with the photo in places, where the object's edge colour matches the
  background); and an outline, or all the outlines of one depth level, that mostly agree on
  one shift, or whose evidence summed over all of them clearly says it, move whole
  (:func:`_together`): the holes of a fence whose map is grown, a row of coins, a textured
  object whose map edge lies in its own texture.

The pixels along a moved step then go to the side whose colour they mostly have (coverage of
at least one half, the rule exact maps follow), so the new step lies on the outline to the
pixel.  Exact maps, hard steps on photo edges, slopes and smooth maps are returned as they
are.

Measured on the public benchmark (``bench/robustness.py``, PSNR over all 48 configs):
exact maps unchanged; see docs/renderer.md for the table of corrupted maps.
"""
from __future__ import annotations

import numpy as np

REACH = 9.0          # px per 640 of the long side: farthest a step is moved
STEP = 0.05          # a 4-neighbour disparity difference of at least this is a depth step
RATIO = 2.0          # the photo's edge at the new place / at the map's edge
KEEP = 0.25          # a photo edge at the map's edge with this share of the strongest keeps it
PEAK = 0.5           # photo edges with this share of the strongest are candidates (nearest wins)
MIN_CONTRAST = 0.08  # sum over R, G, B of the sRGB jump (0..1) at the new place
ALONG = 6.0          # px per 640: averaging of the evidence along the outline (Gaussian sigma)
MODE = 12.0          # px per 640: neighbourhood whose usual shift replaces an odd one
MAJORITY = 0.5       # share of an outline that must want to move the same way
FILL = 0.6           # share of an outline agreeing on one shift (+-1 px) that moves all of it
WORK = 1280          # long side of the grid the shifts are estimated on (larger maps: scaled)
_COVER_MIN = 0.003   # squared linear colour distance between the sides below which colour can't tell


def _k4():
    return np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)


def _steps(d: np.ndarray):
    """Near-side and far-side pixels of the map's steps, and the 4-neighbour min and max."""
    import cv2
    lo = cv2.erode(d, _k4(), borderType=cv2.BORDER_REPLICATE)
    hi = cv2.dilate(d, _k4(), borderType=cv2.BORDER_REPLICATE)
    return (d - lo) > STEP, (hi - d) > STEP, lo, hi


def _gradient(d: np.ndarray, sigma: float):
    """Gradient of `d` smoothed with `sigma` (two arrays); normals point down it (near to far)."""
    import cv2
    ds = cv2.GaussianBlur(d, (0, 0), sigma)
    return cv2.Sobel(ds, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(ds, cv2.CV_32F, 0, 1, ksize=3)


def _unit(nx: np.ndarray, ny: np.ndarray):
    nn = np.hypot(nx, ny) + 1e-12
    return nx / nn, ny / nn


def _values(a: np.ndarray) -> np.ndarray:
    """The distinct values of `a`, sorted: ``np.unique(a)``, which in numpy 2 imports
    ``numpy.ma`` on its first call (13 ms of every command: not in the command's path)."""
    a = np.sort(a, axis=None)
    return a[np.r_[True, a[1:] != a[:-1]]] if a.size else a


def _median0(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=0)`` (which imports ``numpy.ma`` on its first call too)."""
    a = np.sort(a, axis=0)
    k = a.shape[0]
    return a[k // 2] if k % 2 else (a[k // 2 - 1] + a[k // 2]) / 2


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of `img` at the points (x, y) (edges replicated); shape (n,) + channels."""
    import cv2
    n = len(x)
    cols = 4096                                          # remap's maps must stay under 32767 wide
    rows = max(1, -(-n // cols))
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(img, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((rows * cols,) + img.shape[2:])[:n]


def _area_taps(n_src: int, n_dst: int):
    """Area-average weights along one axis, n_src pixels onto n_dst <= n_src cells (as
    OpenCV's INTER_AREA): for each source pixel its first cell, the weight there, and the
    weight in the next cell (0 when it lies in one cell only)."""
    r = n_src / n_dst                                   # cell length in source pixels, >= 1
    y = np.arange(n_src, dtype=np.float64)
    j0 = np.minimum((y / r).astype(np.intp), n_dst - 1)
    end0 = (j0 + 1) * r                                 # where the first cell ends
    w0 = (np.minimum(y + 1.0, end0) - y) / r
    w1 = np.where(j0 + 1 < n_dst, np.maximum(y + 1.0 - end0, 0.0) / r, 0.0)
    return j0, w0, w1


def _scatter_area(v, ty, tx, ys, xs, hq: int, wq: int) -> np.ndarray:
    """The (hq, wq) area average of a map that is `v` at (ys, xs) and zero elsewhere
    (`ty`, `tx`: :func:`_area_taps` of its two axes)."""
    j0, wy0, wy1 = (t[ys] for t in ty)
    i0, wx0, wx1 = (t[xs] for t in tx)
    j1, i1 = np.minimum(j0 + 1, hq - 1), np.minimum(i0 + 1, wq - 1)
    v = np.broadcast_to(np.asarray(v, np.float64), ys.shape)
    idx = np.concatenate([j0 * wq + i0, j0 * wq + i1, j1 * wq + i0, j1 * wq + i1])
    wts = np.concatenate([wy0 * wx0 * v, wy0 * wx1 * v, wy1 * wx0 * v, wy1 * wx1 * v])
    return np.bincount(idx, wts, hq * wq).astype(np.float32).reshape(hq, wq)


def _shifts(d: np.ndarray, steps, img: np.ndarray, scale: float):
    """Shift (px, + = the near side grows) for each near-side step pixel of `d`, or None.

    `steps`: :func:`_steps` of `d`; `img`: (H, W, 3) float32 perceptual (sRGB-like) colour
    in [0, 1], same grid as `d`.
    """
    import cv2
    H, W = d.shape
    En, _, lo, _ = steps
    ys, xs = np.nonzero(En)
    n = len(ys)
    if n == 0:
        return None
    S = max(2, int(round(REACH * scale)))
    along, mode_sigma = ALONG * scale, MODE * scale
    gx, gy = _gradient(d, 2.0)
    nx, ny = _unit(-gx[ys, xs], -gy[ys, xs])
    offs = np.arange(-S - 3, S + 4)                     # colour at whole-pixel steps along the normal
    C = np.stack([_sample(img, xs + o * nx, ys + o * ny) for o in offs])

    def at(o):
        return C[int(o) - offs[0]]

    mid = 0.5 * (d[ys, xs] + lo[ys, xs])

    def map_at(o, j):
        """The map (nearest pixel) at offset o along the normal, for the step pixels j."""
        x = np.clip(np.rint(xs[j] + o * nx[j]).astype(np.intp), 0, W - 1)
        y = np.clip(np.rint(ys[j] + o * ny[j]).astype(np.intp), 0, H - 1)
        return d[y, x]

    shifts = np.arange(-S, S + 1)                       # candidate edge between offsets s and s + 1
    prof = np.stack([np.abs(at(s + 1) - at(s)).sum(-1) for s in shifts])

    def averager(sigma, groups=(np.arange(n),)):
        """Normalised Gaussian average over the step pixels, on a grid coarse enough for sigma."""
        q = max(1, int(sigma // 3))
        hq, wq = -(-H // q), -(-W // q)
        if q == 1:
            tmp = np.zeros((H, W), np.float32)

            def smooth(v, g):
                tmp[ys[g], xs[g]] = v
                r = cv2.GaussianBlur(tmp, (0, 0), sigma)[ys[g], xs[g]]
                tmp[ys[g], xs[g]] = 0.0
                return r
        else:
            # the step pixels are sparse: their area average onto the coarse grid (what
            # INTER_AREA does to a map that is zero elsewhere) is scattered from them directly,
            # instead of resizing a full-size map for every average (a 3:2 photo: 72 resizes
            # of 1280x853, 118 ms)
            ty, tx = _area_taps(H, hq), _area_taps(W, wq)

            def smooth(v, g):
                a = _scatter_area(v, ty, tx, ys[g], xs[g], hq, wq)
                a = cv2.GaussianBlur(a, (0, 0), sigma / q)
                return _sample(a, (xs[g] + 0.5) / q - 0.5, (ys[g] + 0.5) / q - 0.5)

        norms = [np.maximum(smooth(np.float32(1.0), g), 1e-9) for g in groups]

        def avg(v):
            r = np.empty(n, np.float32)
            for g, norm in zip(groups, norms):
                r[g] = smooth(v[g], g) / norm
            return r
        return avg

    avg = averager(along)
    A = np.stack([avg(p) for p in prof])                 # evidence averaged along the outline
    i0, ar = S, np.arange(n)
    strongest = A.max(0)
    # of the photo's edges (local maxima) with at least PEAK of the strongest one, the one
    # nearest to the map's edge: with repeated edges (bars, a fence) the neighbour, not any
    pad = np.pad(A, ((1, 1), (0, 0)), constant_values=-1.0)
    peak = (A >= pad[:-2]) & (A >= pad[2:]) & (A >= PEAK * strongest[None])
    best = np.where(peak, np.abs(shifts)[:, None], 1 << 20).argmin(0)
    bval = A[best, ar]
    s_best = shifts[best]
    here = A[i0 - 1:i0 + 2].max(0)
    keep = (A[i0] >= A[i0 - 1]) & (A[i0] >= A[i0 + 1]) & (A[i0] >= KEEP * strongest)
    ok = (bval > RATIO * here) & (bval > MIN_CONTRAST) & ~keep & (s_best != 0)
    # (with no step pixel clear on its own, the outlines together may still be: below)
    # the band that changes side must look more like the side it joins
    band = np.zeros((n, 3), np.float32)
    near_c = np.zeros((n, 3), np.float32)
    far_c = np.zeros((n, 3), np.float32)
    for s in _values(s_best[ok]):
        j = ok & (s_best == s)
        rng = range(1, s + 1) if s > 0 else range(s + 1, 1)
        band[j] = np.mean([at(o)[j] for o in rng], 0)
        inner, outer = min(0, s), max(0, s) + 1
        near_c[j] = (at(inner - 1)[j] + at(inner - 2)[j]) / 2
        far_c[j] = (at(outer + 1)[j] + at(outer + 2)[j]) / 2
        # ... and those two sides must be there in the map (a hair 1 px wide has no inside
        # to shrink to, a gap narrower than the shift no outside to grow into)
        sides = [(o, True) for o in (inner - 1, inner - 2)] + [(o, False) for o in (outer + 1, outer + 2)]
        for o, want_near in sides:
            is_near = map_at(o, j) >= mid[j]
            ok[np.nonzero(j)[0][is_near != want_near]] = False
    to_near = avg(np.abs(band - near_c).sum(-1)) < avg(np.abs(band - far_c).sum(-1))
    ok &= np.where(s_best > 0, to_near, ~to_near)
    sh = np.where(ok, s_best, 0).astype(np.float32)
    if sh.any():
        # an odd shift gives way to the one most of the outline nearby has
        # (step pixels voting separately by the way they face, 8 directions: the two sides
        # of a bar shifted sideways want opposite shifts)
        facing = np.round(np.arctan2(ny, nx) * (4 / np.pi)).astype(np.intp) % 8
        vote = averager(mode_sigma, [g for g in (np.nonzero(facing == b)[0] for b in range(8)) if len(g)])
        vals = _values(sh)
        usual = vals[np.stack([vote((sh == v).astype(np.float32)) for v in vals]).argmax(0)]
        sh = np.where(np.abs(sh - usual) <= 1, sh, usual).astype(np.float32)
    sh = _together(sh, d, En, ys, xs, A, here, S, along, map_at, mid)
    if not sh.any():
        return None
    return ys, xs, sh.astype(np.float32)


def _together(sh, d, En, ys, xs, A, here, S, along, map_at, mid):
    """The shifts of :func:`_shifts` made consistent along outlines and between them.

    * An outline (connected near-side step pixels) moves only where most of it
      (``MAJORITY``) wants to move the same way: a map that is off is off along the whole
      outline, while a correct map only disagrees with the photo in places.
    * An outline most of which (``FILL``) agrees on one shift (+-1 px) is off by it all
      along: the stretches where the photo's evidence was weak (an edge the colour of the
      background, texture at the map's edge) move with the rest.
    * So are all the outlines of one depth level (the holes of a fence, a row of coins, the
      sides of a sign) when most of their pixels agree, or when their evidence summed over
      all of them (each pixel's profile scaled to its strongest edge) lies clearly at one
      shift: ``RATIO`` times the edge at the map's, or, for outlines of at least ten
      evidence lengths whose summed edge at the map's place is no peak, more than that edge
      and ``RATIO`` times the median.  Not an outline whose own photo edges are stronger at
      the map's edge than at that shift: that one is right, whatever the others do.

    A pixel moved this way takes, of the shift and its two neighbours, the one where its
    own photo edge is strongest, if both sides are there in the map beyond it.  A part that
    its level grows needs no inside, and a sliver (:func:`_thin`: nowhere two pixels thick) no
    sides at all: it is what is left of a part the map lost (a pole, a letter's stroke
    narrower than twice an erosion).
    """
    import cv2
    i0, ar = S, np.arange(len(sh))
    shifts = np.arange(-S, S + 1)
    n_lab, lab = cv2.connectedComponents(En.astype(np.uint8), connectivity=8)
    lab = lab[ys, xs]
    count = np.maximum(np.bincount(lab, minlength=n_lab), 1)
    grow = np.bincount(lab, weights=sh > 0, minlength=n_lab) / count
    shrink = np.bincount(lab, weights=sh < 0, minlength=n_lab) / count
    # the outlines of one depth level
    _, grp = np.unique(np.rint(d[ys, xs] / STEP * 2).astype(np.intp), return_inverse=True)
    grp = grp.ravel()
    n_g = int(grp.max()) + 1
    v_g, agree_g = _consensus(grp, sh, S)
    G = np.stack([np.bincount(grp, weights=a, minlength=n_g) for a in A / np.maximum(A.max(0), 1e-9)])
    g_best = np.where((np.abs(shifts) >= 2)[:, None], G, -1.0).argmax(0)
    Gv, G0 = G[g_best, np.arange(n_g)], G[i0 - 1:i0 + 2].max(0)
    g_peak0 = (G[i0] >= G[i0 - 1]) & (G[i0] >= G[i0 + 1]) & (G[i0] >= KEEP * G.max(0))
    long = np.bincount(grp, minlength=n_g) >= 10 * along
    summed = ((Gv > RATIO * G0) | ((Gv > G0) & ~g_peak0 & long & (Gv > RATIO * _median0(G))))[grp]
    v_g = np.where(summed & (agree_g < FILL), shifts[g_best][grp], v_g)
    by_level = ((agree_g >= FILL) | summed) & (v_g != 0)
    at_v = A[np.clip(v_g[:, None] + np.arange(-1, 2)[None], -S, S) + S, ar[:, None]].max(1)
    there = np.bincount(lab, weights=np.where(by_level, at_v, 0), minlength=n_lab)
    by_level &= (there > np.bincount(lab, weights=np.where(by_level, here, 0), minlength=n_lab))[lab]
    # majority per outline, then agreement per outline
    sh = np.where(((sh > 0) & (grow[lab] >= MAJORITY)) | ((sh < 0) & (shrink[lab] >= MAJORITY)), sh, 0)
    v_c, agree_c = _consensus(lab, sh, S)
    target = np.where(by_level, v_g, v_c)
    fill = np.nonzero(np.where(by_level, np.abs(sh - v_g) > 1, (sh == 0) & (agree_c >= FILL) & (v_c != 0)))[0]
    if len(fill):
        v = target[fill]
        cands = np.stack([np.clip(v + k, -S, S) for k in (-1, 0, 1)])
        cands = np.where(cands == 0, v, cands)
        pick = cands[A[cands + S, fill].argmax(0), np.arange(len(fill))]
        # (growing with its level, a part of the map needs no inside, and a sliver, nowhere
        # two pixels thick, no sides at all: what is left of a part the map lost, a pole,
        # a letter's thin stroke, grows back)
        grows = by_level[fill] & (pick > 0)
        good = grows & _thin(d, ys[fill], xs[fill], mid[fill])
        ok_sides = np.ones(len(fill), bool)
        for s in _values(pick):
            q = pick == s
            inner, outer = min(0, s), max(0, s) + 1
            for o, want_near in ((inner - 1, True), (inner - 2, True), (outer + 1, False), (outer + 2, False)):
                hit = (map_at(o, fill[q]) >= mid[fill[q]]) == want_near
                ok_sides[q] &= hit | (grows[q] & want_near)
        good |= ok_sides
        sh = sh.copy()
        sh[fill[good]] = pick[good]
    return sh


def _thin(d: np.ndarray, ys: np.ndarray, xs: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Step pixels (ys, xs) that lie in no 2x2 block of pixels on their side (d >= mid): the
    map is one pixel thin there."""
    H, W = d.shape

    def near(dy, dx):
        return d[np.clip(ys + dy, 0, H - 1), np.clip(xs + dx, 0, W - 1)] >= mid
    thick = np.zeros(len(ys), bool)
    for by, bx in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        thick |= near(by, bx) & near(by, bx + 1) & near(by + 1, bx) & near(by + 1, bx + 1)
    return ~thick


def _consensus(group: np.ndarray, sh: np.ndarray, S: int):
    """Per step pixel: the shift most of its group agrees on (to +-1 px) and the share of the
    group that does (pixels that do not move count against it)."""
    n_g = int(group.max()) + 1
    nv = 2 * S + 1
    cnt = np.bincount(group * nv + (sh.astype(np.intp) + S), minlength=n_g * nv).reshape(n_g, nv)
    total = np.maximum(cnt.sum(1), 1)
    cnt[:, S] = 0
    win = cnt.copy()
    win[:, 1:] += cnt[:, :-1]
    win[:, :-1] += cnt[:, 1:]
    return (win.argmax(1) - S)[group], (win.max(1) / total)[group]


def _apply(d: np.ndarray, steps, sh_at) -> np.ndarray:
    """Move the steps of `d` (`steps`: :func:`_steps` of `d`): `sh_at(ys, xs)` gives the
    shift (px) at near-side step pixels."""
    import cv2
    H, W = d.shape
    En, Ef, lo, _ = steps
    ys, xs = np.nonzero(En)
    sh = sh_at(ys, xs)
    reach = float(np.abs(sh).max()) + 1.0
    src = np.ones((H, W), np.uint8)
    src[ys, xs] = 0
    dist_n, lab_n = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    py, px = np.nonzero(dist_n <= reach)                 # only pixels a step can reach
    idx = lab_n[py, px] - 1                              # labels number the step pixels in scan order
    del lab_n
    e_dn, e_df, e_sh = d[ys, xs][idx], lo[ys, xs][idx], sh[idx]
    v = d[py, px]
    near = v >= 0.5 * (e_dn + e_df)
    src[:] = 1
    src[Ef] = 0
    dist_f, lab_f = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    fy, fx = np.nonzero(Ef)
    grow = ~near & (e_sh > 0) & (dist_n[py, px] - 0.5 < e_sh)
    shrink = near & (e_sh < 0) & (dist_f[py, px] - 0.5 < -e_sh)
    out = d.copy()
    out[py[grow], px[grow]] = e_dn[grow]
    k = lab_f[py[shrink], px[shrink]] - 1
    out[py[shrink], px[shrink]] = d[fy[k], fx[k]]
    return out


def _settle(out: np.ndarray, before: np.ndarray, linear: np.ndarray, normal_at) -> np.ndarray:
    """Put each pixel along the moved steps on the side whose colour it mostly has (linear
    light: a mixed pixel is a linear blend of the two sides).  (No median smoothing first:
    it erased the wires and twigs a step had been moved onto, 0.1 dB over the corrupted maps.)
    `out` (:func:`_apply`'s result) is changed in place and returned."""
    import cv2
    moved = (np.abs(out - before) > 1e-6).astype(np.uint8)
    zone = cv2.dilate(moved, np.ones((5, 5), np.uint8)) > 0
    En, Ef, lo, hi = _steps(out)
    res = out                                            # _apply's own array; lo/hi read before
    for sel, near_side in ((En & zone, True), (Ef & zone, False)):
        ys, xs = np.nonzero(sel)
        if not len(ys):
            continue
        nx, ny = normal_at(ys, xs)
        c = linear[ys, xs]
        N = (_sample(linear, xs - 2 * nx, ys - 2 * ny) + _sample(linear, xs - 3 * nx, ys - 3 * ny)) / 2
        F = (_sample(linear, xs + 2 * nx, ys + 2 * ny) + _sample(linear, xs + 3 * nx, ys + 3 * ny)) / 2
        v = N - F
        den = (v * v).sum(-1)
        t = ((c - F) * v).sum(-1) / np.maximum(den, 1e-9)
        sure = den > _COVER_MIN
        flip = sure & ((t < 0.5) if near_side else (t >= 0.5))
        res[ys[flip], xs[flip]] = (lo if near_side else hi)[ys[flip], xs[flip]]
    return res


def align_depth_edges(disparity: np.ndarray, linear: np.ndarray) -> tuple[np.ndarray, int]:
    """Return (disparity with its steps moved onto the photo's outlines, pixels changed).

    `disparity`: (H, W) float, 1 = near; `linear`: the photo, (H, W, 3) or (H, W) linear
    light, same size.  The input is not modified; when nothing moves the same array is
    returned.  Large maps: the shifts are estimated on a grid of ``WORK`` pixels (long side)
    and applied at full size.
    """
    import cv2
    d = np.ascontiguousarray(disparity, np.float32)
    H, W = d.shape
    if H < 8 or W < 8:
        return disparity, 0
    lin = np.asarray(linear, np.float32)
    if lin.ndim == 2:
        lin = np.repeat(lin[..., None], 3, axis=2)
    lin = np.ascontiguousarray(lin[..., :3])
    f = max(1.0, max(H, W) / WORK)
    if f > 1:
        Hw, Ww = max(8, int(round(H / f))), max(8, int(round(W / f)))
        d_w = cv2.resize(d, (Ww, Hw), interpolation=cv2.INTER_NEAREST)
        img_w = cv2.resize(lin, (Ww, Hw), interpolation=cv2.INTER_AREA)
    else:
        Hw, Ww, d_w, img_w = H, W, d, lin
    steps_w = _steps(d_w)
    if not steps_w[0].any():
        return disparity, 0
    perceptual = np.sqrt(np.clip(img_w, 0.0, 1.0), dtype=np.float32)   # near sRGB; jumps read as seen
    found = _shifts(d_w, steps_w, perceptual, max(Hw, Ww) / 640.0)
    if found is None:
        return disparity, 0
    wy, wx, wsh = found
    if f == 1:
        table = np.zeros((H, W), np.float32)
        table[wy, wx] = wsh

        def sh_at(ys, xs):
            return table[ys, xs]
    else:
        # each full-size step pixel takes the shift of the nearest working-grid step pixel
        src = np.ones((Hw, Ww), np.uint8)
        src[wy, wx] = 0
        dist, lab = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        field = np.where(dist <= 2.0, wsh[lab - 1], 0).astype(np.float32) * np.float32(f)
        sy, sx = (Hw / H), (Ww / W)

        def sh_at(ys, xs):
            return field[np.minimum((ys * sy).astype(np.intp), Hw - 1), np.minimum((xs * sx).astype(np.intp), Ww - 1)]
    # normals for the moved steps: from the map smoothed over half the reach (so they are
    # defined where the steps went), on the working grid
    gxw, gyw = _gradient(d_w, max(2.0, REACH * max(Hw, Ww) / 640.0 / 2))
    if f == 1:
        def normal_at(ys, xs):
            return _unit(-gxw[ys, xs], -gyw[ys, xs])
    else:
        def normal_at(ys, xs):
            x, y = (xs + 0.5) * (Ww / W) - 0.5, (ys + 0.5) * (Hw / H) - 0.5
            return _unit(-_sample(gxw, x, y), -_sample(gyw, x, y))
    # the work at full size is done in the box around the steps that move
    steps = steps_w if f == 1 else _steps(d)
    ys, xs = np.nonzero(steps[0])
    sh = sh_at(ys, xs)
    mv = sh != 0
    if not mv.any():
        return disparity, 0
    m = int(np.ceil(np.abs(sh).max())) + 8
    y0, y1 = max(0, int(ys[mv].min()) - m), min(H, int(ys[mv].max()) + m + 1)
    x0, x1 = max(0, int(xs[mv].min()) - m), min(W, int(xs[mv].max()) + m + 1)
    dc = d[y0:y1, x0:x1]
    box = (slice(y0, y1), slice(x0, x1))
    moved = _apply(dc, [a[box] for a in steps], lambda yy, xx: sh_at(yy + y0, xx + x0))
    moved = _settle(moved, dc, lin[y0:y1, x0:x1], lambda yy, xx: normal_at(yy + y0, xx + x0))
    out = d.copy()
    out[y0:y1, x0:x1] = moved
    changed = int(np.count_nonzero(moved != dc))
    return (out, changed) if changed else (disparity, 0)
