"""Focus: where the focal plane lies and how strong the blur is.

:func:`choose_focus` turns the look parameters (``focus``, ``focus_point`` ...) into a
focus disparity ``d_f`` and says how it was found; :func:`blur_strength` turns
``blur`` / ``aperture`` / ``strength`` into the blur strength K (pixels of CoC radius per
unit disparity); :func:`effective_disparity` applies a depth-of-field zone, a subject mask
(kept sharp) or a tilt-shift band before rendering.

Auto focus: faces first (the largest, ties to the most central), then the salient
subject, then the centre.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import BadInputError

DETECT_LONG_SIDE = 480        # detectors work on a copy this size (as the offline depth does)
FACE_HEIGHT_M = 0.22          # chin to hairline plus margin of a face detector box, metres
DEFAULT_DISTANCE_M = 3.0      # focus distance assumed without EXIF distance or a face


@dataclass
class Focus:
    disparity: float                    # d_f in [0, 1]
    how: str                            # one line: what the focus was put on
    point: tuple | None = None          # (x, y) pixel the focus was measured at
    faces: list = field(default_factory=list)      # face boxes (x, y, w, h), full-size pixels
    band: tuple | None = None           # tilt-shift (centre, width) as fractions of the height


def _srgb8_small(linear):
    import cv2
    a = np.asarray(linear, np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    H, W = a.shape[:2]
    s = min(1.0, DETECT_LONG_SIDE / max(H, W))
    w0, h0 = max(1, round(W * s)), max(1, round(H * s))
    small = cv2.resize(a[..., :3], (w0, h0), interpolation=cv2.INTER_AREA) if s < 1 else a[..., :3]
    from .color import linear_to_srgb
    return (np.clip(linear_to_srgb(np.clip(small, 0, 1)), 0, 1) * 255 + 0.5).astype(np.uint8), s


def detect_faces(linear) -> list:
    """Face boxes (x, y, w, h) in full-size pixels, largest first."""
    from .depth.fallback import _detect_faces
    srgb8, s = _srgb8_small(linear)
    boxes = _detect_faces(srgb8)
    out = [(int(x / s), int(y / s), max(1, int(w / s)), max(1, int(h / s))) for x, y, w, h in boxes]
    return sorted(out, key=lambda b: -b[2] * b[3])


def _main_face(faces, H, W):
    big = faces[0][2] * faces[0][3]
    cands = [f for f in faces if f[2] * f[3] >= 0.7 * big]       # about as large as the largest

    def off_centre(f):
        return ((f[0] + f[2] / 2) / W - 0.5) ** 2 + ((f[1] + f[3] / 2) / H - 0.5) ** 2
    return min(cands, key=off_centre)


def _region_disparity(disp, x0, y0, x1, y1, q=50.0) -> float:
    H, W = disp.shape
    x0, x1 = int(np.clip(x0, 0, W - 1)), int(np.clip(x1, 1, W))
    y0, y1 = int(np.clip(y0, 0, H - 1)), int(np.clip(y1, 1, H))
    reg = disp[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    return float(np.percentile(reg, q))


def _face_disparity(disp, f) -> float:
    x, y, w, h = f
    # the eyes' band: upper middle of the box (the eyes are what must be sharp)
    return _region_disparity(disp, x + 0.2 * w, y + 0.25 * h, x + 0.8 * w, y + 0.55 * h, 50)


def _point_px(pt, H, W):
    x, y = pt
    if x <= 1 and y <= 1:
        x, y = x * (W - 1), y * (H - 1)
    if x > W - 1 or y > H - 1:
        raise BadInputError(f"--focus-point: ({pt[0]:g}, {pt[1]:g}) is outside the {W}x{H} image")
    return x, y


def choose_focus(linear, disparity: np.ndarray, settings, *, subject_mask=None) -> Focus:
    """Where to focus, from the settings (``focus``, ``focus_point``, ``focus_disparity``)."""
    disp = np.asarray(disparity, np.float32)
    H, W = disp.shape
    mode = settings.focus
    if settings.focus_disparity is not None and mode in ("auto", "disparity"):
        return Focus(float(settings.focus_disparity), f"disparity {settings.focus_disparity:g} (given)")
    if mode == "disparity":
        raise BadInputError("--focus disparity needs --focus-disparity F (0 = farthest .. 1 = nearest)")
    if settings.focus_point is not None and mode in ("auto", "point", "band"):
        x, y = _point_px(settings.focus_point, H, W)
        r = max(2, round(0.01 * max(H, W)))
        d = _region_disparity(disp, x - r, y - r, x + r + 1, y + r + 1)
        f = Focus(d, f"point ({x:.0f}, {y:.0f})", point=(x, y))
        if mode == "band":
            f.band = (y / max(H - 1, 1), settings.band_width)
        return f
    if mode == "point":
        raise BadInputError("--focus point needs --focus-point X,Y")
    if subject_mask is not None and mode in ("auto", "subject", "band"):
        m = np.asarray(subject_mask, np.float32)
        if m.shape != (H, W):
            raise BadInputError(f"subject mask: shape {m.shape} does not match the image ({H}, {W})")
        sel = m > 0.5
        if sel.any():
            d = float(np.median(disp[sel]))
            ys, xs = np.nonzero(sel)
            f = Focus(d, "the subject mask", point=(float(xs.mean()), float(ys.mean())))
            if mode == "band":
                f.band = (float(ys.mean()) / max(H - 1, 1), settings.band_width)
            return f
        if mode == "subject":
            raise BadInputError("subject mask: it is empty (nothing selected)")
    faces = detect_faces(linear) if mode in ("auto", "face", "subject", "band") else []
    if faces and mode != "subject":
        f0 = _main_face(faces, H, W)
        d = _face_disparity(disp, f0)
        pt = (f0[0] + f0[2] / 2, f0[1] + 0.4 * f0[3])
        res = Focus(d, f"face at ({pt[0]:.0f}, {pt[1]:.0f})" + (f" of {len(faces)}" if len(faces) > 1 else ""),
                    point=pt, faces=faces)
        if settings.focus_range > 0 and len(faces) > 1:
            # keep every detected face sharp: centre the zone on their span
            ds = [_face_disparity(disp, f) for f in faces]
            res.disparity = float((min(ds) + max(ds)) / 2)
            res.how = f"{len(faces)} faces"
        if mode == "band":
            res.band = (pt[1] / max(H - 1, 1), settings.band_width)
        return res
    # the salient subject: the nearer part of the salient box
    from .depth.fallback import _salient_box
    srgb8, s = _srgb8_small(linear)
    box = _salient_box(srgb8)
    if box is not None:
        x, y, w, h = (v / s for v in box)
        d = _region_disparity(disp, x, y, x + w, y + h, 75)
        pt = (x + w / 2, y + h / 2)
        res = Focus(d, f"salient subject at ({pt[0]:.0f}, {pt[1]:.0f})", point=pt, faces=faces)
    else:
        r = 0.05 * max(H, W)
        d = _region_disparity(disp, W / 2 - r, H / 2 - r, W / 2 + r, H / 2 + r)
        res = Focus(d, "the centre (no face or clear subject)", point=((W - 1) / 2, (H - 1) / 2), faces=faces)
    if mode == "band":
        res.band = (res.point[1] / max(H - 1, 1), settings.band_width)
    return res


def blur_strength(settings, shape, focus: Focus, camera=None) -> tuple:
    """Blur strength K (CoC radius in pixels per unit disparity) and one line saying how.

    ``blur`` (pixels) wins; then ``aperture`` (f-number) with the photo's focal length and
    sensor size, a thin-lens estimate; else ``strength`` percent of the longer side.
    """
    H, W = shape[:2]
    if settings.blur is not None:
        return float(settings.blur), f"K = {settings.blur:g} px (given)"
    rel = settings.strength / 100.0 * max(H, W)
    if settings.aperture is None:
        return rel, f"K = {rel:.1f} px (strength {settings.strength:g}% of the long side)"
    N = float(settings.aperture)
    f_mm = getattr(camera, "focal_length_mm", None) if camera is not None else None
    sw = getattr(camera, "sensor_width_mm", None) if camera is not None else None
    if not f_mm or not sw:
        return rel, (f"K = {rel:.1f} px: f/{N:g} needs the focal length and sensor size from EXIF, "
                     f"which this photo lacks; relative strength {settings.strength:g}% used")
    sensor_w = float(sw)              # along the displayed width (metadata uses the displayed size)
    dist = getattr(camera, "subject_distance_m", None)
    how_d = "EXIF subject distance"
    if not dist and focus.faces:
        fh = focus.faces[0][3] / H * (sensor_w * H / W)             # face height on the sensor, mm
        dist = FACE_HEIGHT_M * 1000 * f_mm / max(fh, 1e-6) / 1000  # metres
        how_d = "face size"
    if not dist:
        dist, how_d = DEFAULT_DISTANCE_M, "assumed"
    z = max(dist * 1000.0, 1.5 * f_mm)                              # mm, beyond the focal length
    d_f = max(focus.disparity, 0.05)
    # thin lens: blur disc diameter on the sensor for inverse depth 1/z' = (d/d_f)/z is
    # f^2 / (N (z - f)) * |d - d_f| / d_f; radius in pixels per unit disparity:
    K = f_mm * f_mm / (N * (z - f_mm)) / d_f / 2.0 / sensor_w * W
    return float(K), (f"K = {K:.1f} px: f/{N:g} at {f_mm:g} mm, sensor {sensor_w:.1f} mm wide, "
                      f"focus at {dist:.2f} m ({how_d})")


def effective_disparity(disparity, focus: Focus, settings, *, subject_mask=None) -> tuple:
    """The disparity map and focus disparity handed to the renderer.

    * ``focus_range`` > 0: a zone of +-range/2 around d_f is flattened onto the focal plane;
    * a subject mask keeps its area sharp (soft masks give soft transitions);
    * a tilt-shift band replaces depth by the height in the image (top far, bottom near)
      with the band flattened onto the focal plane.
    """
    d = np.asarray(disparity, np.float32)
    d_f = np.float32(focus.disparity)
    if focus.band is not None:
        H, W = d.shape
        c, width = focus.band
        y = (np.arange(H, dtype=np.float32) / max(H - 1, 1))[:, None]
        d = np.broadcast_to(0.5 + (y - np.float32(c)) / 2, (H, W)).astype(np.float32)
        d_f = np.float32(0.5)
        half = np.float32(width / 4)                  # band of height `width` <-> |dd| <= width/4
    else:
        half = np.float32(settings.focus_range / 2)
    if half > 0:
        off = d - d_f
        d = d_f + np.sign(off) * np.maximum(np.abs(off) - half, 0)
    if subject_mask is not None:
        m = np.clip(np.asarray(subject_mask, np.float32), 0, 1)
        d = d_f + (d - d_f) * (1 - m)
    return np.clip(d, 0, 1).astype(np.float32), float(d_f)
