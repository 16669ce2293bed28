"""Reading photos: the format is chosen from the file's first bytes, one reader per format.

Every reader returns the same thing: the stored code values (uint8/uint16/float, RGB or
grey, alpha split off), the ICC profile, the EXIF block, the XMP packet and the EXIF
orientation; :func:`read_photo` then applies the orientation, linearises with the profile's
curves (see :mod:`refocus.io.colour`) and returns a :class:`refocus.imageio.Photo`.

Guard rails: a missing, empty, non-image, truncated or damaged file, and an image above the
pixel limit (``REFOCUS_MAX_PIXELS``, default 200 MP, or ``max_pixels=``), each give one
:class:`~refocus.errors.RefocusError` whose message names the file.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, RefocusError, UnsupportedFormatError
from . import colour, metadata
from .raw import RAW_EXTS

HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
READABLE = ("JPEG", "PNG", "TIFF", "WebP", "BMP", "HEIC (with pillow-heif)", "camera raw (LibRaw)")


DEFAULT_MAX_PIXELS = 200_000_000


def default_max_pixels() -> int:
    env = os.environ.get("REFOCUS_MAX_PIXELS")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise BadInputError(f"REFOCUS_MAX_PIXELS={env!r} is not a number of pixels") from None
    return DEFAULT_MAX_PIXELS


@dataclass
class Decoded:
    """What a format reader hands back (stored orientation, code values)."""
    pixels: np.ndarray                  # (H, W) grey or (H, W, 3) RGB, uint8/uint16/float32
    alpha: np.ndarray | None = None     # (H, W) same dtype as pixels, straight (not premultiplied)
    icc: bytes | None = None
    exif: bytes | None = None           # TIFF structure, ready for outputs
    xmp: bytes | None = None
    orientation: int = 1
    format: str = ""
    linear_input: bool = False          # pixels already linear (raw development)
    info: dict | None = None


def sniff(path: Path) -> str:
    """Format of a file from its first bytes ('jpeg', 'png', 'tiff', 'webp', 'bmp', 'heif',
    'raw' or 'unknown'); the extension only decides between TIFF and a TIFF-based raw."""
    with open(path, "rb") as f:
        head = f.read(32)
    ext = path.suffix.lower()
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"crx ":
            return "raw"                                  # Canon CR3
        if brand in HEIF_BRANDS:
            return "heif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "raw" if ext in RAW_EXTS else "tiff"
    if head[:2] == b"BM":
        return "bmp"
    if (head[:4] in (b"IIU\x00", b"IIRO", b"IIRS", b"MMOR") or head[:8] == b"FUJIFILM"
            or head[6:14] == b"HEAPCCDR" or head[:4] in (b"FOVb", b"\x00MRM")):
        return "raw"
    return "unknown"


def _check_size(path, w, h, max_pixels):
    if w * h > max_pixels:
        raise BadInputError(f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the pixel limit of "
                            f"{max_pixels / 1e6:.1f} MP (a decompression bomb or a very large image); "
                            "set REFOCUS_MAX_PIXELS to raise the limit if the file is trusted")


def _pil_open(path: Path, max_pixels: int):
    from PIL import Image, UnidentifiedImageError
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None             # refocus checks its own limit, with its own message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
    except UnidentifiedImageError:
        raise UnsupportedFormatError(f"{path}: not an image refocus can read "
                                     f"(supported: {', '.join(READABLE)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UnsupportedFormatError(f"{path}: damaged image, cannot read its header ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    _check_size(path, im.size[0], im.size[1], max_pixels)
    return im


def _pil_orientation(im) -> int:
    try:
        o = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1
    return o if 1 <= o <= 8 else 1


def _pil_xmp(im) -> bytes | None:
    x = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(x, str):
        x = x.encode("utf-8")
    return x or None


def _pil_pixels(im, path):
    """Decode with Pillow: (pixels, alpha) as uint8 (or uint16 for 16-bit grey)."""
    from PIL import Image
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        im.load()
    except Exception as e:
        raise UnsupportedFormatError(f"{path}: damaged or truncated {im.format or 'image'} ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16), None
    if mode in ("1", "L", "LA", "La"):
        a = np.asarray(im.convert("LA"))
        return np.ascontiguousarray(a[..., 0]), (a[..., 1].copy() if mode != "L" and mode != "1" else None)
    if mode == "I":
        a = np.asarray(im)
        return (np.clip(a, 0, 65535).astype(np.uint16) if a.max() > 255 else a.astype(np.uint8)), None
    if mode == "F":
        return np.asarray(im, np.float32), None
    has_alpha = mode in ("RGBA", "PA", "RGBa", "LA") or "transparency" in im.info
    a = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if has_alpha:
        return np.ascontiguousarray(a[..., :3]), a[..., 3].copy()
    return a, None


def _read_common(path: Path, kind: str, max_pixels: int) -> Decoded:
    """JPEG, PNG, WebP, BMP: header and metadata by Pillow, pixels by OpenCV (fast, 16-bit)."""
    import cv2
    im = _pil_open(path, max_pixels)
    fmt = im.format or kind.upper()
    w, h = im.size
    icc = im.info.get("icc_profile")
    exif = metadata.tiff_block(im.info.get("exif"))
    if kind == "png" and not exif:
        try:
            ex = im.getexif()
            exif = metadata.tiff_block(ex.tobytes()) if len(ex) else None
        except Exception:
            exif = None
    orientation = _pil_orientation(im)
    xmp = _pil_xmp(im)
    grey_mode = im.mode in ("1", "L", "LA", "La", "I;16", "I;16B", "I;16L", "I", "F")
    data = np.fromfile(path, np.uint8)
    if fmt in ("JPEG", "MPO"):
        # OpenCV (libjpeg) silently fills the missing part of a truncated JPEG with grey
        tail = data[-65536:].tobytes()
        if b"\xff\xd9" not in tail:
            raise UnsupportedFormatError(f"{path}: truncated JPEG (no end-of-image marker); "
                                         "the file was cut short - copy it again")
    arr = None
    if fmt in ("JPEG", "PNG", "BMP", "MPO") and im.mode not in ("P", "PA", "CMYK", "I", "F"):
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is not None and (arr.shape[0] != h or arr.shape[1] != w):
            arr = None
    if arr is None:
        pixels, alpha = _pil_pixels(im, path)
    else:
        alpha = None
        if arr.ndim == 3 and arr.shape[2] == 4:
            alpha = arr[..., 3].copy()
            arr = arr[..., :3]
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim == 3:
            if grey_mode:
                arr = arr[..., 2]                   # OpenCV orders B, G, R: take R
            else:                                   # BGR -> RGB in one SIMD pass
                arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2RGB)
        pixels = np.ascontiguousarray(arr)
        if fmt == "PNG":
            _check_png_complete(data, path)
    if im.mode == "CMYK":
        raise UnsupportedFormatError(f"{path}: CMYK images are not supported; convert the file to RGB")
    return Decoded(pixels, alpha, icc, exif, xmp, orientation, fmt)


def _check_png_complete(data: np.ndarray, path):
    if b"IEND" not in data[-64:].tobytes():
        raise UnsupportedFormatError(f"{path}: truncated PNG (no IEND chunk); the file was cut short")


def _read_tiff(path: Path, max_pixels: int) -> Decoded:
    import tifffile
    try:
        tf = tifffile.TiffFile(path)
    except Exception as e:
        raise UnsupportedFormatError(f"{path}: damaged TIFF, cannot read its header ({e})") from None
    with tf:
        if not len(tf.pages):
            raise UnsupportedFormatError(f"{path}: TIFF without images")
        page = tf.pages[0]
        h, w = (page.imagelength, page.imagewidth)
        _check_size(path, w, h, max_pixels)
        from .raw import _tiff_truncated
        why = _tiff_truncated(path, path.stat().st_size)
        if why:
            raise UnsupportedFormatError(f"{path}: truncated TIFF ({why}); the file was cut short")
        tags = page.tags
        photometric = int(page.photometric)
        if photometric in (32803, 34892) or "DNGVersion" in tags:
            return None                                   # a raw in a .tif: let LibRaw develop it
        icc = tags["InterColorProfile"].value if "InterColorProfile" in tags else None
        xmp = tags["XMP"].value if "XMP" in tags else None
        orientation = int(tags["Orientation"].value) if "Orientation" in tags else 1
        alpha = None
        a = None
        if photometric in (0, 1, 2) and page.dtype is not None:
            try:
                a = page.asarray()
            except Exception as e:
                if "imagecodecs" not in str(e):
                    raise UnsupportedFormatError(f"{path}: damaged TIFF image data ({e})") from None
                a = None                                  # e.g. LZW without imagecodecs: Pillow decodes it
        if a is not None and photometric in (0, 1, 2) and page.dtype is not None:
            if page.planarconfig == 2 and a.ndim == 3 and a.shape[0] == page.samplesperpixel:
                a = np.moveaxis(a, 0, -1)
            if a.ndim == 3 and a.shape[-1] == 1:
                a = a[..., 0]
            extra = tuple(int(x) for x in (page.extrasamples or ()))
            ncol = 1 if photometric in (0, 1) else 3
            if a.ndim == 3 and a.shape[-1] > ncol:
                if extra and extra[0] in (1, 2):
                    alpha = a[..., ncol]
                a = a[..., :ncol]
                if ncol == 1:
                    a = a[..., 0]
                if alpha is not None and extra[0] == 1:   # associated alpha: un-premultiply
                    top = float(np.iinfo(a.dtype).max) if a.dtype.kind in "iu" else 1.0
                    af = alpha.astype(np.float32) / np.float32(top)
                    afb = af[..., None] if a.ndim == 3 else af
                    col = a.astype(np.float32) / np.maximum(afb, np.float32(1e-12))
                    col = np.where(afb > 0, col, 0)
                    a = np.clip(np.round(col), 0, top).astype(a.dtype) if a.dtype.kind in "iu" else col
            if photometric == 0:                          # min-is-white
                a = (np.iinfo(a.dtype).max - a) if a.dtype.kind in "iu" else 1.0 - a
            if a.dtype.kind in "iu" and a.dtype not in (np.uint8, np.uint16):
                a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
            elif a.dtype.kind == "f":
                a = a.astype(np.float32)
            if alpha is not None and alpha.dtype != a.dtype:
                top = float(np.iinfo(alpha.dtype).max) if alpha.dtype.kind in "iu" else 1.0
                alpha = alpha.astype(np.float32) / top
                alpha = (np.round(alpha * np.iinfo(a.dtype).max).astype(a.dtype)
                         if a.dtype.kind in "iu" else alpha)
            pixels = np.ascontiguousarray(a)
        else:
            pixels = None
    im = _pil_open(path, max_pixels)
    if pixels is None:                                    # palette, YCbCr, CMYK, ...: Pillow decodes
        if im.mode == "CMYK":
            raise UnsupportedFormatError(f"{path}: CMYK TIFF is not supported; convert the file to RGB")
        pixels, alpha = _pil_pixels(im, path)
    exif = None
    try:
        exif = metadata.rebuild_exif(im.getexif())
    except Exception:
        exif = None
    return Decoded(pixels, alpha, icc, exif, xmp, orientation, "TIFF")


def _read_heif(path: Path, max_pixels: int) -> Decoded:
    try:
        import pillow_heif
    except ImportError:
        raise UnsupportedFormatError(f"{path}: HEIC/HEIF needs the optional package pillow-heif "
                                     "(pip install 'refocus[heic]' or pip install pillow-heif)") from None
    pillow_heif.register_heif_opener()
    im = _pil_open(path, max_pixels)
    pixels, alpha = _pil_pixels(im, path)
    # libheif applies the HEIF transforms (irot/imir) on decode: the pixels are as displayed,
    # and the EXIF orientation must not be applied a second time
    return Decoded(pixels, alpha, im.info.get("icc_profile"), metadata.tiff_block(im.info.get("exif")),
                   _pil_xmp(im), 1, "HEIF")


def _read_raw(path: Path, max_pixels: int) -> Decoded:
    from . import raw
    lin, info = raw.read_raw(path, max_pixels)
    ex = raw.raw_exif(path)
    exif = metadata.rebuild_exif(ex) if ex is not None else None
    return Decoded(lin, None, colour.srgb_icc(), exif, None, 1, "RAW", linear_input=True, info=info)


def read_photo(path, *, max_pixels: int | None = None):
    """Read a photo as linear RGB float32 (orientation applied, profile curves undone).

    Formats by content: JPEG, PNG, TIFF (8/16-bit, float, grey, RGB, RGBA), WebP, BMP, HEIC
    (with pillow-heif) and camera raw (rawpy).  Returns :class:`refocus.imageio.Photo`.
    """
    path = Path(path)
    max_pixels = default_max_pixels() if max_pixels is None else int(max_pixels)
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder, not an image")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise BadInputError(f"{path}: cannot read ({e.strerror})") from None
    if size == 0:
        raise UnsupportedFormatError(f"{path}: empty file (0 bytes)")
    try:
        kind = sniff(path)
    except OSError as e:
        raise BadInputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        if kind in ("jpeg", "png", "webp", "bmp"):
            dec = _read_common(path, kind, max_pixels)
        elif kind == "tiff":
            dec = _read_tiff(path, max_pixels) or _read_raw(path, max_pixels)
        elif kind == "heif":
            dec = _read_heif(path, max_pixels)
        elif kind == "raw":
            dec = _read_raw(path, max_pixels)
        else:
            try:
                dec = _read_common(path, "image", max_pixels)
            except UnsupportedFormatError:
                if path.suffix.lower() not in RAW_EXTS:
                    raise
                dec = _read_raw(path, max_pixels)      # raw formats without a magic number we know
    except RefocusError:
        raise
    except MemoryError:
        raise BadInputError(f"{path}: not enough memory to decode this image") from None
    except Exception as e:                              # a decoder failing in an unforeseen way
        raise UnsupportedFormatError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    return _to_photo(path, dec)


def _to_photo(path: Path, dec: Decoded):
    from .. import imageio
    px = dec.pixels
    grey = px.ndim == 2
    if dec.linear_input:
        space = colour.parse_icc(dec.icc)
        lin = px if px.ndim == 3 else np.repeat(px[..., None], 3, axis=2)
        bits = 16
    else:
        space = colour.parse_icc(dec.icc)
        bits = 16 if px.dtype in (np.uint16, np.float32) else 8
        rgb = np.repeat(px[..., None], 3, axis=2) if grey else px
        lin = None
    lin_or_rgb = lin if lin is not None else rgb
    lin_or_rgb = imageio.apply_orientation(lin_or_rgb, dec.orientation)
    alpha = None
    if dec.alpha is not None:
        a = imageio.apply_orientation(dec.alpha, dec.orientation)
        if a.dtype == np.uint8:
            alpha = a.astype(np.float32) / 255
        elif a.dtype == np.uint16:
            alpha = a.astype(np.float32) / 65535
        else:
            alpha = np.clip(a.astype(np.float32), 0, 1)
        alpha = np.ascontiguousarray(alpha)
    linear = (np.ascontiguousarray(lin_or_rgb, dtype=np.float32) if lin is not None
              else colour.decode(np.ascontiguousarray(lin_or_rgb), space))
    h, w = linear.shape[:2]
    cam = metadata.parse_exif(dec.exif, image_size=(w, h)) if dec.exif else metadata.CameraInfo()
    if dec.format == "RAW":
        raw_cam = metadata.parse_exif(path, image_size=(w, h))
        if raw_cam.make or raw_cam.model:
            cam = raw_cam
    meta = {"orientation": dec.orientation, "size": (w, h), "colour_space": space.name}
    if space.note:
        meta["colour_note"] = space.note
    if dec.info:
        meta["raw"] = dec.info
    return imageio.Photo(linear, path, bits, grey, dec.icc, dec.exif, dec.format, meta,
                         alpha=alpha, camera=cam, xmp=dec.xmp, space=space)
