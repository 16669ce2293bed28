"""The photo record, EXIF orientation, user-supplied depth maps and atomic writes.

Photos are read by :mod:`refocus.io` (``read_photo`` here forwards to it) and results are
written by :mod:`refocus.io.write`.  Every output goes to a temporary file in the
destination folder and is renamed into place, so an interrupted run never leaves a
half-written file under the final name, and an input file is never overwritten.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInputError, OutputError, UnsupportedFormatError

READABLE = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "MPO")


@dataclass
class Photo:
    """A decoded photo: linear RGB float32 (orientation applied) and its metadata."""
    linear: np.ndarray
    path: Path | None = None
    bits: int = 8
    grey: bool = False
    icc: bytes | None = None
    exif: bytes | None = None
    format: str = ""
    meta: dict = field(default_factory=dict)
    alpha: np.ndarray | None = None          # (H, W) float32 in [0, 1], straight alpha, or None
    camera: object = None                    # refocus.io.CameraInfo (make, lens, focal length, ...)
    xmp: bytes | None = None                 # the source's XMP packet
    space: object = None                     # refocus.io.colour.ColourSpace of `linear`


def _identify(path: Path):
    from PIL import Image, UnidentifiedImageError
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise UnsupportedFormatError(f"{path}: empty file (0 bytes)")
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise UnsupportedFormatError(f"{path}: not an image refocus can read "
                                     f"(supported: {', '.join(READABLE)})") from None
    except OSError as e:
        raise UnsupportedFormatError(f"{path}: cannot read image ({e})") from None
    return im


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Return the stored array `a` turned as EXIF `orientation` says it is displayed."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return np.swapaxes(a, 0, 1)
    if orientation == 6:
        return np.swapaxes(a, 0, 1)[:, ::-1]
    if orientation == 7:
        return np.swapaxes(a, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.swapaxes(a, 0, 1)[::-1]
    return a


def read_photo(path, *, max_pixels: int | None = None) -> Photo:
    """Read a photo as linear RGB (EXIF orientation applied); see :func:`refocus.io.read_photo`."""
    from .io.read import read_photo as _read_photo
    return _read_photo(path, max_pixels=max_pixels)


def _fill_unknown(d: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Fill the `unknown` pixels of `d` from their known surroundings (OpenCV Telea inpainting)."""
    import cv2
    if not unknown.any():
        return d
    filled = d.copy()
    filled[unknown] = 0
    return cv2.inpaint(filled.astype(np.float32), unknown.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def read_depth(path, shape=None, kind: str = "disparity") -> np.ndarray:
    """Read a depth/disparity map as float32 disparity in [0, 1] (1 = near).

    Accepts grey PNG/TIFF (8 or 16 bit: value / max of the type; float TIFF as is) and
    ``.npy`` arrays.  A colour image whose channels differ (a colour-mapped picture of a
    depth map) is refused.  With `shape` (H, W): a map of the same aspect ratio but another
    resolution is resized; another aspect ratio is an error.

    ``kind="disparity"``: floats outside [0, 1] (e.g. disparities in pixels) are scaled to
    [0, 1] by their minimum and maximum; NaN or infinite values are an error.

    ``kind="depth"`` (larger = farther, any unit): disparity is proportional to 1/depth,
    so the map becomes ``1/z`` normalised to [0, 1] (``(1/z - 1/z_max) / (1/z_min - 1/z_max)``),
    not a flipped ``1 - z``.  ``+inf`` is infinitely far (disparity 0); zero, negative
    and NaN values mean "no measurement" (as depth sensors write them) and are filled from
    the surrounding pixels.
    """
    import cv2
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: depth file not found")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder, not a depth map")
    if path.suffix.lower() == ".npy":
        try:
            d = np.load(path, allow_pickle=False)
        except Exception as e:
            raise UnsupportedFormatError(f"{path}: not a readable .npy array ({e})") from None
    else:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile
            try:
                d = tifffile.imread(path)
            except Exception as e:
                raise UnsupportedFormatError(f"{path}: not a readable TIFF depth map ({e})") from None
        else:
            _identify(path)
            d = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
            if d is None:
                raise UnsupportedFormatError(f"{path}: damaged depth image")
    d = np.asarray(d)
    if d.ndim == 3:
        if d.shape[2] > 4 and d.shape[0] <= 4:        # channels first
            d = np.moveaxis(d, 0, 2)
        if d.shape[2] >= 3 and not (np.array_equal(d[..., 0], d[..., 1]) and np.array_equal(d[..., 0], d[..., 2])):
            raise BadInputError(f"{path}: depth map has {d.shape[2]} differing colour channels; expected a grey "
                                "image (a colour-mapped picture of depth cannot be read back; save the map as "
                                "grey PNG/TIFF or .npy)")
        d = d[..., 0]
    if d.ndim != 2:
        raise BadInputError(f"{path}: expected a 2-D depth map, got shape {d.shape}")
    from_ints = d.dtype.kind in "u"                      # value / max of the type: finite, in [0, 1]
    if d.dtype.kind in "iu":
        top = np.float32(np.iinfo(d.dtype).max)
        d = d.astype(np.float32)
        np.divide(d, top, out=d)
    elif d.dtype.kind in "fb":
        d = d.astype(np.float32)
    else:
        raise BadInputError(f"{path}: depth values of type {d.dtype} are not numbers")
    if kind == "depth":
        unknown = ~(d > 0)                               # 0, negative, NaN: no measurement
        far = np.isposinf(d)
        valid = ~unknown & ~far
        if not valid.any():
            raise BadInputError(f"{path}: no usable depth values (all are zero, negative, NaN or infinite)")
        inv = np.zeros_like(d)
        inv[valid] = 1.0 / d[valid]                      # +inf depth -> 0
        lo, hi = 0.0 if far.any() else float(inv[valid].min()), float(inv[valid].max())
        d = (inv - lo) / max(hi - lo, 1e-12)
        d = np.clip(_fill_unknown(d.astype(np.float32), unknown), 0.0, 1.0)
    elif kind == "disparity" and from_ints:
        pass
    elif kind == "disparity":
        if not np.isfinite(d).all():
            raise BadInputError(f"{path}: {int((~np.isfinite(d)).sum())} disparity value(s) are NaN or infinite")
        lo, hi = float(d.min()), float(d.max())
        if lo < 0.0 or hi > 1.0:
            d = (d - lo) / max(hi - lo, 1e-12)
    else:
        raise BadInputError(f"--depth-kind: unknown kind {kind!r}; choose disparity or depth")
    return fit_depth(d.astype(np.float32, copy=False), shape, path)


