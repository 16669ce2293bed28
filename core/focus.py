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
MIN_FACE_DISTANCE_M = 0.3     # a face-size distance outside this range is not trusted
MAX_FACE_DISTANCE_M = 30.0


@dataclass
class Focus:
    disparity: float                    # d_f in [0, 1]
    how: str                            # one line: what the focus was put on
    point: tuple | None = None          # (x, y) pixel the focus was measured at
    faces: list = field(default_factory=list)      # face boxes (x, y, w, h), full-size pixels
    band: tuple | None = None           # tilt-shift (centre, width) as fractions of the height
    range: float | None = None          # sharp zone (disparity units) when focus widened it (groups)


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


_MWG = "http://www.metadataworkinggroup.com/schemas/regions/"
_AREA = "http://ns.adobe.com/xmp/sType/Area#"
_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"


def _xget(el, ns, name):
    v = el.get(f"{{{ns}}}{name}")
    if v is None:
        c = el.find(f"{{{ns}}}{name}")
        v = c.text if c is not None else None
    return v


def faces_from_xmp(xmp, shape, orientation: int = 1) -> list:
    """Face boxes (x, y, w, h) in displayed pixels from MWG face regions in XMP (photo
    managers such as digiKam, Lightroom and Picasa write them when people are tagged).

    MWG areas are centre-based fractions of the image as stored
    (``AppliedToDimensions``); the EXIF orientation maps them to the displayed image.
    Returns [] when there are none or the XMP cannot be parsed."""
    import re
    import xml.etree.ElementTree as ET
    if not xmp:
        return []
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, (bytes, bytearray)) else str(xmp)
    m = re.search(r"<x:xmpmeta.*?</x:xmpmeta>", text, re.S)
    if not m or "Regions" not in m.group(0):
        return []
    try:
        root = ET.fromstring(m.group(0))
    except ET.ParseError:
        return []
    H, W = shape[:2]
    o = int(orientation or 1)
    swap = o in (5, 6, 7, 8)
    out = []
    for regions in root.iter(f"{{{_MWG}}}Regions"):
        dims = regions.find(f"{{{_MWG}}}AppliedToDimensions")
        rot = True
        if dims is not None and swap:
            try:
                dw, dh = float(_xget(dims, _DIM, "w")), float(_xget(dims, _DIM, "h"))
                rot = not (abs(dw / dh - W / H) < 0.01)        # already in displayed orientation
            except (TypeError, ValueError, ZeroDivisionError):
                pass
        for el in regions.iter():
            area = el.find(f"{{{_MWG}}}Area")
            if area is None:
                continue
            kind = _xget(el, _MWG, "Type")
            if kind is not None and kind.strip().lower() != "face":
                continue
            try:
                x, y, w, h = (float(_xget(area, _AREA, k)) for k in ("x", "y", "w", "h"))
            except (TypeError, ValueError):
                continue
            if (_xget(area, _AREA, "unit") or "normalized") != "normalized" or w <= 0 or h <= 0:
                continue
            if rot:
                x, y = {1: (x, y), 2: (1 - x, y), 3: (1 - x, 1 - y), 4: (x, 1 - y), 5: (y, x),
                        6: (1 - y, x), 7: (1 - y, 1 - x), 8: (y, 1 - x)}.get(o, (x, y))
                if swap:
                    w, h = h, w
            bw, bh = w * W, h * H
            out.append((int(round(x * W - bw / 2)), int(round(y * H - bh / 2)), max(1, int(round(bw))),
                        max(1, int(round(bh)))))
    return sorted(out, key=lambda b: -b[2] * b[3])


def _merge_faces(hints, found) -> list:
    """Hinted faces (metadata) plus detections that do not overlap one of them."""
    out = list(hints)
    for b in found:
        x, y, w, h = b
        if all(max(0, min(x + w, k[0] + k[2]) - max(x, k[0])) * max(0, min(y + h, k[1] + k[3]) - max(y, k[1]))
               < 0.3 * min(w * h, k[2] * k[3]) for k in hints):
            out.append(b)
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


