"""Writing flattened results (JPEG, PNG, TIFF), disparity maps and GDepth JPEGs.

Every file gets, where the format has room for it: the ICC profile of the working space
(the input's, or sRGB with ``to_srgb=True``), the source's EXIF with Orientation reset to 1
(see :mod:`refocus.io.metadata`), and an XMP packet recording what refocus did.  Files are
written to a temporary name in the destination folder and renamed when complete; an
existing output is kept unless ``overwrite=True``, and the input is never written to.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import BadInputError, OutputError
from . import colour, metadata, xmp

FLAT_EXTS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}
LAYERED_EXTS = {".ora": "ora", ".psd": "psd"}


def output_kind(path, layers: bool = False) -> str:
    """'jpeg', 'png', 'tiff', 'ora', 'psd' or 'layered-tiff' from the output's extension."""
    ext = Path(path).suffix.lower()
    if ext in LAYERED_EXTS:
        return LAYERED_EXTS[ext]
    if ext in FLAT_EXTS:
        kind = FLAT_EXTS[ext]
        if layers:
            if kind != "tiff":
                raise BadInputError(f"{path}: --layers needs a layered format (.tif, .ora or .psd), "
                                    f"not {ext}")
            return "layered-tiff"
        return kind
    raise BadInputError(f"{path}: unknown output type {ext or '(none)'}; use one of "
                        f"{', '.join(sorted(set(FLAT_EXTS) | set(LAYERED_EXTS)))}")


def check_output(path, *, overwrite: bool = False, inputs=()) -> Path:
    """Refuse an output that is one of the inputs, or that exists (unless `overwrite`)."""
    from ..imageio import output_folder
    path = Path(path)
    output_folder(path)
    for src in inputs:
        if src is not None and path.exists() and Path(src).exists() and path.samefile(src):
            raise OutputError(f"{path}: refusing to overwrite the input file")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; refocus keeps existing files "
                          "(pass --overwrite, or overwrite=True, to replace it)")
    return path


def atomic_write(path, data: bytes, *, overwrite: bool = False, inputs=()) -> Path:
    """Check, then write `data` under a temporary name beside `path` and rename it into place."""
    from ..imageio import atomic_write as _aw
    path = check_output(path, overwrite=overwrite, inputs=inputs)
    try:
        _aw(path, data)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


# -- container helpers ---------------------------------------------------------------------

