"""The refocus side of the GIMP bridge: ``python -m refocus.plugin_gimp.worker REQUEST_DIR``.

Reads ``request.json`` and raw float32 arrays from REQUEST_DIR (see
:mod:`refocus.plugin_gimp.bridge` for the protocol), runs :func:`refocus.pipeline.refocus_image`
(mode ``refocus``) or the depth estimate alone (mode ``depth``), and writes the result arrays
and ``response.json`` there.  Progress goes to stdout as ``PROGRESS stage fraction`` lines;
everything else the core prints goes to stderr.  Exit status: 0 success, 2 refocus error,
3 bad request, 1 unexpected failure (the message is still in ``response.json``).
No pickle: JSON and raw bytes only.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

from .bridge import PROTOCOL

MODES = ("refocus", "depth")
OUTPUTS = ("result", "disparity", "blur_mask")
MAX_PIXELS = 400_000_000


class RequestError(Exception):
    """The request folder is malformed (a bug or a version mismatch, not the user's photo)."""


def _load_array(folder: str, name: str, spec) -> np.ndarray:
    if not isinstance(spec, dict):
        raise RequestError(f"array {name}: expected an object with file, shape, dtype")
    fname = spec.get("file")
    if not isinstance(fname, str) or not fname or os.path.basename(fname) != fname or fname.startswith("."):
        raise RequestError(f"array {name}: bad file name {fname!r} (a plain name inside the request folder)")
    if spec.get("dtype") != "float32":
        raise RequestError(f"array {name}: dtype {spec.get('dtype')!r} is not supported; use float32")
    shape = spec.get("shape")
    if (not isinstance(shape, list) or not 2 <= len(shape) <= 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise RequestError(f"array {name}: shape {shape!r} is not [H, W] or [H, W, C] of positive integers")
    n = int(np.prod(shape))
    if n > MAX_PIXELS * 4:
        raise RequestError(f"array {name}: {n} values is more than refocus accepts")
    path = os.path.join(folder, fname)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise RequestError(f"array {name}: file {fname} is missing from the request folder") from None
    if size != n * 4:
        raise RequestError(f"array {name}: {fname} has {size} bytes, expected {n * 4} for float32 {shape}")
    a = np.fromfile(path, dtype="<f4", count=n).reshape(shape)
    if not np.isfinite(a).all():
        raise RequestError(f"array {name}: contains NaN or infinite values")
    return a


def fill_under_transparency(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour of fully transparent pixels replaced by that of the nearest visible ones.

    GIMP keeps (or zeroes) the colour under alpha 0; blurred as it is, it would bleed into
    the visible pixels next to it (dark fringes along a cut-out).  Normalised convolution at
    doubling Gaussian widths fills each hole from the nearest opaque colours.
    """
    import cv2
    hole = alpha <= 0
    if not hole.any() or hole.all():
        return colour
    w = (~hole).astype(np.float32)
    c = colour if colour.ndim == 3 else colour[..., None]
    out = c.copy()
    todo = hole.copy()
    sigma = 1.0
    while todo.any() and sigma < 4 * max(alpha.shape):
        den = cv2.GaussianBlur(w, (0, 0), sigma)
        num = cv2.GaussianBlur(c * w[..., None], (0, 0), sigma)
        if num.ndim == 2:
            num = num[..., None]
        ok = todo & (den > 1e-4)
        out[ok] = num[ok] / den[ok][:, None]
        todo &= ~ok
        sigma *= 2
    return out if colour.ndim == 3 else out[..., 0]


def _save_array(folder: str, name: str, a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    fname = f"out_{name}.f32"
    a.tofile(os.path.join(folder, fname))
    return {"file": fname, "shape": list(a.shape), "dtype": "float32"}


def _settings(req: dict):
    from .. import params, presets
    values = req.get("settings") or {}
    if not isinstance(values, dict):
        raise RequestError("settings: expected an object of parameter values")
    # "" means "not set" (GIMP string arguments cannot be None)
    values = {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in values.items()}
    preset = req.get("preset")
    if preset:
        return presets.get(preset).resolve(values)
    return params.resolve(values)


EMBEDDED_DEPTH_TYPES = (".jpg", ".jpeg", ".heic", ".heif")      # where cameras store depth


def same_picture(layer: np.ndarray, photo: np.ndarray) -> bool:
    """Whether a layer (linear, (H, W[, 3])) still shows the photo's pixels (linear, same size).

    Compared as 8-bit sRGB on copies of at most 512 pixels: the mean difference must stay
    under 1/255 and at most 0.1 % of the pixels may differ by more than 4/255, so an
    edited, retouched or different layer is not taken for the file it was opened from.
    """
    import cv2
    from ..color import encode_srgb8
    a, b = np.asarray(layer, np.float32), np.asarray(photo, np.float32)
    if a.shape[:2] != b.shape[:2]:
        return False
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2 and b.ndim == 3:
        b = b[..., :3].mean(axis=2)
    elif a.ndim == 3 and b.ndim == 2:
        a = a[..., :3].mean(axis=2)
    else:
        a, b = a[..., :3] if a.ndim == 3 else a, b[..., :3] if b.ndim == 3 else b
    H, W = a.shape[:2]
    f = max(1.0, max(H, W) / 512)
    size = (max(1, round(W / f)), max(1, round(H / f)))
    small = [encode_srgb8(cv2.resize(np.ascontiguousarray(x), size, interpolation=cv2.INTER_AREA))
             for x in (a, b)]
    diff = np.abs(small[0].astype(np.int16) - small[1].astype(np.int16))
    return float(diff.mean()) < 1.0 and float((diff > 4).mean()) <= 0.001


def _photo_for(req: dict, shape, layer=None):
    """The photo file the image came from, when it is the same picture (embedded depth, EXIF).

    Only JPEG/HEIC files are read (the formats that carry depth; a raw file would be
    developed again for nothing), only when their size matches the layer's, and (given
    the layer's pixels) only when the layer still shows the file's pixels
    (:func:`same_picture`): an edited layer must not get the file's depth, nor its stored
    unblurred original in place of the edit.
    """
    src = req.get("source_file")
    if not src or not os.path.isfile(src) or not src.lower().endswith(EMBEDDED_DEPTH_TYPES):
        return None
    try:
        from PIL import Image
        with Image.open(src) as im:                      # header only
            if sorted(im.size) != sorted((shape[1], shape[0])):
                return None
    except Exception:
        pass                                             # e.g. HEIC without pillow-heif: let read_photo try
    try:
        from ..io import read_photo
        photo = read_photo(src)
    except Exception:                       # the file may have changed or be unreadable: not needed
        return None
    if tuple(photo.linear.shape[:2]) != tuple(shape[:2]):
        return None
    if layer is not None and not same_picture(layer, photo.linear):
        return None
    return photo


# EXIF tags (exiv2 names, as GIMP's metadata serializes them) that refocus reads for a
# virtual aperture, with their TIFF tag number and kind: r = rational
_IFD0_TAGS = {"Exif.Image.Make": (0x010F, str), "Exif.Image.Model": (0x0110, str),
              "Exif.Image.Orientation": (0x0112, int)}
_EXIF_TAGS = {"Exif.Photo.FNumber": (0x829D, "r"), "Exif.Photo.FocalLength": (0x920A, "r"),
              "Exif.Photo.FocalLengthIn35mmFilm": (0xA405, int),
              "Exif.Photo.FocalPlaneXResolution": (0xA20E, "r"),
              "Exif.Photo.FocalPlaneYResolution": (0xA20F, "r"),
              "Exif.Photo.FocalPlaneResolutionUnit": (0xA210, int),
              "Exif.Photo.PixelXDimension": (0xA002, int), "Exif.Photo.PixelYDimension": (0xA003, int),
              "Exif.Photo.LensModel": (0xA434, str), "Exif.Photo.LensMake": (0xA433, str),
              "Exif.Photo.SubjectDistance": (0x9206, "r"), "Exif.Photo.ExposureTime": (0x829A, "r"),
              "Exif.Photo.ISOSpeedRatings": (0x8827, int), "Exif.Photo.DateTimeOriginal": (0x9003, str)}


def camera_from_gimp_metadata(text: str, size):
    """:class:`refocus.io.CameraInfo` from GIMP's serialized metadata (``GimpMetadata.serialize``).

    The lens fields are rebuilt as an EXIF block and read by :func:`refocus.io.metadata.parse_exif`,
    the same reader as for files.  The text is matched, not parsed as XML: GIMP writes
    characters (IPTC escapes) that XML 1.0 forbids.  None when nothing useful is there.
    """
    import html
    import re
    from fractions import Fraction

    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    from ..io.metadata import parse_exif
    tags = {m.group(1): html.unescape(m.group(2)).strip()
            for m in re.finditer(r'<tag name="(Exif\.[A-Za-z0-9.]+)"[^>]*>([^<]*)</tag>', text or "")}
    if "Exif.Photo.FocalLength" not in tags:
        return None
    ex = Image.Exif()
    sub = ex.get_ifd(0x8769)
    for table, target in ((_IFD0_TAGS, ex), (_EXIF_TAGS, sub)):
        for name, (tag, kind) in table.items():
            v = tags.get(name)
            if not v:
                continue
            try:
                if kind == "r":
                    f = Fraction(v.split()[0])
                    target[tag] = IFDRational(f.numerator, f.denominator)
                else:
                    target[tag] = kind(v.split()[0]) if kind is int else v
            except (ValueError, ZeroDivisionError):
                continue
    cam = parse_exif(ex.tobytes(), image_size=(size[1], size[0]))
    return cam if cam.focal_length_mm else None


def handle(folder: str, *, progress=None) -> dict:
    """Process one request folder; writes the arrays and ``response.json``; returns the response.

    Raises :class:`RequestError` for a malformed request and the core's errors for bad input;
    :func:`main` turns both into an error response.
    """
    progress = progress or (lambda stage, fraction: None)
    try:
        with open(os.path.join(folder, "request.json"), encoding="utf-8") as f:
            req = json.load(f)
    except FileNotFoundError:
        raise RequestError(f"{folder}: no request.json") from None
    except ValueError as e:
        raise RequestError(f"request.json is not valid JSON: {e}") from None
    if not isinstance(req, dict):
        raise RequestError("request.json: expected an object")
    if req.get("protocol") != PROTOCOL:
        raise RequestError(f"request protocol {req.get('protocol')!r}; this refocus speaks {PROTOCOL}; "
                           "run `refocus gimp install` again so the plug-in matches")
    mode = req.get("mode", "refocus")
    if mode not in MODES:
        raise RequestError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    specs = req.get("arrays") or {}
    if not isinstance(specs, dict) or "image" not in specs:
        raise RequestError("arrays: the request has no image")
    unknown = set(specs) - {"image", "mask", "depth"}
    if unknown:
        raise RequestError(f"arrays: unknown {', '.join(sorted(unknown))} (image, mask, depth)")
    image = _load_array(folder, "image", specs["image"])
    if image.ndim == 2:
        image = image[..., None]
    H, W, C = image.shape
    if C not in (1, 2, 3, 4):
        raise RequestError(f"image: {C} channels; expected 1 (Y), 2 (YA), 3 (RGB) or 4 (RGBA)")
    alpha = image[..., -1].copy() if C in (2, 4) else None
    colour = image[..., :3] if C >= 3 else image[..., 0]
    if alpha is not None:
        colour = fill_under_transparency(colour, alpha)
    aux = {}
    for name in ("mask", "depth"):
        if name in specs:
            a = _load_array(folder, name, specs[name])
            if a.ndim == 3:
                if a.shape[2] != 1:
                    raise RequestError(f"{name}: expected one channel, got {a.shape[2]}")
                a = a[..., 0]
            if a.shape != (H, W):
                raise RequestError(f"{name}: shape {a.shape} does not match the image ({H}, {W})")
            a = np.clip(a, 0.0, 1.0)
            if name == "mask" and not a.any():
                continue                   # a selection that misses this layer marks no subject
            aux[name] = a
    if "depth" in aux and req.get("depth_kind", "disparity") == "depth":
        aux["depth"] = 1.0 - aux["depth"]
    outputs = req.get("outputs") or ["result"]
    if not isinstance(outputs, list) or not set(outputs) <= set(OUTPUTS):
        raise RequestError(f"outputs: {outputs!r}; expected a list of {', '.join(OUTPUTS)}")
    settings = _settings(req)
    device = str(req.get("device") or "auto")
    photo = _photo_for(req, (H, W), colour) if "depth" not in aux else None
    camera = getattr(photo, "camera", None)
    if camera is None and req.get("metadata"):
        camera = camera_from_gimp_metadata(str(req["metadata"]), (H, W))
    resp = {"ok": True, "protocol": PROTOCOL, "mode": mode, "arrays": {}}
    if mode == "depth":
        from ..depth import estimate_depth
        progress("depth", 0.0)
        src = photo if photo is not None else (colour if colour.ndim == 3 else np.repeat(colour[..., None], 3, 2))
        res = estimate_depth(src, source=settings.depth, model=settings.model, device=device,
                             subject_mask=aux.get("mask"))
        progress("depth", 1.0)
        resp["arrays"]["disparity"] = _save_array(folder, "disparity", res.disparity[..., None])
        resp.update(depth_source=f"{res.source} ({res.detail})" if res.detail else res.source,
                    notes=[f"depth: {res.source} ({res.detail})" if res.detail else f"depth: {res.source}"],
                    timings={k: round(float(v), 3) for k, v in (res.timings or {}).items()})
    else:
        from ..pipeline import refocus_image
        res = refocus_image(colour, settings, disparity=aux.get("depth"), subject_mask=aux.get("mask"),
                            photo=photo, camera=camera, device=device,
                            progress=progress)
        if "depth" in aux:
            res.depth_source = "layer"
        out = np.asarray(res.linear, np.float32)
        if out.ndim == 2:
            out = out[..., None]
        if out.shape[2] != (3 if C >= 3 else 1):     # grey in, grey out
            out = out.mean(axis=2, keepdims=True) if C < 3 else np.repeat(out[..., :1], 3, 2)
        if alpha is not None:
            out = np.concatenate([out, alpha[..., None]], axis=2)
        if "result" in outputs:
            resp["arrays"]["result"] = _save_array(folder, "result", out)
        if "disparity" in outputs:
            resp["arrays"]["disparity"] = _save_array(folder, "disparity", res.disparity[..., None])
        if "blur_mask" in outputs:
            resp["arrays"]["blur_mask"] = _save_array(folder, "blur_mask", res.blur_mask[..., None])
        resp.update(depth_source=res.depth_source, notes=list(res.notes), K=float(res.K),
                    focus={"how": res.focus.how, "disparity": float(res.focus.disparity)},
                    timings={k: round(float(v), 3) for k, v in res.timings.items()})
    _write_response(folder, resp)
    return resp


def _write_response(folder: str, resp: dict) -> None:
    tmp = os.path.join(folder, "response.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(resp, f)
    os.replace(tmp, os.path.join(folder, "response.json"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m refocus.plugin_gimp.worker REQUEST_DIR", file=sys.stderr)
        return 3
    folder = argv[0]
    from refocus.runtime import own_process
    own_process()
    if not os.path.isdir(folder):
        print(f"refocus worker: {folder} is not a folder", file=sys.stderr)
        return 3
    out = sys.stdout
    sys.stdout = sys.stderr               # only progress lines go to the real stdout

    def progress(stage, fraction):
        out.write(f"PROGRESS {stage} {float(fraction):.3f}\n")
        out.flush()

    from ..errors import RefocusError
    try:
        handle(folder, progress=progress)
        return 0
    except RequestError as e:
        rc, kind, msg = 3, "RequestError", str(e)
    except RefocusError as e:
        rc, kind, msg = 2, type(e).__name__, str(e)
    except MemoryError:
        rc, kind, msg = 1, "MemoryError", "out of memory; try a smaller image or layer"
    except Exception as e:                                     # a bug: keep the traceback in the log
        traceback.print_exc()
        rc, kind, msg = 1, type(e).__name__, f"internal error in refocus: {type(e).__name__}: {e}"
    print(f"refocus worker: {kind}: {msg}", file=sys.stderr)
    try:
        _write_response(folder, {"ok": False, "protocol": PROTOCOL, "error": {"type": kind, "message": msg}})
    except OSError:
        pass
    return rc


if __name__ == "__main__":
    sys.exit(main())
