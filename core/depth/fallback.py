"""The offline default depth: a plausible portrait-mode disparity map with no model weights.

When no depth is stored in the photo and no depth model is installed, refocus still has to
give a reasonable result.  :func:`estimate_fallback` builds a disparity map from what
OpenCV 4.x ships and from scene priors:

1. work on a copy whose long side is about 640 px (sRGB 8-bit for the detectors);
2. find the subject: the caller's mask (e.g. a GIMP selection) if given; otherwise faces
   (Haar cascades, frontal then profile), else people (HOG), else the most salient object
   (spectral-residual saliency + sharpness + a centre prior);
3. cut the subject out with GrabCut, initialised from the boxes (a body box is derived from
   each face with anatomical proportions), at about 320 px, and feather the cut with a
   colour guided filter so hair and soft edges get fractional values;
4. background: a ground plane whose disparity grows linearly below a horizon (exact for a
   flat floor in perspective), far and nearly flat above it, kept within [0.04, 0.5];
   subject: 0.82-1.0 with a rounded interior and faces slightly nearer;
5. bring the map to full size with a fast guided filter on the photo, so its edges follow
   the photo's edges.

The OpenCV Haar and HOG detectors are in OpenCV 4.x (``opencv-python-headless<5``); if they
are missing, the subject falls back to saliency.  Never raises on content: monochrome images,
paintings, tiny or extremely elongated images, all-black or all-white frames all give a map.
"""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from .guided_filter import guided_filter, guided_upsample

WORK_LONG_SIDE = 480          # detection, composition
CUT_LONG_SIDE = 256           # GrabCut
FRONTAL_VOTES = 12            # neighbouring detections a frontal face needs (true faces: 25-90 on the
PROFILE_VOTES = 8             # samples, false ones on paintings: 4-9); a profile face needs 8
SUBJECT_BASE = 0.82           # disparity of the subject's silhouette
SUBJECT_ROUND = 0.10          # extra disparity at the subject's interior
FACE_BUMP = 0.08              # extra disparity at a face
BG_FAR = 0.04                 # the farthest background
BG_NEAR = 0.50                # the ground plane at the bottom edge
HORIZON = 0.45                # horizon height (fraction of the image from the top) without other clues

_CASCADES: dict = {}
_HOG = None


# -- entry ---------------------------------------------------------------------------------