def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_metadata(png: bytes, *, icc=None, exif=None, xmp_packet=None, text: dict | None = None) -> bytes:
    """Insert iCCP, eXIf, iTXt (XMP) and tEXt chunks right after IHDR."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    ihdr_end = 8 + 8 + 13 + 4
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif)
    if xmp_packet:
        chunks += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp_packet)
    for k, v in (text or {}).items():
        chunks += _png_chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1", "replace"))
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def jpeg_with_metadata(jpeg: bytes, *, exif=None, icc=None, xmp_segments: bytes = b"") -> bytes:
    """Insert APP1 (EXIF), APP1 (XMP) and APP2 (ICC) segments after SOI/APP0."""
    segs = b""
    if exif:
        body = b"Exif\x00\x00" + exif
        if len(body) + 2 <= 0xFFFF:
            segs += b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    segs += xmp_segments
    if icc:
        chunk = 65519
        parts = [icc[i:i + chunk] for i in range(0, len(icc), chunk)]
        for n, part in enumerate(parts, 1):
            body = b"ICC_PROFILE\x00" + bytes([n, len(parts)]) + part
            segs += b"\xff\xe2" + (len(body) + 2).to_bytes(2, "big") + body
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":                      # keep JFIF APP0 first
        pos = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:pos] + segs + jpeg[pos:]


def tiff_attach_exif(data: bytes, exif: bytes | None) -> bytes:
    """Give IFD0 of a (little-endian, classic) TIFF the Exif and GPS sub-IFDs of `exif`.

    The sub-IFDs are appended, and IFD0 is rewritten at the end with the two pointer entries
    added (its old copy stays, unreferenced); the image data is not moved.
    """
    if not exif or data[:4] != b"II*\x00":
        return data
    from PIL import TiffImagePlugin
    src_e = "<" if exif[:2] == b"II" else ">"
    subs = {}
    try:
        ifd0 = TiffImagePlugin.ImageFileDirectory_v2(exif[:8])
        fp = io.BytesIO(exif)
        fp.seek(struct.unpack(src_e + "I", exif[4:8])[0])
        ifd0.load(fp)
        for ptr in (0x8769, 0x8825):
            if ptr in ifd0:
                sub = TiffImagePlugin.ImageFileDirectory_v2(exif[:8])
                fp.seek(int(ifd0[ptr]))
                sub.load(fp)
                subs[ptr] = sub
    except Exception:
        return data
    out = bytearray(data)
    new_entries = []
    for ptr, sub in subs.items():
        le = TiffImagePlugin.ImageFileDirectory_v2(b"II*\x00\x00\x00\x00\x00")
        for tag in sub:
            if tag in (0x8769, 0x8825, 0xA005):          # no nested pointers
                continue
            try:
                le[tag] = sub[tag]
                le.tagtype[tag] = sub.tagtype[tag]
            except Exception:
                continue
        if len(out) % 2:
            out += b"\x00"
        off = len(out)
        try:
            out += le.tobytes(off)
        except Exception:
            del out[off:]
            continue
        new_entries.append(struct.pack("<HHII", ptr, 4, 1, off))
    if not new_entries:
        return data
    first = struct.unpack_from("<I", out, 4)[0]
    n = struct.unpack_from("<H", out, first)[0]
    entries = [bytes(out[first + 2 + 12 * i:first + 14 + 12 * i]) for i in range(n)]
    nxt = struct.unpack_from("<I", out, first + 2 + 12 * n)[0]
    have = {struct.unpack("<H", e[:2])[0] for e in entries}
    entries += [e for e in new_entries if struct.unpack("<H", e[:2])[0] not in have]
    entries.sort(key=lambda e: struct.unpack("<H", e[:2])[0])
    if len(out) % 2:
        out += b"\x00"
    new_first = len(out)
    out += struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", nxt)
    struct.pack_into("<I", out, 4, new_first)
    return bytes(out)


def _ifd0_text_tags(exif: bytes | None) -> list:
    """Make, Model, Artist, Copyright, ImageDescription of an EXIF block as tifffile extratags."""
    if not exif:
        return []
    from PIL import Image
    try:
        ex = Image.Exif()
        ex.load(exif)
    except Exception:
        return []
    tags = []
    for tag in (0x010E, 0x010F, 0x0110, 0x013B, 0x8298):
        v = ex.get(tag)
        if isinstance(v, bytes):
            v = v.decode("latin-1", "replace")
        if isinstance(v, str) and v.strip("\x00 "):
            tags.append((tag, "s", 0, v.strip("\x00"), True))
    return tags


# -- pixels ----------------------------------------------------------------------------------

def _prepare(linear, photo, to_srgb: bool):
    """(linear in the output space, ColourSpace, icc bytes or None)."""
    space = getattr(photo, "space", None) or colour.parse_icc(getattr(photo, "icc", None))
    icc = getattr(photo, "icc", None)
    if to_srgb and not space.is_srgb:
        linear = colour.convert_linear(linear, space, colour.SRGB)
        space, icc = colour.SRGB, colour.srgb_icc()
    return linear, space, icc


def encode_pixels(linear, space, bits: int, grey: bool, alpha=None) -> np.ndarray:
    """Linear float (H, W, 3) -> code values (H, W[, C]) uint8/uint16, RGB order, alpha last."""
    lin = np.asarray(linear, np.float32)
    if lin.ndim == 2:
        lin = lin[..., None]
    if grey:
        lin = lin[..., :1]
    enc = colour.encode(lin, space, bits)
    if alpha is not None:
        top = 65535 if bits == 16 else 255
        a = np.round(np.clip(alpha, 0, 1) * top).astype(enc.dtype)
        enc = np.concatenate([enc, a[..., None]], axis=2)
    if enc.shape[2] == 1:
        enc = enc[..., 0]
    return np.ascontiguousarray(enc)


def encode_png(enc: np.ndarray, *, compression: int = 3) -> bytes:
    import cv2
    arr = enc
    if enc.ndim == 3 and enc.shape[2] == 2:            # grey + alpha: OpenCV has no LA; use Pillow
        raise BadInputError("grey+alpha PNG is not supported")
    if enc.ndim == 3:                                  # OpenCV's channel order, one SIMD pass
        arr = cv2.cvtColor(np.ascontiguousarray(enc), cv2.COLOR_RGBA2BGRA if enc.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OutputError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(enc8: np.ndarray, quality: int) -> bytes:
    import cv2
    arr = cv2.cvtColor(np.ascontiguousarray(enc8), cv2.COLOR_RGB2BGR) if enc8.ndim == 3 else enc8
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OutputError("JPEG encoding failed")
    return buf.tobytes()


def encode_tiff(enc: np.ndarray, *, icc=None, exif=None, xmp_packet=None, grey=False, alpha=False) -> bytes:
    import tifffile

    from .._version import __version__
    bio = io.BytesIO()
    extratags = _ifd0_text_tags(exif)
    if xmp_packet:
        extratags.append((700, "B", len(xmp_packet), xmp_packet, True))
    tifffile.imwrite(bio, enc, photometric="minisblack" if grey else "rgb", compression="zlib",
                     compressionargs={"level": 1}, predictor=True, iccprofile=icc, extrasamples=(2,) if alpha else None,
                     software=f"refocus {__version__}", extratags=extratags + [(274, "H", 1, 1, True)],
                     metadata=None, bigtiff=False)
    return tiff_attach_exif(bio.getvalue(), exif)


def write_result(path, linear: np.ndarray, *, photo=None, bits: int | None = None, quality: int = 95,
                 xmp_record: dict | None = None, overwrite: bool = False, to_srgb: bool = False,
                 alpha: np.ndarray | None = None, grey: bool | None = None) -> Path:
    """Write a flattened result (format by extension: .jpg/.jpeg, .png, .tif/.tiff).

    `photo` (a :class:`refocus.imageio.Photo`) gives the profile, EXIF, XMP, grey flag and
    alpha of the source; the pixels are linear light in the photo's working space.
    `bits`: 8 or 16 (JPEG is always 8; default: PNG as the input, TIFF 16).
    """
    path = Path(path)
    kind = output_kind(path)
    if kind not in ("jpeg", "png", "tiff"):
        raise BadInputError(f"{path}: write_result writes .jpg, .png or .tif; use write_layers for {kind}")
    src = getattr(photo, "path", None)
    check_output(path, overwrite=overwrite, inputs=[src])
    linear = np.asarray(linear, np.float32)
    if linear.ndim != 3 or linear.shape[2] != 3:
        raise BadInputError(f"{path}: result must be (H, W, 3) linear RGB, got shape {linear.shape}")
    if bits is None:
        bits = 8 if kind == "jpeg" else 16 if kind == "tiff" else (16 if getattr(photo, "bits", 8) == 16 else 8)
    if bits not in (8, 16):
        raise BadInputError(f"bits: expected 8 or 16, got {bits}")
    if kind == "jpeg":
        bits = 8
    grey = bool(getattr(photo, "grey", False)) if grey is None else grey
    if alpha is None:
        alpha = getattr(photo, "alpha", None)
    if kind == "jpeg" or (grey and alpha is not None and kind == "png"):
        alpha = None if kind == "jpeg" else alpha
    if grey and alpha is not None and kind == "png":
        grey = False                                     # OpenCV writes no grey+alpha PNG
    linear, space, icc = _prepare(linear, photo, to_srgb)
    h, w = linear.shape[:2]
    exif = metadata.patch_exif(getattr(photo, "exif", None), (w, h))
    packet = xmp.build_xmp(xmp_record, getattr(photo, "xmp", None))
    enc = encode_pixels(linear, space, bits, grey, alpha)
    if kind == "jpeg":
        data = jpeg_with_metadata(encode_jpeg(enc, quality), exif=exif, icc=icc,
                                  xmp_segments=xmp.jpeg_xmp_segments(packet))
    elif kind == "png":
        data = png_with_metadata(encode_png(enc), icc=icc, exif=exif, xmp_packet=packet)
    else:
        data = encode_tiff(enc, icc=icc, exif=exif, xmp_packet=packet, grey=grey, alpha=alpha is not None)
    return atomic_write(path, data, overwrite=overwrite, inputs=[src])


def disparity_png(disparity: np.ndarray, *, record: dict | None = None) -> bytes:
    """16-bit grey PNG of a disparity map (value = round(d * 65535), 1 = near)."""
    d = np.asarray(disparity, np.float32)
    if d.ndim == 3:
        d = d[..., 0]
    if d.ndim != 2 or not np.isfinite(d).all():
        raise BadInputError(f"disparity: expected a finite 2-D map, got shape {d.shape}")
    enc = np.round(np.clip(d, 0, 1) * 65535).astype(np.uint16)
    text = {"Description": "refocus disparity map: value/65535 = disparity in [0, 1], 1 = nearest"}
    return png_with_metadata(encode_png(enc), xmp_packet=xmp.build_xmp(record) if record else None,
                             text=text)


def write_disparity_png(path, disparity: np.ndarray, *, overwrite: bool = False, record: dict | None = None,
                        inputs=()) -> Path:
    """Write a disparity map as a 16-bit grey PNG (see :func:`disparity_png`)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise BadInputError(f"{path}: the disparity map is written as PNG; use a .png name")
    check_output(path, overwrite=overwrite, inputs=inputs)
    return atomic_write(path, disparity_png(disparity, record=record), overwrite=overwrite, inputs=inputs)


