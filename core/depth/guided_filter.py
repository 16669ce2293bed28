"""Guided filter (He, Sun & Tang, ECCV 2010 / TPAMI 2013) and its fast upsampling variant
(He & Sun, "Fast Guided Filter", 2015), on numpy arrays with OpenCV box filters.

The output is locally an affine function of the guide, ``q = a * I + b`` (grey guide) or
``q = a . I + b`` (colour guide), so edges of the guide reappear in the filtered map.  The
fast variant computes ``a`` and ``b`` at low resolution and applies them to the full-size
guide, which is how refocus brings small disparity maps to photo size in one pass.
"""
from __future__ import annotations

import numpy as np


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges reflected (normalised box filter)."""
    import cv2
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_coefficients(I: np.ndarray, p: np.ndarray, r: int, eps: float):
    """Box-averaged coefficients (a, b) of the guided filter of `p` with guide `I`.

    `I` is (H, W) or (H, W, 3) float32; `p` is (H, W) float32.  Returns ``a`` of the guide's
    shape and ``b`` (H, W) such that the filtered map is ``sum(a * I, axis=-1) + b``.
    """
    I = np.asarray(I, np.float32)
    p = np.asarray(p, np.float32)
    r = max(1, int(r))
    mp = _box(p, r)
    if I.ndim == 2:
        mI = _box(I, r)
        cov = _box(I * p, r) - mI * mp
        var = _box(I * I, r) - mI * mI
        a = cov / (var + np.float32(eps))
        b = mp - a * mI
        return _box(a, r), _box(b, r)
    mI = _box(I, r)                                            # (H, W, 3)
    cov = _box(I * p[..., None], r) - mI * mp[..., None]      # (H, W, 3)
    # 3x3 covariance of the guide in each window, regularised, inverted in closed form
    v = {}
    for i in range(3):
        for j in range(i, 3):
            v[i, j] = _box(I[..., i] * I[..., j], r) - mI[..., i] * mI[..., j]
    e = np.float32(eps)
    s00, s01, s02 = v[0, 0] + e, v[0, 1], v[0, 2]
    s11, s12, s22 = v[1, 1] + e, v[1, 2], v[2, 2] + e
    c00 = s11 * s22 - s12 * s12
    c01 = s02 * s12 - s01 * s22
    c02 = s01 * s12 - s02 * s11
    c11 = s00 * s22 - s02 * s02
    c12 = s01 * s02 - s00 * s12
    c22 = s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    det = np.where(np.abs(det) < 1e-12, np.float32(1e-12), det)
    a0 = (c00 * cov[..., 0] + c01 * cov[..., 1] + c02 * cov[..., 2]) / det
    a1 = (c01 * cov[..., 0] + c11 * cov[..., 1] + c12 * cov[..., 2]) / det
    a2 = (c02 * cov[..., 0] + c12 * cov[..., 1] + c22 * cov[..., 2]) / det
    a = np.stack([a0, a1, a2], axis=-1).astype(np.float32)
    b = mp - (a * mI).sum(axis=-1)
    return _box(a, r), _box(b.astype(np.float32), r)


def apply_coefficients(a: np.ndarray, b: np.ndarray, I: np.ndarray) -> np.ndarray:
    if I.ndim == 2:
        return a * I + b
    out = b.copy()
    for c in range(I.shape[2]):
        out += a[..., c] * I[..., c]
    return out


def guided_filter(I: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of `p` guided by `I` (same height and width)."""
    a, b = guided_coefficients(I, p, r, eps)
    return apply_coefficients(a, b, np.asarray(I, np.float32))


def guided_upsample(p_low: np.ndarray, I_low: np.ndarray, I_high: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Fast guided upsampling: coefficients from (I_low, p_low), applied to the large guide."""
    import cv2
    a, b = guided_coefficients(I_low, p_low, r, eps)
    H, W = I_high.shape[:2]
    if a.shape[:2] != (H, W):
        a = cv2.resize(a, (W, H), interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
        if a.ndim == 2 and I_high.ndim == 3:
            a = a[..., None]
    return apply_coefficients(a, b, I_high)