def estimate_fallback(linear_rgb, *, subject_mask=None, info=None) -> tuple[np.ndarray, str]:
    """Estimate a disparity map (float32 (H, W) in [0, 1], 1 = near) without any model weights.

    Parameters
    ----------
    linear_rgb : array (H, W, 3), (H, W, 4), (H, W, 1) or (H, W)
        The photo, linear light (values beyond [0, 1] are clipped); grey images are accepted.
    subject_mask : array (H, W) in [0, 1], optional
        Where the subject is (e.g. a GIMP selection).  Replaces the detection.
    info : mapping, optional
        Hints.  ``"faces"``: face boxes ``(x, y, w, h)`` as fractions of the displayed image
        (e.g. from XMP face regions), used instead of the face detector.  Other keys are ignored.

    Returns
    -------
    (disparity, description) : the map and one line saying what was found, e.g.
        ``"offline default: 1 face, GrabCut subject, ground-plane prior"``.

    Examples
    --------
    >>> import numpy as np
    >>> from refocus.depth.fallback import estimate_fallback
    >>> d, how = estimate_fallback(np.full((48, 64, 3), 0.2, np.float32))
    >>> d.shape, d.dtype, bool(0 <= d.min() and d.max() <= 1)
    ((48, 64), dtype('float32'), True)
    """
    import cv2
    rgb = _as_rgb(linear_rgb)
    H, W = rgb.shape[:2]
    mask_full = _as_mask(subject_mask, (H, W)) if subject_mask is not None else None

    s = min(1.0, WORK_LONG_SIDE / max(H, W))
    w0, h0 = max(1, int(round(W * s))), max(1, int(round(H * s)))
    small = cv2.resize(rgb, (w0, h0), interpolation=cv2.INTER_AREA) if (w0, h0) != (W, H) else rgb
    guide = np.sqrt(small)                                         # perceptual-ish guide in [0, 1]
    srgb8 = (np.clip(guide, 0, 1) * 255 + 0.5).astype(np.uint8)   # close to sRGB (gamma 2)
    notes = []

    faces = []
    boxes = []
    alpha = None
    if mask_full is not None:
        alpha = cv2.resize(mask_full, (w0, h0), interpolation=cv2.INTER_AREA) if (w0, h0) != (W, H) else mask_full
        notes.append("subject from the given mask")
    else:
        faces = _hint_faces(info, w0, h0)
        if faces:
            notes.append(f"{len(faces)} face{'s' if len(faces) > 1 else ''} from the photo's metadata")
        else:
            faces = _detect_faces(srgb8)
            if faces:
                notes.append(f"{len(faces)} face{'s' if len(faces) > 1 else ''}")
        if faces:
            boxes = [_body_box(f, w0, h0) for f in faces]
        else:
            people = _detect_people(srgb8)
            if people:
                boxes = people
                notes.append(f"{len(people)} person{'s' if len(people) > 1 else ''} (HOG)")
            else:
                sal = _salient_box(srgb8)
                if sal is not None:
                    boxes = [sal]
                    notes.append("salient object")
        if boxes:
            alpha, how = _cut_subject(srgb8, guide, boxes, faces)
            cover = float(alpha.mean())
            top = float((alpha[0] > 0.5).mean())
            if not faces and not (0.02 <= cover <= 0.7 and top <= 0.3):
                alpha = None          # an object cut that is a speck, everything, or the sky
                notes[-1] = "no clear subject"
            else:
                notes.append(how)
        else:
            notes.append("no subject found")

    horizon = _horizon(alpha, h0)
    bg = _background(h0, w0, horizon)
    notes.append("ground-plane prior")
    if alpha is not None and alpha.max() > 0.05:
        subj = _subject_shape(alpha, faces, h0, w0)
        d = alpha * subj + (1.0 - alpha) * bg
    else:
        d = bg
    d = np.clip(d, 0.0, 1.0).astype(np.float32)

    if (w0, h0) != (W, H):
        r = max(2, int(round(max(h0, w0) / 160)))
        full_guide = np.sqrt(rgb)
        d = guided_upsample(d, guide, full_guide, r, 1e-3)
    elif alpha is not None:
        d = guided_filter(guide, d, max(1, min(h0, w0) // 160), 1e-3)
    d = np.clip(d, 0.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(d), "offline default: " + ", ".join(notes)


# -- input checks ------------------------------------------------------------------------------


def _as_rgb(a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise BadInputError(f"linear_rgb: expected an (H, W, 3) colour or (H, W) grey image, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise BadInputError(f"linear_rgb: empty image of shape {a.shape}")
    a = a[..., :3]
    if a.dtype.kind not in "fiub":
        raise BadInputError(f"linear_rgb: expected a numeric array, got dtype {a.dtype}")
    if a.dtype.kind in "iu":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise BadInputError(f"linear_rgb: {int((~np.isfinite(a)).sum())} value(s) are NaN or infinite")
    return np.ascontiguousarray(np.clip(a, 0.0, 1.0))


def _as_mask(m, shape) -> np.ndarray:
    m = np.asarray(m)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != tuple(shape):
        raise BadInputError(f"subject_mask: expected shape {tuple(shape)} (the photo's), got {m.shape}")
    if m.dtype == bool:
        m = m.astype(np.float32)
    elif m.dtype.kind in "iu":
        m = m.astype(np.float32) / (255.0 if m.max() > 1 else 1.0)
    m = m.astype(np.float32)
    if not np.isfinite(m).all():
        raise BadInputError("subject_mask: contains NaN or infinite values")
    return np.clip(m, 0.0, 1.0)


# -- detectors -------------------------------------------------------------------------------


def _cascade(name):
    import cv2
    if name not in _CASCADES:
        c = None
        try:
            c = cv2.CascadeClassifier(cv2.data.haarcascades + name)
            if c.empty():
                c = None
        except (AttributeError, cv2.error):
            c = None
        _CASCADES[name] = c
    return _CASCADES[name]


def _nms(boxes, thr=0.3):
    """Drop boxes overlapping a larger one (intersection over the smaller area > thr)."""
    keep = []
    for b in sorted(boxes, key=lambda b: -b[2] * b[3]):
        x, y, w, h = b
        ok = True
        for k in keep:
            ix = max(0, min(x + w, k[0] + k[2]) - max(x, k[0]))
            iy = max(0, min(y + h, k[1] + k[3]) - max(y, k[1]))
            if ix * iy > thr * w * h:
                ok = False
                break
        if ok:
            keep.append(b)
    return keep


def _detect_faces(srgb8) -> list:
    """Face boxes (x, y, w, h): frontal Haar detections that enough neighbouring windows agree
    on; when there is none, profile faces looking either way; overlaps removed."""
    import cv2
    h, w = srgb8.shape[:2]
    if min(h, w) < 40:
        return []
    grey = cv2.equalizeHist(cv2.cvtColor(srgb8, cv2.COLOR_RGB2GRAY))
    min_side = max(20, min(h, w) // 16)
    kw = dict(scaleFactor=1.1, minNeighbors=3, minSize=(min_side, min_side))
    found = []
    front = _cascade("haarcascade_frontalface_default.xml")
    if front is not None:
        rects, votes = front.detectMultiScale2(grey, **kw)
        found += [tuple(int(v) for v in r) for r, n in zip(rects, np.ravel(votes)) if n >= FRONTAL_VOTES]
    prof = _cascade("haarcascade_profileface.xml") if not found else None   # (saves 2 passes)
    if prof is not None:
        for flip in (False, True):
            g = np.ascontiguousarray(grey[:, ::-1]) if flip else grey
            rects, votes = prof.detectMultiScale2(g, **kw)
            for (x, y, fw, fh), n in zip(rects, np.ravel(votes)):
                if n >= PROFILE_VOTES:
                    found.append((int(w - x - fw) if flip else int(x), int(y), int(fw), int(fh)))
    if not found:
        return []
    found = _nms(found)
    big = max(b[2] * b[3] for b in found)
    return [b for b in found if b[2] * b[3] >= 0.15 * big][:8]   # drop small spurious detections


def _detect_people(srgb8) -> list:
    import cv2
    global _HOG
    h, w = srgb8.shape[:2]
    if h < 140 or w < 72:
        return []
    try:
        if _HOG is None:
            _HOG = cv2.HOGDescriptor()
            _HOG.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        rects, weights = _HOG.detectMultiScale(srgb8, winStride=(8, 8), padding=(8, 8), scale=1.05)
    except (AttributeError, cv2.error):
        return []
    if len(rects) == 0:
        return []
    weights = np.ravel(weights)
    cand = [(tuple(int(v) for v in r), float(wt)) for r, wt in zip(rects, weights) if wt > 0.5]
    if not cand:
        return []
    boxes = _nms([c[0] for c in cand])
    big = max(b[2] * b[3] for b in boxes)
    # HOG boxes have margins around the person: shrink the width a little
    out = []
    for x, y, bw, bh in boxes:
        if bw * bh >= 0.25 * big:
            out.append((x + bw // 8, y, bw - bw // 4, bh))
    return out[:4]


def _hint_faces(info, w0, h0) -> list:
    if not info or not isinstance(info, dict) or not info.get("faces"):
        return []
    out = []
    for f in info["faces"]:
        try:
            x, y, fw, fh = (float(v) for v in f)
        except (TypeError, ValueError):
            continue
        if fw > 0 and fh > 0:
            out.append((int(x * w0), int(y * h0), max(1, int(fw * w0)), max(1, int(fh * h0))))
    return out


def _salient_box(srgb8):
    """Box (x, y, w, h) around the saliency mass (its weighted mean +- 1.7 standard deviations),
    or None when the image is flat."""
    h, w = srgb8.shape[:2]
    if min(h, w) < 16:
        return None
    sal = saliency_map(srgb8)
    wgt = sal.astype(np.float64) ** 2
    tot = wgt.sum()
    if not tot > 0 or sal.max() - np.median(sal) < 0.2:
        return None
    wgt /= tot
    yy, xx = np.mgrid[0:h, 0:w]
    mx, my = (wgt * xx).sum(), (wgt * yy).sum()
    sx = np.sqrt((wgt * (xx - mx) ** 2).sum())
    sy = np.sqrt((wgt * (yy - my) ** 2).sum())
    x0, x1 = int(max(0, mx - 1.7 * sx)), int(min(w, mx + 1.7 * sx + 1))
    y0, y1 = int(max(0, my - 1.7 * sy)), int(min(h, my + 1.7 * sy + 1))
    if (x1 - x0) < 4 or (y1 - y0) < 4:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def saliency_map(srgb8) -> np.ndarray:
    """Saliency in [0, 1] at the image's size: spectral residual (Hou & Zhang, CVPR 2007) on the
    three Lab channels, times local sharpness (in-focus parts of a photo stand out), times a
    centre prior."""
    import cv2
    h, w = srgb8.shape[:2]
    n = 64
    lab = cv2.cvtColor(srgb8, cv2.COLOR_RGB2LAB).astype(np.float32)
    small = cv2.resize(lab, (n, n), interpolation=cv2.INTER_AREA)
    sr = np.zeros((n, n), np.float32)
    for c in range(3):
        ch = small[..., c]
        if ch.std() < 1e-3:
            continue
        F = np.fft.fft2(ch - ch.mean())
        amp = np.log(np.abs(F) + 1e-6)
        resid = amp - cv2.blur(amp.astype(np.float32), (3, 3))
        s = np.abs(np.fft.ifft2(np.exp(resid + 1j * np.angle(F)))) ** 2
        sr += (s / (s.max() + 1e-12)).astype(np.float32)
    sr = cv2.GaussianBlur(sr, (0, 0), 2.5)
    sr = cv2.resize(sr, (w, h), interpolation=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(srgb8, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    sig = max(2.0, max(h, w) / 40)
    sharp = cv2.GaussianBlur(lap, (0, 0), sig)
    sharp = sharp / (np.percentile(sharp, 99) + 1e-6)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = np.exp(-(((xx / max(w - 1, 1) - 0.5) / 0.35) ** 2 + ((yy / max(h - 1, 1) - 0.5) / 0.4) ** 2) / 2)
    if sr.max() > 0:
        sr = sr / sr.max()
    sal = (0.6 * sr + 0.4 * np.clip(sharp, 0, 1)) * (0.35 + 0.65 * centre)
    m = sal.max()
    return (sal / m).astype(np.float32) if m > 0 else sal.astype(np.float32)


# -- subject cut -----------------------------------------------------------------------------


def _body_box(face, w0, h0):
    """The box a person occupies given the face box: about 3.4 face widths wide, from the
    top of the hair down to about 7 head heights (or the image's bottom)."""
    x, y, fw, fh = face
    cx = x + fw / 2
    bw = 3.4 * fw
    x0 = int(max(0, cx - bw / 2))
    x1 = int(min(w0, cx + bw / 2))
    y0 = int(max(0, y - 0.45 * fh))
    y1 = int(min(h0, y + 7.5 * fh))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def _person_template(mask, face, scale):
    """Mark probable-foreground head and torso shapes for a face box (in GrabCut labels)."""
    import cv2
    x, y, fw, fh = (v * scale for v in face)
    cx, cy = x + fw / 2, y + fh / 2
    H, W = mask.shape
    # head (with hair) as an ellipse
    cv2.ellipse(mask, (int(cx), int(cy - 0.08 * fh)), (int(0.75 * fw), int(0.85 * fh)), 0, 0, 360,
                cv2.GC_PR_FGD, -1)
    # neck and torso: a trapezoid widening below the chin
    top = cy + 0.55 * fh
    pts = np.array([[cx - 0.45 * fw, top], [cx + 0.45 * fw, top],
                    [cx + 1.55 * fw, top + 1.2 * fh], [cx + 1.6 * fw, min(H, y + 7.5 * fh)],
                    [cx - 1.6 * fw, min(H, y + 7.5 * fh)], [cx - 1.55 * fw, top + 1.2 * fh]], np.int32)
    cv2.fillPoly(mask, [pts], cv2.GC_PR_FGD)
    # sure foreground: the inner face and a core of the chest
    cv2.ellipse(mask, (int(cx), int(cy)), (max(1, int(0.28 * fw)), max(1, int(0.35 * fh))), 0, 0, 360,
                cv2.GC_FGD, -1)
    y_chest = int(min(H - 1, cy + 1.6 * fh))
    cv2.rectangle(mask, (int(cx - 0.3 * fw), int(cy + 0.9 * fh)), (int(cx + 0.3 * fw), y_chest), cv2.GC_FGD, -1)


def _cut_subject(srgb8, guide, boxes, faces):
    """Soft subject matte at the working size from GrabCut inside the boxes + guided feathering."""
    import cv2
    h0, w0 = srgb8.shape[:2]
    s = min(1.0, CUT_LONG_SIDE / max(h0, w0))
    wc, hc = max(1, int(round(w0 * s))), max(1, int(round(h0 * s)))
    img = cv2.resize(srgb8, (wc, hc), interpolation=cv2.INTER_AREA) if s < 1 else srgb8
    mask = np.full((hc, wc), cv2.GC_BGD, np.uint8)
    for (x, y, bw, bh) in boxes:
        # a margin around the box may go either way
        mx, my = 0.12 * bw, 0.06 * bh
        x0, y0 = int(max(0, (x - mx) * s)), int(max(0, (y - my) * s))
        x1, y1 = int(min(wc, (x + bw + mx) * s + 1)), int(min(hc, (y + bh + my) * s + 1))
        mask[y0:y1, x0:x1] = cv2.GC_PR_BGD
    if faces:
        for f in faces:
            _person_template(mask, f, s)
    else:
        for (x, y, bw, bh) in boxes:
            x0, y0 = int(x * s), int(y * s)
            x1, y1 = int(min(wc, (x + bw) * s + 1)), int(min(hc, (y + bh) * s + 1))
            mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
            # the box centre is most likely the object
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            ex, ey = max(1, (x1 - x0) // 8), max(1, (y1 - y0) // 8)
            mask[cy - ey:cy + ey + 1, cx - ex:cx + ex + 1] = cv2.GC_FGD
    prior = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    how = "GrabCut subject"
    has_bg = np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    has_fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
    cut = None
    if has_bg and has_fg and min(hc, wc) >= 8:
        try:
            bgd = np.zeros((1, 65), np.float64)
            fgd = np.zeros((1, 65), np.float64)
            m = mask.copy()
            cv2.grabCut(np.ascontiguousarray(img), m, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
            cut = np.isin(m, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
        except cv2.error:
            cut = None
    if cut is None or cut.sum() < 0.2 * max(prior.sum(), 1):
        cut = prior                                   # GrabCut failed or ate the subject: keep the template
        how = "box subject"
    else:
        cut = _largest_components(cut, mask)
    up = cv2.resize(cut, (w0, h0), interpolation=cv2.INTER_LINEAR) if (wc, hc) != (w0, h0) else cut
    r = max(2, int(round(max(h0, w0) / 80)))
    alpha = guided_filter(guide, up, r, 2e-3)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32), how


def _largest_components(cut, mask):
    """Keep the parts of the cut connected to sure foreground (or the largest part)."""
    import cv2
    n, lab = cv2.connectedComponents(cut.astype(np.uint8), connectivity=8)
    if n <= 2:
        return cut
    sure = mask == cv2.GC_FGD
    keep = np.zeros(n, bool)
    if sure.any():
        keep[np.unique(lab[sure & (lab > 0)])] = True
    if not keep[1:].any():
        sizes = np.bincount(lab.ravel(), minlength=n)
        sizes[0] = 0
        keep[int(np.argmax(sizes))] = True
    keep[0] = False
    return keep[lab].astype(np.float32)


# -- depth composition -------------------------------------------------------------------------


def _horizon(alpha, h0) -> float:
    """Horizon height as a fraction from the top: the default, raised for a subject whose feet
    are visible (the ground meets it at its bottom)."""
    return HORIZON


def _background(h0, w0, horizon) -> np.ndarray:
    """Ground plane below the horizon (disparity linear in the row: exact for a flat floor seen
    in perspective), nearly flat and far above it."""
    y = (np.arange(h0, dtype=np.float32) + 0.5) / h0
    t = np.clip((y - horizon) / max(1e-6, 1.0 - horizon), 0.0, 1.0)
    above = np.clip((horizon - y) / max(horizon, 1e-6), 0.0, 1.0)
    col = BG_FAR + 0.03 * (1 - above) + (BG_NEAR - BG_FAR - 0.03) * t
    return np.repeat(col[:, None], w0, axis=1).astype(np.float32)


def _subject_shape(alpha, faces, h0, w0) -> np.ndarray:
    """Subject disparity: a base value, rounded towards the interior, faces a little nearer."""
    import cv2
    hard = (alpha > 0.5).astype(np.uint8)
    shape = np.full((h0, w0), SUBJECT_BASE, np.float32)
    if hard.any():
        dist = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
        if dist.max() > 0:
            shape += SUBJECT_ROUND * np.sqrt(dist / dist.max())
    if faces:
        yy, xx = np.mgrid[0:h0, 0:w0].astype(np.float32)
        for (x, y, fw, fh) in faces:
            cx, cy = x + fw / 2, y + fh / 2
            shape += FACE_BUMP * np.exp(-(((xx - cx) / (0.7 * fw)) ** 2 + ((yy - cy) / (0.8 * fh)) ** 2) / 2)
    return np.clip(shape, 0.0, 1.0)