def write_gdepth_jpeg(path, linear: np.ndarray, disparity: np.ndarray, *, photo=None, quality: int = 95,
                      original: np.ndarray | None = None, near: float = 1.0, far: float = 10.0,
                      xmp_record: dict | None = None, overwrite: bool = False, to_srgb: bool = False) -> Path:
    """A JPEG of the result carrying its depth map in Google's GDepth XMP (RangeInverse).

    The depth PNG holds 255 * (1 - disparity): with disparity = normalised inverse distance
    between `near` and `far`, that is exactly GDepth's RangeInverse value (near = 0, dark),
    the convention of Google Camera's Lens Blur files.  With `original` (the unblurred photo,
    linear), it is stored as GImage:Data so a viewer can refocus again from the sharp image.
    """
    path = Path(path)
    if output_kind(path) != "jpeg":
        raise BadInputError(f"{path}: a GDepth file is a JPEG; use a .jpg name")
    src = getattr(photo, "path", None)
    check_output(path, overwrite=overwrite, inputs=[src])
    if not (0 < near < far):
        raise BadInputError(f"near/far: expected 0 < near < far, got near={near}, far={far}")
    linear, space, icc = _prepare(np.asarray(linear, np.float32), photo, to_srgb)
    h, w = linear.shape[:2]
    d = np.asarray(disparity, np.float32)
    if d.shape[:2] != (h, w):
        raise BadInputError(f"disparity: shape {d.shape[:2]} does not match the image {(h, w)}")
    dn = np.round((1.0 - np.clip(d, 0, 1)) * 255).astype(np.uint8)
    depth_png = encode_png(dn, compression=9)
    image_jpeg = None
    if original is not None:
        orig, _, _ = _prepare(np.asarray(original, np.float32), photo, to_srgb)
        image_jpeg = encode_jpeg(encode_pixels(orig, space, 8, False), quality)
    main, extended = xmp.gdepth_packets(depth_png, near=near, far=far, record=xmp_record,
                                        source_xmp=getattr(photo, "xmp", None), image_jpeg=image_jpeg)
    exif = metadata.patch_exif(getattr(photo, "exif", None), (w, h))
    data = jpeg_with_metadata(encode_jpeg(encode_pixels(linear, space, 8, False), quality), exif=exif, icc=icc,
                              xmp_segments=xmp.jpeg_xmp_segments(main, extended))
    return atomic_write(path, data, overwrite=overwrite, inputs=[src])
