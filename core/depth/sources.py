"""The ``auto`` order of depth sources: embedded depth, then an installed model, then the
offline default.

* ``auto``: a depth map inside the file wins (it was measured or computed by the camera);
  else the model named by ``model`` (it must be installed: asking for a model by name is
  not a wish to be overridden), else the first installed registry model (the default
  first); else the offline default, with a one-line notice naming the command that
  installs the better model.
* ``embedded`` / ``model`` / ``fallback``: only that source; if it is not available, a
  :class:`~refocus.errors.ModelError` (or BadInputError) says why and what to do.

The embedded reader and the fallback live in ``refocus.depth.embedded`` and
``refocus.depth.fallback``; they are imported lazily and a build without them simply
lacks those sources.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import BadInputError, ModelError
from . import SOURCES, DepthResult

_notified: set = set()


def notice(msg: str) -> None:
    """One line on stderr, once per process."""
    if msg not in _notified:
        _notified.add(msg)
        print(f"refocus: {msg}", file=sys.stderr)


def fallback_notice() -> str:
    from .models import DOWNLOAD_COMMAND, default_name
    return ("no depth model installed: using the offline default depth estimate; for better depth "
            f"install a model with: {DOWNLOAD_COMMAND.format(name=default_name())}")


def _read_embedded(path):
    try:
        from .embedded import read_embedded_depth
    except ImportError:
        return None, "this build of refocus has no embedded-depth reader"
    return read_embedded_depth(path), None


def _fallback_fn():
    try:
        from .fallback import estimate_fallback
    except ImportError:
        return None
    return estimate_fallback


def _fit(disp: np.ndarray, shape, what: str) -> np.ndarray:
    """`disp` at `shape` (H, W): resized when only the resolution differs."""
    import cv2
    disp = np.asarray(disp, np.float32)
    if disp.shape == tuple(shape):
        return disp
    H, W = shape
    h, w = disp.shape
    if abs(w / h - W / H) > 0.01 * (W / H):
        raise ModelError(f"{what}: depth map is {w}x{h} but the photo is displayed as {W}x{H}")
    return np.clip(cv2.resize(disp, (W, H), interpolation=cv2.INTER_LINEAR), 0, 1)


def estimate_depth(photo_or_path, *, source: str = "auto", model=None, device: str = "auto",
                   subject_mask=None, hints=None) -> DepthResult:
    """Disparity of a photo from the first available source (see the module docstring).

    `subject_mask` (H, W) in [0, 1], optional: where the subject is (e.g. a GIMP selection);
    the offline default uses it instead of its detectors.  `hints`, optional: passed to the
    offline default as its ``info`` (e.g. ``{"faces": [...]}`` from XMP face regions).

    `photo_or_path`: a file path, a :class:`refocus.imageio.Photo`, or a float32 linear
    RGB array (H, W, 3) (no embedded depth then).
    """
    from .. import imageio
    if source not in SOURCES:
        raise BadInputError(f"--source: unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    t0 = time.perf_counter()
    path, photo, linear = None, None, None
    if isinstance(photo_or_path, (str, os.PathLike)):
        path = Path(photo_or_path)
    elif isinstance(photo_or_path, imageio.Photo):
        photo, path = photo_or_path, photo_or_path.path
    elif isinstance(photo_or_path, np.ndarray):
        linear = photo_or_path
    else:
        raise BadInputError(f"photo: expected a path, a Photo or a linear RGB array, got {type(photo_or_path).__name__}")

    def get_linear():
        nonlocal photo, linear
        if linear is None:
            if photo is None:
                photo = imageio.read_photo(path)
            linear = photo.linear
        return linear

    timings = {}
    if source in ("auto", "embedded"):
        if path is None:
            if source == "embedded":
                raise BadInputError("--source embedded needs a file (an array has no embedded depth)")
        else:
            get_linear()                # also checks the file is a readable photo
            timings["read"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            emb, why = _read_embedded(path)
            timings["embedded"] = time.perf_counter() - t1
            if emb is not None:
                disp = _fit(emb.disparity, linear.shape[:2], str(path))
                return DepthResult(disp, "embedded", emb.kind, timings, getattr(emb, "original", None))
            if source == "embedded":
                raise ModelError(f"{path}: no depth map is stored in this file"
                                 + (f" ({why})" if why else "") + "; use --source auto or model")
    if source in ("auto", "model"):
        from . import estimate, models
        if source == "model" or model is not None or models.installed():
            spec, file = models.resolve(model)
            disp, detail, t = estimate.predict(get_linear(), spec, file, device=device)
            timings.update(t)
            return DepthResult(disp, "model", detail, timings)
    fallback = _fallback_fn()
    if fallback is None:
        from .models import DOWNLOAD_COMMAND, default_name
        raise ModelError("no depth source available: no depth in the file, no model installed and no offline "
                         f"default in this build; install a model with: "
                         f"{DOWNLOAD_COMMAND.format(name=default_name())} (or pass --depth PATH)")
    lin = get_linear()
    t1 = time.perf_counter()
    disp, detail = fallback(lin, subject_mask=subject_mask, **({"info": hints} if hints else {}))
    timings["fallback"] = time.perf_counter() - t1
    notice(fallback_notice())
    return DepthResult(_fit(disp, lin.shape[:2], "offline default"), "fallback", detail, timings)
