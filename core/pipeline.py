"""The pipeline: a photo and look parameters in, a refocused photo (and its maps) out.

One call does what the batch command, the GIMP plug-in and scripts need::

    import refocus
    from refocus import params, presets
    settings = presets.get("portrait").resolve({"aperture": "f/1.8"})
    res = refocus.refocus_file("IMG_1.jpg", settings)       # or refocus_image(linear, ...)
    res.linear, res.disparity, res.coc, res.focus.how, res.depth_source

Stages, reported to ``progress(stage, fraction)``: ``depth`` (embedded / model / offline
default, or the map given), ``focus`` (focal plane and blur strength), ``render`` (the lens),
``finish`` (grain, texture, borders, saturation).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import params as _params
from .errors import BadInputError

STAGES = ("depth", "focus", "render", "finish")


@dataclass
class Result:
    """What a refocus run produced; arrays are float32 at the photo's displayed size."""
    linear: np.ndarray                  # the refocused photo, linear light, (H, W, 3) or (H, W)
    original: np.ndarray                # the photo it started from (linear)
    disparity: np.ndarray               # the depth used, d in [0, 1], 1 = nearest
    coc: np.ndarray                     # signed CoC radius (pixels) that was rendered
    focus: object                       # refocus.focus.Focus
    K: float
    depth_source: str                   # e.g. "model (Depth Anything V2 Small ...)"
    settings: object                    # refocus.params.Settings
    notes: list = field(default_factory=list)      # one line per decision worth telling
    timings: dict = field(default_factory=dict)
    render_info: object = None

    @property
    def blur_mask(self) -> np.ndarray:
        """|CoC| scaled to [0, 1] (1 = the strongest blur): a layer for editing."""
        m = float(np.abs(self.coc).max())
        return (np.abs(self.coc) / m).astype(np.float32) if m > 0 else np.zeros_like(self.coc)

    def record(self) -> dict:
        """A JSON-able summary (for reports and the XMP record of outputs)."""
        return {"depth_source": self.depth_source, "focus": self.focus.how,
                "focus_disparity": round(float(self.focus.disparity), 4), "blur": round(float(self.K), 3),
                "settings": {k: (list(v) if isinstance(v, tuple) else v)
                             for k, v in self.settings.as_dict().items()},
                "notes": list(self.notes), "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def _noop(stage, fraction):
    pass


def refocus_image(linear, settings=None, *, disparity=None, subject_mask=None, photo=None,
                  camera=None, device: str = "auto", progress=None) -> Result:
    """Refocus an image held in memory.

    Parameters
    ----------
    linear : (H, W, 3) or (H, W) float array, linear light.
    settings : :class:`refocus.params.Settings` or a dict of parameters (None: defaults).
    disparity : (H, W) disparity map to use; None estimates one (``settings.depth``).
    subject_mask : (H, W) in [0, 1], optional: the subject (e.g. a GIMP selection); it is
        kept sharp (soft edges give soft transitions), focused on, and guides the offline depth.
    photo : the :class:`refocus.imageio.Photo` `linear` came from, if any (embedded depth,
        EXIF for a virtual aperture).
    camera : :class:`refocus.io.CameraInfo`; default: ``photo.camera``.
    progress : callable ``(stage, fraction)``.
    """
    from .focus import blur_strength, choose_focus, effective_disparity
    from .lens import RenderInfo, render_linear
    progress = progress or _noop
    if settings is None or isinstance(settings, dict):
        settings = _params.resolve(settings)
    img = np.asarray(linear, np.float32)
    if img.ndim not in (2, 3):
        raise BadInputError(f"image: expected (H, W, 3) or (H, W), got shape {img.shape}")
    H, W = img.shape[:2]
    if subject_mask is not None:
        subject_mask = np.clip(np.asarray(subject_mask, np.float32), 0, 1)
        if subject_mask.shape != (H, W):
            raise BadInputError(f"subject mask: shape {subject_mask.shape} does not match the image ({H}, {W})")
    notes = []
    timings = {}
    xmp_faces = []
    if photo is not None and getattr(photo, "xmp", None):
        from .focus import faces_from_xmp
        xmp_faces = faces_from_xmp(photo.xmp, (H, W), getattr(getattr(photo, "camera", None), "orientation", 1))
        if xmp_faces:
            notes.append(f"faces: {len(xmp_faces)} from the photo's XMP face regions")
    t0 = time.perf_counter()
    progress("depth", 0.0)
    if disparity is not None:
        disp = np.asarray(disparity, np.float32)
        if disp.shape != (H, W):
            raise BadInputError(f"disparity: shape {disp.shape} does not match the image ({H}, {W})")
        if not np.isfinite(disp).all():
            raise BadInputError("disparity: contains NaN or infinite values")
        disp = np.clip(disp, 0, 1)
        depth_source, clean_edges = "given", True
    else:
        hints = {"faces": [(x / W, y / H, w / W, h / H) for x, y, w, h in xmp_faces]} if xmp_faces else None
        disp, depth_source, original, clean_edges = _estimate(photo if photo is not None else img, settings,
                                                              subject_mask, device, hints)
        if original is not None and original.shape[:2] == (H, W):
            img = original
            notes.append("started from the unblurred original stored in the file")
    notes.append(f"depth: {depth_source}")
    if clean_edges:                                   # see DepthResult.clean_edges
        from .depth.edges import clean_depth_edges
        disp, n_hard, n_moved = clean_depth_edges(disp, img)
        if n_hard:
            notes.append(f"depth: {n_hard} pixels of soft depth edges moved to the nearer level")
        if n_moved:
            notes.append(f"depth: {n_moved} pixels moved to the other side of a depth edge, onto the photo's outlines")
    t1 = time.perf_counter()
    progress("focus", 0.0)
    focus = choose_focus(img, disp, settings, subject_mask=subject_mask, faces=xmp_faces)
    notes.append(f"focus: {focus.how} (disparity {focus.disparity:.3f})")
    cam = camera if camera is not None else getattr(photo, "camera", None)
    K, how_k = blur_strength(settings, (H, W), focus, cam)
    notes.append(f"blur: {how_k}")
    keep = subject_mask
    border = None
    if settings.keep_border:
        from .finish import border_text, detect_border
        border, widths = detect_border(img)
        if border is None:
            notes.append("border: none found (keep_border)")
        else:
            notes.append(f"border: kept sharp ({border_text(widths, border)})")
            keep = border if keep is None else np.maximum(keep, border)
    eff, d_f = effective_disparity(disp, focus, settings, subject_mask=keep)
    t2 = time.perf_counter()
    progress("render", 0.0)
    info = RenderInfo(depth_source=depth_source)
    out = render_linear(img, eff, d_f, K, aperture=settings.shape, blades=settings.blades,
                        rotation=settings.rotation, highlight_gain=settings.highlight_gain,
                        device=device, harden_edges=False, info=info)   # hardened above, before the
                                                                        # sharp zone and the mask
    coc = (np.float32(K) * (eff - np.float32(d_f))).astype(np.float32)
    t3 = time.perf_counter()
    progress("finish", 0.0)
    from . import finish
    out = finish.apply(out, img, coc, settings, notes=notes, border_mask=border)
    t4 = time.perf_counter()
    progress("finish", 1.0)
    timings.update({"depth": t1 - t0, "focus": t2 - t1, "render": t3 - t2, "finish": t4 - t3})
    return Result(linear=out, original=img, disparity=disp, coc=coc, focus=focus, K=K,
                  depth_source=depth_source, settings=settings, notes=notes, timings=timings,
                  render_info=info)


def _estimate(photo_or_image, settings, subject_mask, device, hints=None):
    from .depth import estimate_depth
    res = estimate_depth(photo_or_image, source=settings.depth, model=settings.model, device=device,
                         subject_mask=subject_mask, **({"hints": hints} if hints else {}))
    return res.disparity, f"{res.source} ({res.detail})", res.original, res.clean_edges


def refocus_file(path, settings=None, *, depth=None, depth_kind: str = "disparity", subject_mask=None,
                 device: str = "auto", progress=None):
    """Read a photo (any format refocus reads) and refocus it; returns ``(result, photo)``.

    ``depth``: a disparity map file to use instead of estimating one.  Nothing is written;
    see :mod:`refocus.io.write` and :mod:`refocus.io.layers` for outputs.
    """
    from . import imageio
    from .io import read_photo
    photo = read_photo(path)
    disp = None
    if depth is not None:
        disp = imageio.read_depth(depth, photo.linear.shape[:2], kind=depth_kind)
    res = refocus_image(photo.linear, settings, disparity=disp, subject_mask=subject_mask, photo=photo,
                        device=device, progress=progress)
    if depth is not None:
        res.depth_source = f"file ({depth})"
    return res, photo