def fit_depth(d: np.ndarray, shape, path) -> np.ndarray:
    """A map read by :func:`read_depth` (without `shape`) brought to the photo's size `shape`
    (H, W): resized when only the resolution differs, an error when the aspect ratio does."""
    if shape is not None and d.shape != tuple(shape):
        import cv2
        H, W = shape
        if abs(d.shape[1] / d.shape[0] - W / H) > 0.01 * (W / H):
            raise BadInputError(f"{path}: depth map is {d.shape[1]}x{d.shape[0]} but the photo is {W}x{H}; "
                                "the aspect ratios differ (a depth map must cover the same frame, as displayed: "
                                "EXIF orientation applied)")
        d = cv2.resize(d, (W, H), interpolation=cv2.INTER_LINEAR)
    return d


# -- writing -------------------------------------------------------------------


def output_folder(path) -> Path:
    """The existing folder `path` will be written to (OutputError if it does not exist)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: output folder {folder} does not exist")
    return folder


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write bytes to a temporary file beside `path`, then rename it into place.

    `mode`: the file's permissions (default: 0o666 less the umask, like any new file).
    """
    path = Path(path)
    folder = output_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise OutputError(f"{path}: cannot write to {folder} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())           # on disk before the rename: never an empty file
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask              # mkstemp makes 0600; outputs follow the umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
