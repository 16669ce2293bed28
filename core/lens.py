"""The lens: physically based synthetic depth of field from an image and a disparity map.

Conventions (used everywhere in refocus):

* disparity ``d`` in [0, 1], 1 = nearest;
* signed circle of confusion ``r = K * (d - d_f)`` in pixels (radius): ``r > 0`` in front
  of the focal plane, ``r < 0`` behind it;
* images are float32 linear RGB inside; sRGB only at I/O.

How it works (details in ``onnx_models/lens_blur.py`` and ``onnx_models/guided_upsample.py``):

1. A working scale ``s`` is chosen so the largest CoC is at most ``RADIUS_SLOTS`` pixels
   and the working image at most ``PIXEL_BUDGET`` pixels: cost stays nearly flat in
   blur size and resolution.
2. Light sources clipped in the input get their energy back (``highlights.py``; they are
   found in a second thread while the depth map is prepared).
3. The photo is split by CoC into depth slices at the working scale (numpy, below): each
   full-resolution pixel is shared by the two slices around its CoC with linear weights,
   then area-averaged, so depth edges stay exact within a block and slanted surfaces
   blur continuously.
4. The lens-blur graph (given the occupied slices only) fills disoccluded areas, blurs
   each slice with the aperture kernel and composites far to near (partial occlusion on
   both sides of the focus).
5. The guided-upsampling graph lays the blurred layers over the full-resolution
   in-focus layer, cut by the full-resolution CoC map.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import aperture as _aperture
from . import highlights as _highlights
from .errors import BadInputError

RADIUS_SLOTS = 12            # must match the lens_blur graph (checked at run time)
PIXEL_BUDGET = 320_000      # largest working image, pixels
STRIP_PIXELS = 1_000_000    # full-resolution pixels per guided-upsampling call (memory bound)
MIN_BLUR = 0.25             # below this max |CoC| the image is returned unchanged
JUMP = 0.5                  # CoC step (working pixels) between neighbours that counts as a depth edge
BAND_BLOCKS = 32            # block rows sliced at a time (bounded memory)
SLOPE_FULL = 0.005          # CoC slope (working px per px) from which slices are fully blended
COLUMN_TILE_MIN = 0.125     # share of a strip's width the short graph must take to split it in columns
MIN_SHARE = 1e-3            # a blend fraction below this (working px of CoC) is no blend at all


@dataclass
class RenderInfo:
    scale: int = 1
    max_coc: float = 0.0
    working_size: tuple = (0, 0)
    highlight_pixels: int = 0
    hardened_pixels: int = 0     # soft depth-edge pixels moved to a level (depth/edges.py)
    aligned_pixels: int = 0      # pixels that changed side when steps moved onto outlines (depth/align.py)
    disparity: object = None     # the map rendered, when the clean-up changed it (else None)
    device: str = "cpu"
    depth_source: str = ""
    timings: dict = field(default_factory=dict)


def _validate(image, disparity, focus_disparity, K, shape, blades, rotation, highlight_gain):
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise BadInputError("image: expected an array of shape (H, W, 3) or (H, W)")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise BadInputError(f"image: expected 1 or 3 channels, got {image.shape[2]}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise BadInputError(f"image: empty image of shape {image.shape}")
    disparity = np.asarray(disparity)
    if disparity.ndim == 3 and disparity.shape[2] == 1:
        disparity = disparity[..., 0]
    if disparity.shape != image.shape[:2]:
        raise BadInputError(f"disparity: shape {disparity.shape} does not match the image "
                            f"({image.shape[0]}, {image.shape[1]})")
    if not (np.isfinite(disparity.min()) and np.isfinite(disparity.max())):   # NaN, inf propagate
        bad = int((~np.isfinite(disparity)).sum())
        raise BadInputError(f"disparity: {bad} pixel(s) are NaN or infinite")
    for name, v in (("focus_disparity", focus_disparity), ("K (blur)", K), ("highlight_gain", highlight_gain)):
        if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
            raise BadInputError(f"{name}: {v!r} is not a finite number")
    if not 0.0 <= focus_disparity <= 1.0:
        raise BadInputError(f"focus_disparity: {focus_disparity} is outside [0, 1] (1 = nearest)")
    if K < 0:
        raise BadInputError(f"K (blur): {K} is negative; the blur strength must be >= 0")
    if highlight_gain < 1.0:
        raise BadInputError(f"highlight_gain: {highlight_gain} must be >= 1 (1 = no highlight recovery)")
    _aperture.validate(shape, blades, rotation)
    return disparity


def _writeable_f32(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable


def choose_scale(height: int, width: int, max_coc: float) -> int:
    """Working scale: max CoC <= RADIUS_SLOTS working pixels, working image <= PIXEL_BUDGET."""
    by_blur = math.ceil(max_coc / RADIUS_SLOTS - 1e-4)
    by_size = math.ceil(math.sqrt(height * width / PIXEL_BUDGET) - 1e-9)
    return max(1, by_blur, by_size)


def _block_mean(a: np.ndarray, s: int) -> np.ndarray:
    """Mean over s x s blocks of an (hs, ws[, c]) float32 array (dimensions multiples of s)."""
    if s == 1:
        return a
    import cv2
    h, w = a.shape[0] // s, a.shape[1] // s
    if a.ndim == 3 and a.shape[2] > 4:
        return np.stack([_block_mean(a[..., c], s) for c in range(a.shape[2])], axis=-1)
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)


def split_slices(img: np.ndarray, rho: np.ndarray, s: int, R: int = RADIUS_SLOTS,
                 boost=None, band_blocks: int = BAND_BLOCKS, snap=None, occupied=None) -> np.ndarray:
    """Split an image into depth slices at working scale s.

    img: (H, W, 3) float32 linear; rho: CoC in working pixels, within [-R, R), (H, W) or
    edge-padded to whole blocks (h*s, w*s); both are padded band by band.  `snap`: the
    block weights of :func:`snap_plan` for `rho`: each band of rho is snapped to the slots
    as it is sliced (what :func:`snap_to_slots` gives, without a full-size snapped copy).
    `occupied`: a (2R+1,) bool array, set to which slots hold anything (alpha > 0), read
    from the slots that were written only.  `boost`:
    optional sparse highlight boost ``(ys, xs, factor)`` (:func:`highlights.boost_factors`)
    applied to the pixels as they are sliced.  Returns (2R+1, 5, h, w) float32 slots (see
    lens_blur.py): a pixel whose CoC lies between the integers k and k+1 belongs with matte
    1 to slot k and with matte t = rho - k to slot k+1.

    The work is done in bands of `band_blocks` block rows, so no full-resolution temporary
    (boosted or padded copy, products) is ever made: memory stays bounded at any size.
    """
    import cv2
    H, W = img.shape[:2]
    h, w = -(-H // s), -(-W // s)
    Hp, Wp = h * s, w * s
    if rho.shape not in ((H, W), (Hp, Wp)):
        raise ValueError(f"rho of shape {rho.shape} for an image of {(H, W)} at scale {s}")
    out = np.zeros((2 * R + 1, 5, h, w), np.float32)
    written = np.zeros(2 * R + 1, bool)
    if boost is not None:
        order = np.argsort(boost[0], kind="stable")
        boost = tuple(a[order] for a in boost)
    rows = band_blocks * s

    def one_band(y0):
        y1 = min(Hp, y0 + rows)
        band = img[y0:min(y1, H)]
        if boost is not None:
            i0, i1 = np.searchsorted(boost[0], [y0, y1])
            if i1 > i0:
                band = band.copy()
                band[boost[0][i0:i1] - y0, boost[1][i0:i1]] *= boost[2][i0:i1]
        rb = rho[y0:min(y1, rho.shape[0])]
        integral = False
        if snap is not None:
            wb = snap[y0 // s:y1 // s]
            rb = _snap_band(rb, wb, s, R, np.empty_like(rb))
            integral = not wb.any()                  # every block rounded to a whole slot
        pad_y, pad_x = y1 - y0 - band.shape[0], Wp - W
        if pad_y or pad_x:
            band = cv2.copyMakeBorder(np.ascontiguousarray(band), 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        pad_y, pad_x = y1 - y0 - rb.shape[0], Wp - rb.shape[1]
        if pad_y or pad_x:
            rb = cv2.copyMakeBorder(np.ascontiguousarray(rb), 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        written[_split_band(band, rb, s, R, out[:, :, y0 // s:y1 // s], integral)] = True

    _in_bands(one_band, range(0, Hp, rows))          # bands write disjoint block rows
    if occupied is not None:                         # a slot nothing was written to is empty
        occupied[:] = False
        rows_w = np.flatnonzero(written)
        occupied[rows_w] = out[rows_w, 3].reshape(rows_w.size, -1).max(axis=1) > 0
    return out


def _in_bands(work, starts) -> None:
    """``work(start)`` for every start, on ``runtime.threads()`` threads (numpy and OpenCV
    release the GIL in their loops, so bands of a large image run in parallel)."""
    from . import runtime
    n = min(runtime.threads(), len(starts))
    if n > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(n, thread_name_prefix="refocus-bands") as pool:
            list(pool.map(work, starts))
    else:
        for y0 in starts:
            work(y0)


def _split_band(img: np.ndarray, rho: np.ndarray, s: int, R: int, out: np.ndarray,
                integral: bool = False) -> np.ndarray:
    """split_slices for one band of block rows: img (Hb, Wb, 3), rho (Hb, Wb), both multiples
    of s; adds into out (2R+1, 5, Hb/s, Wb/s).  Returns which slots it wrote (bool, 2R+1).
    `integral`: rho holds whole slots only (floor(rho) = rho, no blend: t = 0), so the
    position between slots is not computed."""
    # block statistics of the fast path (all pixels of a block floor to the same slot)
    mean_I = _block_mean(img, s)
    if integral:
        k0 = t = mean_t = None
        shared = False
    else:
        k0 = np.floor(rho).astype(np.int16)
        t = (rho - k0).astype(np.float32)
        mean_t = _block_mean(t, s)
        shared = bool(mean_t.any())      # t >= 0: all zero (no blended pixel in the band) or not
    mean_tI = _block_mean(img * t[..., None], s) if shared else None
    if s == 1:
        kmin = kmax = rho.astype(np.int16) if integral else k0
    else:
        import cv2
        box = np.ones((s, s), np.uint8)      # anchor (0, 0): [::s, ::s] picks each block's extreme
        kmin = np.floor(cv2.erode(rho, box, anchor=(0, 0))[::s, ::s]).astype(np.int16)
        kmax = np.floor(cv2.dilate(rho, box, anchor=(0, 0))[::s, ::s]).astype(np.int16)
    uni = kmin == kmax
    yu, xu = np.nonzero(uni)
    lo = kmin[yu, xu].astype(np.intp) + R
    S = 2 * R + 1
    written = np.bincount(lo, minlength=S) > 0
    if shared:
        written[1:] |= written[:-1]
    for c in range(3):
        out[lo, c, yu, xu] = mean_I[yu, xu, c]
    out[lo, 3, yu, xu] = 1.0
    out[lo, 4, yu, xu] = 1.0
    if shared:                           # else slot lo + 1 gets nothing from these blocks
        for c in range(3):
            out[lo + 1, c, yu, xu] = mean_tI[yu, xu, c]
        out[lo + 1, 3, yu, xu] = mean_t[yu, xu]
    if not uni.all():
        # mixed blocks (depth edges): accumulate pixel by pixel
        ym, xm = np.nonzero(~uni)
        M = len(ym)
        # full-resolution pixels of the mixed blocks
        oy, ox = np.divmod(np.arange(s * s), s)
        py = (ym[:, None] * s + oy[None, :]).ravel()
        px = (xm[:, None] * s + ox[None, :]).ravel()
        cell = np.repeat(np.arange(M), s * s)
        klo = (rho[py, px] if integral else k0[py, px]).astype(np.intp) + R
        tt = np.zeros(py.size, np.float32) if integral else t[py, px]
        inv = 1.0 / (s * s)
        # only the (slot, cell) pairs that occur: a mixed block touches a few of the 2R+1
        # slots, and writing all of them costs more than the sums
        idx_lo = klo * M + cell
        pairs, at = np.unique(np.concatenate([idx_lo, idx_lo + M]), return_inverse=True)
        at_lo, at_hi = at[:idx_lo.size], at[idx_lo.size:]
        n = pairs.size
        ps, pc = np.divmod(pairs, M)
        py_, px_ = ym[pc], xm[pc]
        vals = img[py, px]
        for c in range(3):
            acc = np.bincount(at_lo, vals[:, c], n) + np.bincount(at_hi, vals[:, c] * tt, n)
            out[ps, c, py_, px_] += (acc * inv).astype(np.float32)
        ones = np.bincount(at_lo, None, n) * inv
        out[ps, 3, py_, px_] += (ones + np.bincount(at_hi, tt, n) * inv).astype(np.float32)
        out[ps, 4, py_, px_] += ones.astype(np.float32)
        written[ps] = True
    return written


def snap_to_slots(rho: np.ndarray, s: int, R: int = RADIUS_SLOTS):
    """Decide, pixel by pixel, between one slice and a blend of the two around its CoC.

    Sharing a pixel between the slices k and k+1 gives continuous blur on slanted surfaces,
    but at an object's silhouette the two slices, blurred with different radii and
    composited with "over", add up to the union of both discs: the silhouette swells by a
    fraction of a pixel's blur.  So the CoC is rounded to a whole slice within reach of a
    depth edge (distance < |CoC| + 1 working pixels) and on flat (constant-CoC) surfaces,
    and stays fractional only on smooth slopes away from edges.  Each slice's kernel radius
    is then the mean CoC of its members (`radii`), so a flat object at a fractional CoC is
    still blurred by exactly its own radius.

    rho: (H, W) CoC in working pixels (edge-padded to whole blocks or not).  Returns (rho',
    radii) where radii[i] is the kernel radius of slot i (CoC i - R).  The renderer does not
    make rho': it gives :func:`snap_plan`'s weights to :func:`split_slices`, which snaps
    each band as it slices it.
    """
    weight, radii = snap_plan(rho, s, R)
    out = np.empty_like(rho)
    rows = BAND_BLOCKS * s

    def one_band(y0):
        _snap_band(rho[y0:y0 + rows], weight[y0 // s:(y0 + rows) // s], s, R, out[y0:y0 + rows])

    _in_bands(one_band, range(0, rho.shape[0], rows))
    return out, radii


def _padded_block_mean(a: np.ndarray, s: int) -> np.ndarray:
    """Means over the s x s blocks of `a` (H, W), as if it were edge-padded to whole blocks
    (no padded copy of it: the last block row and column from small padded strips)."""
    import cv2
    H, W = a.shape
    h, w = -(-H // s), -(-W // s)
    if (H, W) == (h * s, w * s):
        return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)
    out = np.empty((h, w), np.float32)
    hf, wf = H // s, W // s
    if hf and wf:
        out[:hf, :wf] = cv2.resize(a[:hf * s, :wf * s], (wf, hf), interpolation=cv2.INTER_AREA)
    if wf < w:
        strip = cv2.copyMakeBorder(np.ascontiguousarray(a[:, wf * s:]), 0, h * s - H, 0, w * s - W,
                                   cv2.BORDER_REPLICATE)
        out[:, wf] = cv2.resize(strip, (1, h), interpolation=cv2.INTER_AREA)[:, 0]
    if hf < h:
        strip = cv2.copyMakeBorder(np.ascontiguousarray(a[hf * s:]), 0, h * s - H, 0, w * s - W,
                                   cv2.BORDER_REPLICATE)
        out[hf] = cv2.resize(strip, (w, 1), interpolation=cv2.INTER_AREA)[0]
    return out


def snap_plan(rho: np.ndarray, s: int, R: int = RADIUS_SLOTS):
    """The block-level part of :func:`snap_to_slots`: (weight, radii), weight (h, w) the share
    of its fractional CoC each block's pixels keep (0: rounded to a whole slot), radii the
    kernel radius of each slot.  rho (H, W) is read as if edge-padded to whole blocks."""
    import cv2
    H, W = rho.shape
    h, w = -(-H // s), -(-W // s)
    if s > 1:
        box = np.ones((s, s), np.uint8)      # anchor (0, 0): [::s, ::s] picks each block's extreme
        hi = cv2.dilate(rho, box, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::s, ::s]
        lo = cv2.erode(rho, box, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[::s, ::s]
        jump = (hi - lo) > JUMP
        rb = _padded_block_mean(rho, s)
    else:
        jump = np.zeros((h, w), bool)
        rb = rho
    dx = np.abs(np.diff(rb, axis=1)) > JUMP
    dy = np.abs(np.diff(rb, axis=0)) > JUMP
    jump[:, 1:] |= dx
    jump[:, :-1] |= dx
    jump[1:, :] |= dy
    jump[:-1, :] |= dy
    if jump.any():
        dist = cv2.distanceTransform((~jump).view(np.uint8), cv2.DIST_L2, 3)
        weight = np.clip((dist - np.abs(rb) - 1.0) * 0.5, 0.0, 1.0)
    else:
        weight = np.ones((h, w), np.float32)
    box = np.ones((5, 5), np.uint8)
    slope = (cv2.dilate(rb, box) - cv2.erode(rb, box)) * 0.25
    weight *= np.clip(slope / SLOPE_FULL, 0.0, 1.0)
    weight = weight.astype(np.float32)
    # kernel radius of each slot: mean CoC of its members (blended ones count as the slot's own)
    S = 2 * R + 1
    rounded = np.clip(np.round(rb), -R, R - 1)
    k = (rounded + R).astype(np.intp).ravel()
    n = np.bincount(k, minlength=S)
    total = np.bincount(k, np.where(weight < 0.5, rb, rounded).ravel().astype(np.float64), minlength=S)
    radii = np.arange(S, dtype=np.float64) - R
    radii[n > 0] = total[n > 0] / n[n > 0]
    return weight, radii


def _snap_band(band: np.ndarray, wb: np.ndarray, s: int, R: int, out: np.ndarray) -> np.ndarray:
    """The snapped CoC of a band of rows of rho that starts on a block row (`wb`: the weights
    of its blocks, :func:`snap_plan`), written into `out` (may be `band` itself)."""
    import cv2
    if not wb.any():                         # every block rounded to a whole slot
        np.rint(band, out=out)
        return np.clip(out, -R, R - 1, out=out)
    r = np.rint(band)
    np.clip(r, -R, R - 1, out=r)
    frac = np.subtract(band, r)
    if s > 1:                                # each block's weight on its s x s pixels
        full = cv2.resize(wb, (wb.shape[1] * s, wb.shape[0] * s), interpolation=cv2.INTER_NEAREST)
        frac *= full[:band.shape[0], :band.shape[1]]
    else:
        frac *= wb
    # A CoC a thousandth of a working pixel off its slot is that slot: left fractional it
    # would put a matte of ~1e-6 into the next slot, which then counts as occupied (on a
    # subject in focus at a d_f a hair below its disparity, a whole "in front" slot and
    # the 10-channel upsampling for nothing: 12 MP upsampling 1.37 -> 0.55 s).
    np.putmask(frac, np.abs(frac) < MIN_SHARE, 0.0)
    return np.add(frac, r, out=out)


def compact_slots(slices: np.ndarray, occupied: np.ndarray | None = None) -> dict:
    """The lens graph's ``slices`` and ``slot_index`` inputs from all 2R + 1 slots: the
    occupied slots in slot order and one zero slot, which every empty slot points to."""
    if occupied is None:
        occupied = slices[:, 3].reshape(slices.shape[0], -1).max(axis=1) > 0
    rows = np.flatnonzero(occupied)
    compact = np.zeros((rows.size + 1,) + slices.shape[1:], np.float32)
    compact[:rows.size] = slices[rows]
    index = np.full(slices.shape[0], rows.size, np.int64)
    index[rows] = np.arange(rows.size)
    return {"slices": compact, "slot_index": index}


def _trim(k: np.ndarray) -> np.ndarray:
    """Drop all-zero outer rings of a centred odd kernel (the convolution is the same, cheaper)."""
    n = k.shape[0] // 2
    while n > 0 and not (k[0].any() or k[-1].any() or k[:, 0].any() or k[:, -1].any()):
        k = k[1:-1, 1:-1]
        n -= 1
    return k


def _kernels(R: int, shape: str, blades: int, rotation: float, radii=None, occupied=None) -> dict:
    """Kernel inputs of the lens graph, one per slot (the in-focus slot has none).

    A slot with no content (``occupied[i]`` false) gets a 1x1 kernel: blurring nothing costs
    nothing, so the graph's cost follows the blur actually present, not the number of slots.
    """
    from refocus.onnx_models import kernel_input_name
    feeds = {}
    for i in range(2 * R + 1):
        if i == R:
            continue
        if occupied is not None and not occupied[i]:
            k = np.ones((1, 1), np.float32)
        else:
            radius = abs(i - R) if radii is None else abs(radii[i])
            # the graph's Conv correlates: flip the kernel so the bokeh has the aperture's orientation
            k = _trim(_aperture.kernel(radius, shape, blades, rotation))[::-1, ::-1]
        feeds[kernel_input_name(i)] = np.ascontiguousarray(np.broadcast_to(k, (4, 1) + k.shape))
    return feeds


def _upsample_tile(graph, fields, image, rho, out, s, tile, low, options=None) -> None:
    """One tile of the guided upsampling: full-resolution rows y0:y1 and columns x0:x1 of the
    photo and rho, from the low-resolution cells ly0:ly1, lx0:lx1 around them (`fields`: the
    graph's low-resolution inputs), written into `out` (which may be `image`: the tile's own
    pixels are read before they are written)."""
    y0, y1, x0, x1 = tile
    ly0, ly1, lx0, lx1 = low
    whole = x0 == 0 and x1 == image.shape[1]
    feeds = {k: np.ascontiguousarray(v[None, :, ly0:ly1, lx0:lx1]) for k, v in fields.items()}
    feeds["rho"] = np.ascontiguousarray(rho[None, None, y0:y1, x0:x1])
    feeds["image"] = np.ascontiguousarray(image[None, y0:y1, x0:x1])
    feeds["upsize"] = np.array([(ly1 - ly0) * s, (lx1 - lx0) * s], np.int64)
    feeds["crop"] = np.array([y0 - ly0 * s, x0 - lx0 * s], np.int64)
    # a strip of whole rows is written by the graph straight into `out` (no copy of its
    # result: 12 MP near 181 -> 155 ms); in place, those are the rows it has read, only by
    # its first node.  A column tile goes through a buffer of its own.
    dst = out[y0:y1] if whole else np.empty((y1 - y0, x1 - x0, 3), np.float32)
    io = graph.io_binding()
    for k, v in feeds.items():
        io.bind_cpu_input(k, v)
    io.bind_output("linear", "cpu", 0, np.float32, [1, y1 - y0, x1 - x0, 3], dst.ctypes.data)
    if options is not None:
        graph.run_with_iobinding(io, options)
    else:
        graph.run_with_iobinding(io)
    if not whole:
        out[y0:y1, x0:x1] = dst


def render_linear(image: np.ndarray, disparity: np.ndarray, focus_disparity: float, K: float, *,
                  aperture: str = "circle", blades: int = 6, rotation: float = 0.0,
                  highlight_gain: float = _highlights.DEFAULT_GAIN, device: str = "auto",
                  harden_edges: bool = True, info: RenderInfo | None = None,
                  in_place: bool = False) -> np.ndarray:
    """Render shallow depth of field.

    Parameters
    ----------
    image : (H, W, 3) or (H, W) float array, linear light, values >= 0.
    disparity : (H, W) float array, d in [0, 1], 1 = nearest.
    focus_disparity : disparity of the focal plane, in [0, 1].
    K : blur strength, CoC radius in pixels per unit of disparity (>= 0).
    aperture, blades, rotation : bokeh shape: ``"circle"`` or ``"polygon"`` with `blades`
        blades turned by `rotation` degrees.
    highlight_gain : radiance given back to clipped light sources (1 = off).
    device : ``auto``, ``cpu``, ``cuda``, ``directml`` or ``coreml``.
    harden_edges : clean up the map's depth edges first
        (:func:`refocus.depth.edges.clean_depth_edges`): blurred steps (as depth models and
        filtered maps have) are made hard at their middle, and steps a few pixels off the
        photo's outlines are moved onto them; exact maps are unchanged.  False renders the
        map as it is.
    info : optional :class:`RenderInfo` filled with what was done.
    in_place : the caller needs neither `image` nor `disparity` afterwards: the result is
        written into `image` and the map's buffer holds the CoC (each when it is a C-contiguous,
        writeable float32 array; ``info.disparity`` is then not kept).  Two full-size
        buffers fewer: at 12 MP 190 MB that are not faulted in (see docs/renderer.md).

    Returns
    -------
    float32 array of the image's shape, linear light in [0, 1].

    Examples
    --------
    >>> import numpy as np, refocus
    >>> img = np.zeros((64, 64, 3), np.float32); img[32, 32] = 1.0
    >>> d = np.zeros((64, 64), np.float32)
    >>> out = refocus.render_linear(img, d, focus_disparity=1.0, K=6.0, highlight_gain=1.0)
    >>> round(float(out.sum()), 2)   # the point became a disc, energy kept
    3.0
    """
    t0 = time.perf_counter()
    info = info if info is not None else RenderInfo()
    disparity = _validate(image, disparity, focus_disparity, K, aperture, blades, rotation, highlight_gain)
    squeeze = None
    if image.ndim == 2 or image.shape[2] == 1:
        squeeze = image.shape
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    image = np.ascontiguousarray(image, dtype=np.float32)
    in_place = in_place and image.flags.writeable
    # the light sources depend on the photo only: found in a second thread (numpy and OpenCV
    # release the GIL) while the depth map is cleaned up and turned into CoC
    lights = None
    if highlight_gain > 1.0:
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(1, thread_name_prefix="refocus-highlights")
        lights = pool.submit(_highlights.highlight_mask, image, highlight_gain)
        pool.shutdown(wait=False)            # the one task still runs; its thread ends with it
    from refocus import runtime
    if harden_edges:
        from .depth.edges import clean_depth_edges
        disparity, info.hardened_pixels, info.aligned_pixels = clean_depth_edges(disparity, image)
        if (info.hardened_pixels or info.aligned_pixels) and not in_place:
            info.disparity = disparity
    te = time.perf_counter()
    H, W = disparity.shape
    own = in_place and _writeable_f32(disparity)
    coc = np.subtract(disparity.astype(np.float32, copy=False), np.float32(focus_disparity),
                      out=disparity if own else None)
    del disparity
    coc *= np.float32(K)                                    # in place: no full-size temporaries
    max_coc = max(float(coc.max()), -float(coc.min()))
    info.max_coc = max_coc
    if max_coc < MIN_BLUR:
        out = np.clip(image, 0.0, 1.0)
        return out[..., 0].reshape(squeeze) if squeeze else out

    lens = runtime.graph_session("lens_blur", device)
    info.device = runtime.choose(device)[1]
    R = int(lens.get_modelmeta().custom_metadata_map.get("radius_slots", -1))
    if R != RADIUS_SLOTS:
        from .errors import ModelError
        raise ModelError(f"lens_blur graph has {R} radius slots, this code needs {RADIUS_SLOTS}; "
                         "rebuild it with: python -m refocus.onnx_models")
    s = choose_scale(H, W, max_coc)
    info.scale = s
    h, w = -(-H // s), -(-W // s)
    info.working_size = (w, h)
    rho = np.divide(coc, np.float32(s), out=coc)
    del coc
    np.clip(rho, -R, R - 1e-3, out=rho)
    t1 = time.perf_counter()

    found = _highlights.blurred_only(lights.result(), rho) if lights is not None else None
    info.highlight_pixels = 0 if found is None else int(found[0].size)
    t2 = time.perf_counter()
    # rho is snapped band by band as it is sliced (no padded or snapped full-size copy: it
    # guides the upsampling as it is)
    weight, radii = snap_plan(rho, s, R)
    occupied = np.zeros(2 * R + 1, bool)
    slices = split_slices(image, rho, s, R, boost=found, snap=weight, occupied=occupied)
    t3 = time.perf_counter()
    feeds = compact_slots(slices, occupied)
    del slices
    feeds.update(_kernels(R, aperture, blades, rotation, radii, occupied))
    back, backf, front = lens.run(["back", "backf", "front"], feeds, runtime.shrink_after())
    t4 = time.perf_counter()

    # low-resolution fields of the guided upsampling (see onnx_models/guided_upsample.py):
    # (c, h, w) planes, as the lens graph gives them
    F, T, B, BF = front[0, :3], 1.0 - front[0, 3:4], back[0], backf[0]
    has_front = bool(occupied[R + 1:].any())
    fields = {"blur": F + T * B, "blur_front": T * (BF - B), "front": F, "transmit": T} if has_front \
        else {"blur": B}
    fields = {k: np.ascontiguousarray(v, np.float32) for k, v in fields.items()}
    behind = runtime.graph_session("guided_upsample_behind", device)
    up = runtime.graph_session("guided_upsample", device) if has_front else behind
    short = {"blur": fields["blur"]}                 # the short graph's one field
    # low-resolution cells that something in front of the focal plane covers
    import cv2
    covered = front[0, 3] > 0 if has_front else None
    del back, backf, front
    # guided upsampling, in strips of full rows (bounded memory); strips start on block rows
    # each strip reads only its own rows of the photo: the result may overwrite them
    out = image if in_place else np.empty((H, W, 3), np.float32)
    rows = max(s, (STRIP_PIXELS // max(W, 1)) // s * s)
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        ly0 = max(0, y0 // s - 1)
        ly1 = min(h, -(-y1 // s) + 1)
        last = y1 == H                      # then the arenas give their memory back
        options = runtime.shrink_after() if last else None
        # low-resolution columns with something in front in this strip (F, 1 - T or a pixel
        # with rho >= 1); the rest of the strip is the short graph's formula, the same numbers
        # (F = 0, T = 1, no pixel in front), in column tiles with a margin the interpolation
        # cannot see past (12 MP, the portrait's subject blurred in front, upsampling 493 ->
        # 445 ms; focused between it and the background, 494 -> 383 ms)
        cols = None
        if has_front:
            cols = covered[ly0:ly1].any(axis=0)
            cols[np.flatnonzero(cv2.reduce(rho[y0:y1], 0, cv2.REDUCE_MAX)[0] >= 1.0) // s] = True
        if cols is None or not cols.any():
            _upsample_tile(behind, short, image, rho, out, s, (y0, y1, 0, W), (ly0, ly1, 0, w), options)
            continue
        c = np.flatnonzero(cols)
        x0, x1 = max(0, (int(c[0]) - 2) * s), min(W, (int(c[-1]) + 3) * s)
        if W - (x1 - x0) < COLUMN_TILE_MIN * W:          # nearly all of the width: one tile
            x0, x1 = 0, W
        for graph, f, (a, b) in ((behind, short, (0, x0)), (up, fields, (x0, x1)), (behind, short, (x1, W))):
            if b > a:
                la, lb = max(0, a // s - 1), min(w, -(-b // s) + 1)
                _upsample_tile(graph, f, image, rho, out, s, (y0, y1, a, b), (ly0, ly1, la, lb),
                               options if b == W else None)
    t5 = time.perf_counter()
    info.timings.update({"edges": te - t0, "prepare": t1 - te, "highlights": t2 - t1, "slices": t3 - t2,
                         "lens_graph": t4 - t3, "upsample_graph": t5 - t4})
    if squeeze:
        out = out.mean(axis=2).reshape(squeeze)
    return out
