"""Layered files: OpenRaster (.ora), layered TIFF (one page per layer) and Photoshop (.psd).

A layer stack is a list of :class:`Layer`, **top first**: typically the refocused result
(visible), then the original, the disparity map, the blur (CoC) mask and the subject mask
(hidden, so that the stack composites to the result).  Colour layers are linear light in the
photo's working space and are encoded with its curves; data layers (maps) are written as
their values (``round(v * max)``), grey.

* OpenRaster: a zip with ``mimetype`` stored first and uncompressed, ``stack.xml``, one
  PNG per layer (16-bit when ``bits=16``; colour layers carry the ICC profile in iCCP),
  ``mergedimage.png`` and ``Thumbnails/thumbnail.png``.  GIMP, Krita and MyPaint open it.
* Layered TIFF: one page per layer, each named by its PageName tag (GIMP names layers
  from it); the first page is the result with the EXIF, XMP and ICC profile, so ordinary
  viewers show the result.
* PSD: written here (the format is documented by Adobe); 8 or 16 bits, RGB, named layers
  (Pascal name + ``luni`` Unicode name), hidden flag, ICC profile and XMP as image
  resources, channel data ZIP-compressed with prediction (compression 3), composite image
  likewise.  Read back by psd-tools and GIMP in the test suite.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from . import metadata, write, xmp


@dataclass
class Layer:
    """One layer: `data` is (H, W, 3) linear RGB (kind 'colour') or (H, W) values in [0, 1]
    (kind 'data': disparity, masks)."""
    name: str
    data: np.ndarray
    kind: str = "colour"
    visible: bool = True


def _encode_layer(layer: Layer, space, bits: int, grey_photo: bool) -> np.ndarray:
    if layer.kind == "colour":
        return write.encode_pixels(layer.data, space, bits, grey_photo)
    d = np.asarray(layer.data, np.float32)
    if d.ndim == 3:
        d = d[..., 0]
    top = 65535 if bits == 16 else 255
    return np.round(np.clip(d, 0, 1) * top).astype(np.uint16 if bits == 16 else np.uint8)


def _check_layers(path, layers):
    if not layers:
        raise BadInputError(f"{path}: no layers to write")
    shape = None
    for layer in layers:
        a = np.asarray(layer.data)
        if layer.kind not in ("colour", "data"):
            raise BadInputError(f"layer {layer.name!r}: kind must be 'colour' or 'data', got {layer.kind!r}")
        if layer.kind == "colour" and (a.ndim != 3 or a.shape[2] != 3):
            raise BadInputError(f"layer {layer.name!r}: a colour layer is (H, W, 3), got {a.shape}")
        if shape is None:
            shape = a.shape[:2]
        elif a.shape[:2] != shape:
            raise BadInputError(f"layer {layer.name!r}: size {a.shape[:2]} differs from the first layer's {shape}")
    return shape


# -- OpenRaster -----------------------------------------------------------------------------

def encode_ora(encoded: list, layers: list, *, icc=None, thumb_src=None) -> bytes:
    from xml.sax.saxutils import quoteattr   # here: it imports urllib.request (30 ms at start-up)

    import cv2
    h, w = encoded[0].shape[:2]
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), b"image/openraster", compress_type=zipfile.ZIP_STORED)
        entries = []
        for i, (enc, layer) in enumerate(zip(encoded, layers)):
            src = f"data/layer{i:02d}.png"
            png = write.encode_png(enc, compression=3)
            if layer.kind == "colour" and icc:
                png = write.png_with_metadata(png, icc=icc)
            z.writestr(src, png, compress_type=zipfile.ZIP_STORED)
            entries.append(f'    <layer name={quoteattr(layer.name)} src="{src}" x="0" y="0" opacity="1.0" '
                           f'visibility="{"visible" if layer.visible else "hidden"}" '
                           f'composite-op="svg:src-over"/>')
        stack = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                 f'<image version="0.0.5" w="{w}" h="{h}" xres="72" yres="72">\n  <stack>\n'
                 + "\n".join(entries) + "\n  </stack>\n</image>\n")
        z.writestr("stack.xml", stack, compress_type=zipfile.ZIP_DEFLATED)
        merged = thumb_src if thumb_src is not None else encoded[0]
        png = write.encode_png(merged, compression=3)
        z.writestr("mergedimage.png", write.png_with_metadata(png, icc=icc) if icc else png,
                   compress_type=zipfile.ZIP_STORED)
        m8 = merged if merged.dtype == np.uint8 else (merged >> 8).astype(np.uint8)
        scale = 256 / max(h, w)
        if scale < 1:
            m8 = cv2.resize(m8, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        z.writestr("Thumbnails/thumbnail.png", write.encode_png(m8), compress_type=zipfile.ZIP_STORED)
    return bio.getvalue()


# -- layered TIFF ---------------------------------------------------------------------------

def encode_layered_tiff(encoded: list, layers: list, *, icc=None, exif=None, xmp_packet=None) -> bytes:
    import tifffile

    from .._version import __version__
    bio = io.BytesIO()
    # GIMP stacks later pages above earlier ones and drops grey pages from an RGB stack: the
    # first page is the result (what viewers show), the original goes last (what GIMP shows
    # on top), and maps are written as RGB pages
    order = [0] + [i for i in range(1, len(layers)) if layers[i].kind != "colour"] + \
            [i for i in range(1, len(layers)) if layers[i].kind == "colour"]
    encoded = [encoded[i] for i in order]
    layers = [layers[i] for i in order]
    colour_stack = encoded[0].ndim == 3
    with tifffile.TiffWriter(bio, bigtiff=False) as tw:
        for i, (enc, layer) in enumerate(zip(encoded, layers)):
            if enc.ndim == 2 and colour_stack:
                enc = np.repeat(enc[..., None], 3, axis=2)
            grey = enc.ndim == 2
            extratags = [(285, "s", 0, layer.name, True)]
            if i == 0:
                extratags += write._ifd0_text_tags(exif)
                if xmp_packet:
                    extratags.append((700, "B", len(xmp_packet), xmp_packet, True))
            tw.write(enc, photometric="minisblack" if grey else "rgb", compression="zlib",
                     compressionargs={"level": 1}, predictor=True,
                     iccprofile=icc if (layer.kind == "colour" and not grey) else None,
                     software=f"refocus {__version__}", extratags=extratags, metadata=None,
                     subfiletype=0 if i == 0 else 2, contiguous=False)
    return write.tiff_attach_exif(bio.getvalue(), exif)


# -- PSD ------------------------------------------------------------------------------------

def _zip_pred(plane: np.ndarray) -> bytes:
    """ZIP with prediction: per-row differences (big-endian), deflated."""
    if plane.dtype == np.uint16:
        p = plane.astype(np.uint16)
        d = np.empty_like(p)
        d[:, 0] = p[:, 0]
        d[:, 1:] = p[:, 1:] - p[:, :-1]                  # wraps modulo 2^16
        raw = d.astype(">u2").tobytes()
    else:
        p = plane.astype(np.uint8)
        d = np.empty_like(p)
        d[:, 0] = p[:, 0]
        d[:, 1:] = p[:, 1:] - p[:, :-1]
        raw = d.tobytes()
    return zlib.compress(raw, 1)             # level 1: 3-5x faster than 6, a few % larger


def _pascal(name: str, pad: int) -> bytes:
    b = name.encode("latin-1", "replace")[:255]
    s = bytes([len(b)]) + b
    return s + b"\x00" * ((-len(s)) % pad)


def _block(key: bytes, data: bytes) -> bytes:
    data += b"\x00" * ((-len(data)) % 4)
    return b"8BIM" + key + struct.pack(">I", len(data)) + data


def _resource(rid: int, data: bytes) -> bytes:
    out = b"8BIM" + struct.pack(">H", rid) + b"\x00\x00" + struct.pack(">I", len(data)) + data
    return out + (b"\x00" if len(data) % 2 else b"")


def encode_psd(encoded: list, layers: list, *, bits: int, icc=None, xmp_packet=None, alpha=None) -> bytes:
    h, w = encoded[0].shape[:2]
    if max(h, w) > 30000:
        raise BadInputError(f"PSD is limited to 30000 pixels per side; the image is {w}x{h} (use .tif or .ora)")
    top = 65535 if bits == 16 else 255
    dtype = np.uint16 if bits == 16 else np.uint8
    full = np.full((h, w), top, dtype)
    a_enc = None if alpha is None else np.round(np.clip(alpha, 0, 1) * top).astype(dtype)

    def planes(enc, with_alpha):
        rgb = [enc] * 3 if enc.ndim == 2 else [enc[..., c] for c in range(3)]
        return [(-1, a_enc if (with_alpha and a_enc is not None) else full)] + list(zip((0, 1, 2), rgb))

    records, chdata = [], []
    # PSD lists layers bottom to top
    for idx in range(len(layers) - 1, -1, -1):
        enc, layer = encoded[idx], layers[idx]
        chans = planes(enc, layer.kind == "colour")
        datas = [struct.pack(">H", 3) + _zip_pred(np.ascontiguousarray(p)) for _, p in chans]
        rec = struct.pack(">iiiiH", 0, 0, h, w, len(chans))
        for (cid, _), d in zip(chans, datas):
            rec += struct.pack(">hI", cid, len(d))
        flags = 0 if layer.visible else 2
        rec += b"8BIMnorm" + struct.pack(">BBBB", 255, 0, flags, 0)
        name = layer.name
        uni = struct.pack(">I", len(name)) + name.encode("utf-16-be")
        extra = struct.pack(">I", 0)                               # no layer mask
        extra += struct.pack(">I", 0)                              # no blending ranges
        extra += _pascal(name, 4)
        extra += _block(b"luni", uni)
        rec += struct.pack(">I", len(extra)) + extra
        records.append(rec)
        chdata.append(b"".join(datas))
    info = struct.pack(">h", len(layers)) + b"".join(records) + b"".join(chdata)
    info += b"\x00" * (len(info) % 2)
    layer_info = struct.pack(">I", len(info)) + info
    lm = layer_info + struct.pack(">I", 0)                         # no global layer mask
    out = bytearray()
    out += b"8BPS" + struct.pack(">H", 1) + b"\x00" * 6
    out += struct.pack(">HIIHH", 3, h, w, bits, 3)
    out += struct.pack(">I", 0)                                    # colour mode data
    res = b""
    if icc:
        res += _resource(1039, icc)
    if xmp_packet:
        res += _resource(1060, xmp_packet)
    out += struct.pack(">I", len(res)) + res
    out += struct.pack(">I", len(lm)) + lm
    # composite image (the top layer): compression 3, then each channel's data in turn.
    # psd-tools and GIMP read it; raw (0) would be 3x larger at 16 bits.
    comp = encoded[0]
    rgb = [comp] * 3 if comp.ndim == 2 else [comp[..., c] for c in range(3)]
    out += struct.pack(">H", 3) + _zip_pred(np.ascontiguousarray(np.concatenate(rgb, axis=0)))
    return bytes(out)


# -- API --------------------------------------------------------------------------------------

def write_layers(path, layers: list, *, photo=None, bits: int = 16, overwrite: bool = False,
                 xmp_record: dict | None = None, to_srgb: bool = False) -> Path:
    """Write a layer stack (top first) as .ora, .psd or a layered .tif (by extension)."""
    path = Path(path)
    kind = write.output_kind(path, layers=path.suffix.lower() in (".tif", ".tiff"))
    if kind not in ("ora", "psd", "layered-tiff"):
        raise BadInputError(f"{path}: layered files are .ora, .psd or .tif")
    if bits not in (8, 16):
        raise BadInputError(f"bits: expected 8 or 16, got {bits}")
    src = getattr(photo, "path", None)
    write.check_output(path, overwrite=overwrite, inputs=[src])
    h, w = _check_layers(path, layers)
    space, icc = None, getattr(photo, "icc", None)
    conv = []
    for layer in layers:
        if layer.kind == "colour":
            lin, space, icc = write._prepare(np.asarray(layer.data, np.float32), photo, to_srgb)
            layer = Layer(layer.name, lin, layer.kind, layer.visible)
        conv.append(layer)
    layers = conv
    if space is None:
        space, icc = write._prepare(np.zeros((1, 1, 3), np.float32), photo, to_srgb)[1:]
    grey = bool(getattr(photo, "grey", False))
    encoded = [_encode_layer(layer, space, bits, grey) for layer in layers]
    packet = xmp.build_xmp(xmp_record, getattr(photo, "xmp", None))
    exif = metadata.patch_exif(getattr(photo, "exif", None), (w, h))
    if kind == "ora":
        data = encode_ora(encoded, layers, icc=icc)
    elif kind == "layered-tiff":
        data = encode_layered_tiff(encoded, layers, icc=icc, exif=exif, xmp_packet=packet)
    else:
        data = encode_psd(encoded, layers, bits=bits, icc=icc, xmp_packet=packet,
                          alpha=getattr(photo, "alpha", None))
    return write.atomic_write(path, data, overwrite=overwrite, inputs=[src])


def result_layers(result, original, disparity, coc=None, *, max_coc: float | None = None,
                  subject_mask=None) -> list:
    """The standard stack: result (visible), original, disparity, |CoC| mask, subject mask."""
    stack = [Layer("refocused", result, "colour", True), Layer("original", original, "colour", False),
             Layer("disparity", disparity, "data", False)]
    if coc is not None:
        c = np.abs(np.asarray(coc, np.float32))
        m = float(max_coc) if max_coc else float(c.max())
        stack.append(Layer("blur (CoC)", c / m if m > 0 else np.zeros_like(c), "data", False))
    if subject_mask is not None:
        stack.append(Layer("subject mask", subject_mask, "data", False))
    return stack