def _eyes(linear, face) -> list:
    """Eye boxes (x, y, w, h), full-size pixels, inside a face box: OpenCV's Haar eye cascade
    on the upper part of the face; at most two (the strongest, side by side)."""
    import cv2
    from .depth.fallback import _cascade
    casc = _cascade("haarcascade_eye.xml")
    if casc is None:
        return []
    x, y, w, h = face
    a = np.asarray(linear, np.float32)
    H, W = a.shape[:2]
    x0, x1 = max(0, int(x)), min(W, int(x + w))
    y0, y1 = max(0, int(y + 0.12 * h)), min(H, int(y + 0.62 * h))
    if x1 - x0 < 24 or y1 - y0 < 12:
        return []
    crop = a[y0:y1, x0:x1]
    grey = crop if crop.ndim == 2 else crop[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    from .color import linear_to_srgb
    g8 = (np.clip(linear_to_srgb(np.clip(grey, 0, 1)), 0, 1) * 255 + 0.5).astype(np.uint8)
    s = 200.0 / (x1 - x0)                         # the face about 200 px wide
    g8 = cv2.resize(g8, (200, max(12, round((y1 - y0) * s))), interpolation=cv2.INTER_AREA if s < 1
                    else cv2.INTER_LINEAR)
    g8 = cv2.equalizeHist(g8)
    try:
        rects, _, weights = casc.detectMultiScale3(g8, scaleFactor=1.05, minNeighbors=4,
                                                   minSize=(24, 24), maxSize=(90, 90),
                                                   outputRejectLevels=True)
    except cv2.error:                                                   # pragma: no cover
        return []
    cands = []
    for (ex, ey, ew, eh), wt in zip(rects, np.ravel(weights)):
        cx = (ex + ew / 2) / 200.0
        if 0.1 <= cx <= 0.9:
            cands.append((float(wt), (x0 + ex / s, y0 + ey / s, ew / s, eh / s)))
    cands.sort(key=lambda c: -c[0])
    eyes = []
    for _, b in cands:
        # a second eye must sit beside the first (not over it) at about the same height
        if all(abs((b[0] + b[2] / 2) - (e[0] + e[2] / 2)) > 0.2 * w and abs(b[1] - e[1]) < 0.15 * h
               for e in eyes):
            eyes.append(b)
        if len(eyes) == 2:
            break
    return eyes


def _face_focus(linear, disp, f) -> tuple:
    """(disparity, point, how) of a face: at its eyes when the eye detector finds them, else
    at the eye line of the face box (Haar face boxes have the eyes at about 40% height)."""
    x, y, w, h = f
    eyes = _eyes(linear, f)
    if eyes:
        vals = np.concatenate([_region_values(disp, ex, ey + 0.2 * eh, ex + ew, ey + 0.8 * eh)
                               for ex, ey, ew, eh in eyes])
        pt = (float(np.mean([e[0] + e[2] / 2 for e in eyes])), float(np.mean([e[1] + e[3] / 2 for e in eyes])))
        return float(np.median(vals)), pt, ("eyes" if len(eyes) == 2 else "eye")
    d = _region_disparity(disp, x + 0.2 * w, y + 0.25 * h, x + 0.8 * w, y + 0.55 * h, 50)
    return d, (x + w / 2, y + 0.4 * h), "face (eye line of the box)"


def _face_disparity(disp, f) -> float:
    x, y, w, h = f
    # the eyes' band: upper middle of the box (the eyes are what must be sharp)
    return _region_disparity(disp, x + 0.2 * w, y + 0.25 * h, x + 0.8 * w, y + 0.55 * h, 50)


def _region_values(disp, x0, y0, x1, y1):
    H, W = disp.shape
    x0, x1 = int(np.clip(x0, 0, W - 1)), int(np.clip(x1, 1, W))
    y0, y1 = int(np.clip(y0, 0, H - 1)), int(np.clip(y1, 1, H))
    return disp[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].ravel()


def nearest_strong_edge(linear, disp) -> tuple | None:
    """(disparity, point) of the nearest strong edge: among the strong image gradients (the
    top 3%, or all above 30% of the strongest; at detection size, away from the frame), the
    nearest tenth by disparity.
    None for a featureless image."""
    import cv2
    srgb8, s = _srgb8_small(linear)
    g = cv2.cvtColor(srgb8, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    g = cv2.GaussianBlur(g, (0, 0), 1.0)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    h0, w0 = mag.shape
    m = max(2, round(0.03 * min(h0, w0)))
    mag[:m] = mag[-m:] = 0
    mag[:, :m] = mag[:, -m:] = 0
    if mag.max() < 0.05:
        return None
    thr = max(min(np.percentile(mag[mag > 0], 97), 0.3 * mag.max()), 0.05)
    ys, xs = np.nonzero(mag >= thr)
    H, W = disp.shape
    X = np.clip(np.round(xs / s).astype(int), 0, W - 1)
    Y = np.clip(np.round(ys / s).astype(int), 0, H - 1)
    dv = disp[Y, X]
    near = dv >= np.percentile(dv, 90)
    return float(np.median(dv[near])), (float(X[near].mean()), float(Y[near].mean()))


def _point_px(pt, H, W):
    x, y = pt
    if x <= 1 and y <= 1:
        x, y = x * (W - 1), y * (H - 1)
    if x > W - 1 or y > H - 1:
        raise BadInputError(f"--focus-point: ({pt[0]:g}, {pt[1]:g}) is outside the {W}x{H} image")
    return x, y


def _with_band(res: Focus, settings, H) -> Focus:
    c = settings.band_center if settings.band_center is not None else res.point[1] / max(H - 1, 1)
    res.band = (float(c), float(settings.band_width))
    return res


def choose_focus(linear, disparity: np.ndarray, settings, *, subject_mask=None, faces=None) -> Focus:
    """Where to focus, from the settings (``focus``, ``focus_point``, ``focus_disparity``).

    Modes: ``disparity`` (given), ``point`` (median disparity around it), ``subject`` (the
    mask's median, else the salient subject), ``face`` (the main face's eyes; with
    ``focus_range`` > 0 and several faces, the zone is widened to hold every face), ``edge``
    (the nearest strong edge), ``band`` (tilt-shift: a horizontal band, centred on
    ``band_center`` or on what auto focus finds) and ``auto`` (a given point or disparity,
    else the subject mask, else faces, else the salient subject, else the nearest strong
    edge, else the centre).

    `faces`: face boxes (x, y, w, h) known from metadata (:func:`faces_from_xmp`); they are
    used together with the detector's.
    """
    disp = np.asarray(disparity, np.float32)
    H, W = disp.shape
    mode = settings.focus
    if settings.focus_disparity is not None and mode in ("auto", "disparity"):
        return Focus(float(settings.focus_disparity), f"disparity {settings.focus_disparity:g} (given)")
    if mode == "disparity":
        raise BadInputError("--focus disparity needs --focus-disparity F (0 = farthest .. 1 = nearest)")
    if mode == "band" and settings.band_center is not None and settings.focus_point is None:
        return Focus(0.5, f"tilt-shift band at {settings.band_center:g} of the height",
                     point=((W - 1) / 2, settings.band_center * (H - 1)),
                     band=(float(settings.band_center), float(settings.band_width)))
    if settings.focus_point is not None and mode in ("auto", "point", "band"):
        x, y = _point_px(settings.focus_point, H, W)
        r = max(2, round(0.01 * max(H, W)))
        d = _region_disparity(disp, x - r, y - r, x + r + 1, y + r + 1)
        f = Focus(d, f"point ({x:.0f}, {y:.0f})", point=(x, y))
        return _with_band(f, settings, H) if mode == "band" else f
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
            return _with_band(f, settings, H) if mode == "band" else f
        if mode == "subject":
            raise BadInputError("subject mask: it is empty (nothing selected); select the subject "
                                "or use another --focus mode")
    if mode == "edge":
        e = nearest_strong_edge(linear, disp)
        if e is not None:
            return Focus(e[0], f"nearest strong edge at ({e[1][0]:.0f}, {e[1][1]:.0f})", point=e[1])
        r = 0.05 * max(H, W)
        d = _region_disparity(disp, W / 2 - r, H / 2 - r, W / 2 + r, H / 2 + r)
        return Focus(d, "the centre (no strong edge)", point=((W - 1) / 2, (H - 1) / 2))
    hints = list(faces or [])
    faces = _merge_faces(hints, detect_faces(linear)) if mode in ("auto", "face", "band") else []
    if faces:
        f0 = _main_face(faces, H, W)
        d, pt, what = _face_focus(linear, disp, f0)
        res = Focus(d, f"{what} at ({pt[0]:.0f}, {pt[1]:.0f})" + (f", main face of {len(faces)}"
                                                                   if len(faces) > 1 else ""),
                    point=pt, faces=faces)
        if settings.focus_range > 0 and len(faces) > 1 and mode != "band":
            # keep every detected face sharp: centre the zone on their span, wide enough for all
            ds = [_face_disparity(disp, f) for f in faces]
            lo, hi = min(ds), max(ds)
            res.disparity = float((lo + hi) / 2)
            res.range = float(max(settings.focus_range, hi - lo + 0.04))
            res.how = (f"{len(faces)} faces, disparities {lo:.2f}..{hi:.2f}, "
                       f"sharp zone {res.range:.2f} wide")
        return _with_band(res, settings, H) if mode == "band" else res
    # the salient subject: the nearer part of the salient box
    from .depth.fallback import _salient_box
    srgb8, s = _srgb8_small(linear)
    box = _salient_box(srgb8)
    none = "no face" if mode in ("auto", "face", "band") else "no subject mask"
    if box is not None:
        x, y, w, h = (v / s for v in box)
        d = _region_disparity(disp, x, y, x + w, y + h, 75)
        pt = (x + w / 2, y + h / 2)
        res = Focus(d, f"salient subject at ({pt[0]:.0f}, {pt[1]:.0f}) ({none})", point=pt, faces=faces)
    else:
        e = nearest_strong_edge(linear, disp)
        if e is not None:
            res = Focus(e[0], f"nearest strong edge at ({e[1][0]:.0f}, {e[1][1]:.0f}) ({none}, no clear "
                              "subject)", point=e[1], faces=faces)
        else:
            r = 0.05 * max(H, W)
            d = _region_disparity(disp, W / 2 - r, H / 2 - r, W / 2 + r, H / 2 + r)
            res = Focus(d, f"the centre ({none}, no clear subject or edge)", point=((W - 1) / 2, (H - 1) / 2),
                        faces=faces)
    return _with_band(res, settings, H) if mode == "band" else res


# Cameras with interchangeable lenses have sensors of Four Thirds size or larger (crop <= 2.0,
# Nikon 1 2.7); an EXIF sensor estimate far smaller than that means the file was cropped or
# resized after the camera and FocalPlaneXResolution no longer matches its pixels.
_ILC_MODELS = (r"EOS", r"NIKON (D\d|Z)", r"ILCE", r"\bNEX", r"\bSLT", r"DSLR", r"X-(T|Pro|E|H|S)\d",
               r"GFX", r"E-M\d", r"DMC-G", r"DC-G", r"DC-S\d", r"PENTAX K", r"\bK-\d", r"LEICA (M|SL)")
MAX_PITCH_SMALL_SENSOR_MM = 0.004      # > 4 um pixels on a sensor < 12 mm wide: not a real camera


def check_sensor(camera, shape) -> tuple:
    """(sensor width in mm -- its long side, as :class:`refocus.io.CameraInfo` gives it --
    or None, and what was assumed).

    Trusts FocalLengthIn35mmFilm; the FocalPlaneXResolution estimate only when plausible:
    it refers to the camera's pixels, so a cropped or resized file gives a sensor that is
    too small (big pixels on a tiny sensor, or an interchangeable-lens body with a
    compact-camera sensor)."""
    import re
    sw = getattr(camera, "sensor_width_mm", None) if camera is not None else None
    if not sw:
        return None, "no sensor size in EXIF"
    H, W = shape[:2]
    src = getattr(camera, "crop_source", None) or "EXIF"
    model = " ".join(str(v) for v in (getattr(camera, "make", None), getattr(camera, "model", None)) if v)
    if src != "FocalLengthIn35mmFilm":
        pitch = float(sw) / max(H, W)              # sensor_width_mm is the sensor's long side
        if float(sw) < 12 and pitch > MAX_PITCH_SMALL_SENSOR_MM:
            return None, (f"EXIF sensor estimate {float(sw):.1f} mm wide ({src}) is implausible: "
                          f"{pitch * 1000:.1f} um pixels on so small a sensor mean the file was "
                          "cropped or resized")
        if model and float(sw) < 13 and any(re.search(p, model, re.IGNORECASE) for p in _ILC_MODELS):
            return None, (f"EXIF sensor estimate {float(sw):.1f} mm wide ({src}) is implausible for "
                          f"a {model} (interchangeable-lens camera); the file was probably cropped "
                          "or resized")
    return float(sw), f"sensor {float(sw):.1f} mm wide ({src})"


def blur_strength(settings, shape, focus: Focus, camera=None) -> tuple:
    """Blur strength K (CoC radius in pixels per unit disparity) and one line saying how.

    ``blur`` (pixels) wins; then ``aperture`` (f-number) with the photo's focal length and
    sensor size, a thin-lens estimate; else ``strength`` percent of the longer side.

    The thin lens: with disparity proportional to inverse distance and the focal plane at
    distance z_f (EXIF subject distance, else from the size of a face, else 3 m), a point
    at disparity d has a blur disc of diameter f^2 / (N (z_f - f)) * |d - d_f| / d_f on
    the sensor.  The sensor size is sanity-checked (:func:`check_sensor`); when it or the
    focal length is missing or implausible, the relative strength is used and the line
    says so.
    """
    H, W = shape[:2]
    if settings.blur is not None:
        return float(settings.blur), f"K = {settings.blur:g} px (given)"
    rel = settings.strength / 100.0 * max(H, W)
    if settings.aperture is None:
        return rel, f"K = {rel:.1f} px (strength {settings.strength:g}% of the long side)"
    N = float(settings.aperture)
    f_mm = getattr(camera, "focal_length_mm", None) if camera is not None else None
    if not f_mm or not getattr(camera, "sensor_width_mm", None):
        return rel, (f"K = {rel:.1f} px: f/{N:g} needs the focal length and sensor size from EXIF, "
                     f"which this photo lacks; relative strength {settings.strength:g}% used")
    sensor_w, how_s = check_sensor(camera, shape)
    if sensor_w is None:
        return rel, f"K = {rel:.1f} px: f/{N:g} not used: {how_s}; relative strength {settings.strength:g}% used"
    f_mm = float(f_mm)
    px_per_mm = max(H, W) / sensor_w                                # long side on long side
    dist = getattr(camera, "subject_distance_m", None)
    how_d = "EXIF subject distance"
    if not dist and focus.faces:
        face = _main_face(focus.faces, H, W)
        fh = face[3] / px_per_mm                                    # face height on the sensor, mm
        dist = FACE_HEIGHT_M * f_mm / max(fh, 1e-6)                 # metres
        how_d = f"from the face size, {FACE_HEIGHT_M * 100:.0f} cm assumed"
        if not MIN_FACE_DISTANCE_M <= dist <= MAX_FACE_DISTANCE_M:
            how_d = f"assumed; the face size gave an implausible {dist:.1f} m"
            dist = DEFAULT_DISTANCE_M
    if not dist:
        dist, how_d = DEFAULT_DISTANCE_M, "assumed"
    z = max(dist * 1000.0, 1.5 * f_mm)                              # mm, beyond the focal length
    d_f = max(focus.disparity, 0.05)
    # thin lens: blur disc diameter on the sensor for inverse depth 1/z' = (d/d_f)/z is
    # f^2 / (N (z - f)) * |d - d_f| / d_f; radius in pixels per unit disparity:
    K = f_mm * f_mm / (N * (z - f_mm)) / d_f / 2.0 * px_per_mm
    return float(K), (f"K = {K:.1f} px: f/{N:g} at {f_mm:g} mm, {how_s}, "
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
        # disparity grows by 1 per image height below the band's centre (top far, bottom
        # near, like the ground seen from above); the band itself is flattened onto d_f
        d = np.broadcast_to(0.5 + (y - np.float32(c)), (H, W)).astype(np.float32)
        d_f = np.float32(0.5)
        half = np.float32(width / 2)                  # band of height `width` <-> |dd| <= width/2
    else:
        rng = focus.range if focus.range is not None else settings.focus_range
        half = np.float32(rng / 2)
    if half > 0:
        off = d - d_f
        d = d_f + np.sign(off) * np.maximum(np.abs(off) - half, 0)
    if subject_mask is not None:
        m = np.clip(np.asarray(subject_mask, np.float32), 0, 1)
        d = d_f + (d - d_f) * (1 - m)
    return np.clip(d, 0, 1).astype(np.float32), float(d_f)
