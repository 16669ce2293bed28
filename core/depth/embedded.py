"""Depth maps that cameras store inside photos.

:func:`read_embedded_depth` finds, decodes and converts them to refocus' convention
(disparity in [0, 1], 1 = nearest, at the photo's displayed size and orientation):

===================================  =====================================================
source                               where the map is
===================================  =====================================================
Google Dynamic Depth 1.0 (Pixel)     JPEG/PNG items appended after the primary JPEG, located
                                     through the XMP ``Device:Container`` directory
Google GDepth (Camera Lens Blur,     base64 PNG/JPEG in ``GDepth:Data`` (extended XMP); the
early Portrait mode)                 unblurred original in ``GImage:Data``
Intel/Google XDM 1.0                 base64 PNG in ``Device:Cameras[0]/Camera:DepthMap``
Apple portrait JPEG (MPO)            grey JPEG in an MPF secondary image tagged with the
                                     ``apdi`` XMP namespace (disparity or depth)
Apple portrait HEIC                  HEIF depth auxiliary image (needs ``pillow-heif``:
                                     ``pip install 'refocus[heic]'``)
===================================  =====================================================

Conversion.  Range-coded maps (GDepth, XDM, Dynamic Depth) hold ``dn`` in [0, 1] and decode
to a distance ``z`` with ``RangeLinear: z = near + dn (far - near)`` or ``RangeInverse:
z = far near / (far - dn (far - near))``; disparity is ``1/z`` (for RangeInverse that is
linear in ``dn``: near -> dn = 0).  Apple maps say in their metadata whether they hold
disparity (1/m) or depth (m).  Disparity is then normalised per image to [0, 1] between its
0.5th and 99.5th percentiles (robust to a few wild pixels), unknown pixels (z <= 0) are
filled from their neighbours, and the map is resized to the photo (bilinear when enlarging,
area-averaged when reducing) and turned by the photo's EXIF orientation, exactly as
:func:`refocus.imageio.read_photo` turns the pixels.  ``kind`` says what was found and done.
"""
from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, UnsupportedFormatError
from . import xmp as X

NS_GDEPTH = "http://ns.google.com/photos/1.0/depthmap/"
NS_GIMAGE = "http://ns.google.com/photos/1.0/image/"
NS_GFOCUS = "http://ns.google.com/photos/1.0/focus/"
NS_XDM_DEVICE = "http://ns.xdm.org/photos/1.0/device/"
NS_XDM_CAMERA = "http://ns.xdm.org/photos/1.0/camera/"
NS_XDM_DEPTH = "http://ns.xdm.org/photos/1.0/depthmap/"
NS_DD_DEVICE = "http://ns.google.com/photos/dd/1.0/device/"
NS_DD_CONTAINER = "http://ns.google.com/photos/dd/1.0/container/"
NS_DD_ITEM = "http://ns.google.com/photos/dd/1.0/item/"
NS_DD_CAMERA = "http://ns.google.com/photos/dd/1.0/camera/"
NS_DD_DEPTH = "http://ns.google.com/photos/dd/1.0/depthmap/"
NS_DD_IMAGE = "http://ns.google.com/photos/dd/1.0/image/"
NS_APDI = "http://ns.apple.com/pixeldatainfo/1.0/"
NS_APPLE_DEPTH = "http://ns.apple.com/depthData/1.0/"

ROBUST_PCT = (0.5, 99.5)
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}


@dataclass
class EmbeddedDepth:
    """A depth map found inside a photo, converted to refocus' disparity convention.

    Attributes
    ----------
    disparity : float32 (H, W) in [0, 1], 1 = nearest, at the photo's displayed size.
    kind : what was found and how it was converted, e.g. ``"GDepth RangeInverse (XMP); ..."``.
    near, far : the distances the file declares for its map (its own units), when known.
    original : float32 linear RGB (H, W, 3) of the unblurred original the file keeps
        (Google ``GImage:Data``, Dynamic Depth ``Original`` item), displayed orientation, or None.
    original_bytes : the encoded original (JPEG) as stored, or None.
    focus_disparity : the focal plane the camera rendered with (Google ``GFocus:FocalDistance``)
        on the same [0, 1] scale as `disparity`, or None.
    units : the distance units the file declares (``"Meters"``, ``"Diopters"``, ...), or None.
    map_size : (width, height) of the map as stored in the file.
    """
    disparity: np.ndarray
    kind: str
    near: float | None = None
    far: float | None = None
    original: np.ndarray | None = None
    original_bytes: bytes | None = None
    focus_disparity: float | None = None
    units: str | None = None
    map_size: tuple | None = None


# -- public entry ----------------------------------------------------------------------------


def read_embedded_depth(path) -> EmbeddedDepth | None:
    """Return the depth map stored in the photo at `path`, or None when it carries none.

    Raises :class:`~refocus.errors.BadInputError` when depth metadata is present but damaged,
    and :class:`~refocus.errors.UnsupportedFormatError` for a HEIC file when ``pillow-heif``
    is not installed.

    >>> from refocus.depth.embedded import read_embedded_depth
    >>> emb = read_embedded_depth("portrait.jpg")                       # doctest: +SKIP
    >>> emb.kind, emb.disparity.shape                                    # doctest: +SKIP
    ('Apple MPF disparity; ...', (4032, 3024))
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder, not a photo")
    with open(path, "rb") as f:
        head = f.read(32)
    if X.is_jpeg(head):
        return _read_jpeg(path, path.read_bytes())
    if _is_heif(head):
        return _read_heif(path)
    return None


def _is_heif(head: bytes) -> bool:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(len(head), 32), 4)}
    return bool(brands & HEIF_BRANDS)


# -- shared conversion -----------------------------------------------------------------------


def _bad(path, what: str, fix: str = "") -> BadInputError:
    fix = fix or ("the photo's depth metadata is damaged; use a depth model or a depth file for "
                  "this photo instead")
    return BadInputError(f"{path}: {what}; {fix}")


def _b64(text: str | None, path, field: str) -> bytes:
    if not text:
        raise _bad(path, f"{field} is empty")
    s = "".join(text.split())
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _bad(path, f"{field} is not valid base64 ({e})") from None


def _decode_image(buf: bytes, path, what: str) -> np.ndarray:
    """Encoded PNG/JPEG bytes -> 2-D array (first channel of colour maps), dtype kept."""
    import cv2
    arr = None
    if buf[:3] == b"\xff\xd8\xff" or buf[:8] == b"\x89PNG\r\n\x1a\n":
        arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is not None and arr.ndim == 3 and arr.shape[2] >= 3:
            arr = arr[..., 2]                                   # OpenCV gives BGR(A): take R
    if arr is None:
        try:
            from PIL import Image
            im = Image.open(io.BytesIO(buf))
            im.load()
            arr = np.asarray(im)
        except Exception as e:
            raise _bad(path, f"{what} cannot be decoded as an image ({type(e).__name__}: {e})") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise _bad(path, f"{what} decodes to an array of shape {arr.shape}, expected a 2-D map")
    return arr


def _unit(arr: np.ndarray) -> np.ndarray:
    """Integer samples -> [0, 1] float64 (value / max of the type); floats unchanged."""
    if arr.dtype.kind in "ui":
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float64)


def decode_range(dn: np.ndarray, fmt: str, near: float, far: float) -> np.ndarray:
    """GDepth / XDM / Dynamic Depth range decoding: normalised ``dn`` in [0, 1] -> distance."""
    if fmt == "RangeLinear":
        return near + dn * (far - near)
    if fmt == "RangeInverse":
        return far * near / (far - dn * (far - near))
    raise ValueError(fmt)


def _range_params(path, fmt, near, far, src: str):
    fmt = (fmt or "RangeInverse").strip()
    if fmt not in ("RangeInverse", "RangeLinear"):
        raise _bad(path, f"{src}:Format is {fmt!r}; expected RangeInverse or RangeLinear")
    try:
        n, f = float(near), float(far)
    except (TypeError, ValueError):
        raise _bad(path, f"{src}:Near/{src}:Far missing or not numbers (Near={near!r}, Far={far!r})") from None
    if not (np.isfinite(n) and np.isfinite(f)) or f <= n or n < 0 or (fmt == "RangeInverse" and n <= 0):
        raise _bad(path, f"{src}:Near={near} and {src}:Far={far} are not a valid range for {fmt} "
                         f"(need 0 {'<' if fmt == 'RangeInverse' else '<='} Near < Far)")
    return fmt, n, f


def _fill_invalid(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill pixels where `valid` is False from their neighbours (push-pull over a pyramid)."""
    import cv2
    if valid.all():
        return d
    levels = []
    v = valid.astype(np.float32)
    x = np.where(valid, d, 0).astype(np.float32)
    while True:
        levels.append((x, v))
        if min(x.shape) <= 2 or v.min() > 0:
            break
        h, w = x.shape
        nh, nw = max(1, (h + 1) // 2), max(1, (w + 1) // 2)
        xs = cv2.resize(x * v, (nw, nh), interpolation=cv2.INTER_AREA)
        vs = cv2.resize(v, (nw, nh), interpolation=cv2.INTER_AREA)
        x = np.where(vs > 0, xs / np.maximum(vs, 1e-12), 0).astype(np.float32)
        v = (vs > 0).astype(np.float32)
    coarse, cv_ = levels[-1]
    if cv_.min() == 0:                                  # nothing valid at all at the top
        coarse = np.where(cv_ > 0, coarse, float(d[valid].mean()) if valid.any() else 0.0).astype(np.float32)
    for x, v in reversed(levels[:-1]):
        up = cv2.resize(coarse, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR)
        coarse = np.where(v > 0, x, up).astype(np.float32)
    return coarse


def _normalise(disp: np.ndarray, valid: np.ndarray):
    """Robust [0, 1] normalisation of a disparity map; returns (map, lo, hi, note)."""
    vals = disp[valid]
    if vals.size == 0:
        return np.full(disp.shape, 0.5, np.float32), 0.0, 0.0, "no valid pixel: flat 0.5"
    lo, hi = np.percentile(vals, ROBUST_PCT)
    if not hi > lo:
        lo, hi = float(vals.min()), float(vals.max())
    if not hi > lo:
        return np.full(disp.shape, 0.5, np.float32), float(lo), float(hi), "constant map: flat 0.5"
    d = np.clip((disp - lo) / (hi - lo), 0.0, 1.0)
    d = _fill_invalid(d.astype(np.float32), valid)
    return d.astype(np.float32), float(lo), float(hi), \
        f"normalised between the {ROBUST_PCT[0]:g}th and {ROBUST_PCT[1]:g}th percentiles"


def _to_photo(d: np.ndarray, stored_size, orientation: int) -> np.ndarray:
    """Resize a map to the stored photo size (w, h) and turn it like the photo."""
    import cv2

    from ..imageio import apply_orientation
    W, H = stored_size
    if d.shape != (H, W):
        interp = cv2.INTER_AREA if (d.shape[0] > H and d.shape[1] > W) else cv2.INTER_LINEAR
        d = cv2.resize(d, (W, H), interpolation=interp)
    d = apply_orientation(d, orientation)
    return np.ascontiguousarray(np.clip(d, 0.0, 1.0), dtype=np.float32)


def _decode_original(buf: bytes, stored_size, orientation: int, path, what: str) -> np.ndarray:
    import cv2

    from ..color import decode_srgb
    from ..imageio import apply_orientation
    arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        raise _bad(path, f"{what} (the unblurred original) cannot be decoded")
    W, H = stored_size
    if arr.shape[:2] != (H, W):
        arr = cv2.resize(arr, (W, H), interpolation=cv2.INTER_AREA if arr.shape[0] > H else cv2.INTER_LINEAR)
    rgb = np.ascontiguousarray(arr[..., ::-1])
    return np.ascontiguousarray(apply_orientation(decode_srgb(rgb), orientation))


def _from_distance(z: np.ndarray, path, what: str, *, diopters: bool = False):
    """Distance map -> (disparity, valid mask)."""
    z = np.asarray(z, np.float64)
    if diopters:                                        # already inverse distance
        valid = np.isfinite(z) & (z > 0)
        return np.where(valid, z, 0.0), valid
    valid = np.isfinite(z) & (z > 0)
    if not valid.any():
        raise _bad(path, f"{what} holds no positive distance")
    with np.errstate(divide="ignore"):
        disp = np.where(valid, 1.0 / np.where(valid, z, 1.0), 0.0)
    return disp, valid


def _finish(path, disp, valid, photo, kind: str, **kw) -> EmbeddedDepth:
    stored_size, orientation = photo
    map_size = (disp.shape[1], disp.shape[0])
    d, lo, hi, note = _normalise(disp, valid)
    focus = kw.pop("focus_distance", None)
    fd = None
    if focus is not None and focus > 0 and hi > lo:
        fd = float(np.clip((1.0 / focus - lo) / (hi - lo), 0.0, 1.0))
    holes = int((~valid).sum())
    hole_note = f"; {holes} unknown px filled" if holes else ""
    d = _to_photo(d, stored_size, orientation)
    return EmbeddedDepth(disparity=d, kind=f"{kind}; {note}{hole_note}", focus_disparity=fd,
                         map_size=map_size, **kw)


# -- JPEG ------------------------------------------------------------------------------------


def _photo_geometry(path, data: bytes, lay: X.JpegLayout):
    """(stored (w, h), EXIF orientation) of the primary image, read as read_photo reads them."""
    from PIL import Image
    try:
        im = Image.open(io.BytesIO(data))
        size = im.size
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except Exception:
            orientation = 1
    except Exception:
        if lay.size is None:
            raise UnsupportedFormatError(f"{path}: damaged JPEG (no frame header)") from None
        size, orientation = lay.size, 1
    return size, orientation


def _read_jpeg(path: Path, data: bytes) -> EmbeddedDepth | None:
    try:
        lay = X.scan_jpeg(data)
    except X.MetadataError as e:
        raise UnsupportedFormatError(f"{path}: damaged JPEG ({e})") from None
    std = X.standard_xmp(lay)
    depth_ns = (NS_GDEPTH, NS_XDM_DEPTH, NS_DD_DEVICE, NS_DD_DEPTH, NS_XDM_DEVICE)
    nodes = []
    ext_packet = None
    if std is not None:
        try:
            nodes = X.descriptions(X.parse_xmp(std))
        except X.MetadataError as e:
            if X.mentions(std, *depth_ns):
                raise _bad(path, f"its XMP with depth metadata is damaged ({e})") from None
            nodes = []
        guid = X.find_prop(nodes, X.XMP_NOTE, "HasExtendedXMP")
        if guid:
            try:
                ext_packet = X.extended_xmp(lay, guid)
                nodes = nodes + X.descriptions(X.parse_xmp(ext_packet))
            except X.MetadataError as e:
                if X.mentions(std, *depth_ns) or X.mentions(ext_packet, *depth_ns) or \
                        any(X.mentions(p, *depth_ns) for _, p in X.app_segments(lay, 0xE1, X.XMP_EXT)):
                    raise _bad(path, f"extended XMP {guid} holding the depth map is damaged ({e})") from None
    photo = None

    def geometry():
        nonlocal photo
        if photo is None:
            photo = _photo_geometry(path, data, lay)
        return photo

    if nodes:
        for reader in (_dynamic_depth, _gdepth, _xdm):
            r = reader(path, data, lay, nodes, geometry)
            if r is not None:
                return r
    return _apple_mpf(path, data, lay, geometry)


def _gdepth(path, data, lay, nodes, geometry):
    raw = X.find_prop(nodes, NS_GDEPTH, "Data")
    if raw is None:
        if X.find_prop(nodes, NS_GDEPTH, "Format") is not None or X.find_prop(nodes, NS_GDEPTH, "Mime"):
            raise _bad(path, "GDepth metadata is present but GDepth:Data (the depth image) is missing "
                             "(truncated extended XMP?)")
        return None
    fmt, near, far = _range_params(path, X.find_prop(nodes, NS_GDEPTH, "Format"),
                                   X.find_prop(nodes, NS_GDEPTH, "Near"), X.find_prop(nodes, NS_GDEPTH, "Far"),
                                   "GDepth")
    dn = _unit(_decode_image(_b64(raw, path, "GDepth:Data"), path, "GDepth:Data"))
    z = decode_range(dn, fmt, near, far)
    units = X.find_prop(nodes, NS_GDEPTH, "Units")
    disp, valid = _from_distance(z, path, "GDepth:Data", diopters=(units or "").lower() == "diopters")
    focus = X.find_prop(nodes, NS_GFOCUS, "FocalDistance")
    try:
        focus = float(focus) if focus is not None else None
    except ValueError:
        focus = None
    orig_bytes = original = None
    img = X.find_prop(nodes, NS_GIMAGE, "Data")
    if img:
        orig_bytes = _b64(img, path, "GImage:Data")
        stored, orientation = geometry()
        original = _decode_original(orig_bytes, stored, orientation, path, "GImage:Data")
    kind = f"GDepth {fmt} (XMP), near {near:g} far {far:g}{' ' + units if units else ''}: disparity 1/z"
    if original is not None:
        kind += ", unblurred original from GImage:Data"
    return _finish(path, disp, valid, geometry(), kind, near=near, far=far, original=original,
                   original_bytes=orig_bytes, focus_distance=focus, units=units)


def _xdm(path, data, lay, nodes, geometry):
    cams = []
    for n in nodes:
        cams.extend(X.seq(n, NS_XDM_DEVICE, "Cameras"))
    dm = None
    for li in cams:                       # the first camera with a depth map: by XDM the one whose
        cam = X.struct_node(li)           # image is the primary (later ones are raw sensor maps)
        dm = X.child(cam, NS_XDM_CAMERA, "DepthMap")
        if dm is not None:
            break
    if dm is None:
        return None
    raw = X.prop(dm, NS_XDM_DEPTH, "Data")
    fmt, near, far = _range_params(path, X.prop(dm, NS_XDM_DEPTH, "Format"), X.prop(dm, NS_XDM_DEPTH, "Near"),
                                   X.prop(dm, NS_XDM_DEPTH, "Far"), "Depthmap")
    dn = _unit(_decode_image(_b64(raw, path, "XDM Depthmap:Data"), path, "XDM Depthmap:Data"))
    z = decode_range(dn, fmt, near, far)
    disp, valid = _from_distance(z, path, "XDM Depthmap:Data")
    metric = (X.prop(dm, NS_XDM_DEPTH, "Metric") or "").strip().lower() in ("true", "1", "yes")
    kind = (f"XDM {fmt} (XMP Device:Cameras[0]), near {near:g} far {far:g}"
            f"{' metres' if metric else ' (not metric)'}: disparity 1/z")
    return _finish(path, disp, valid, geometry(), kind, near=near, far=far,
                   units="Meters" if metric else None)


def _dd_items(nodes):
    items = []
    for n in nodes:
        cont = X.child(n, NS_DD_DEVICE, "Container")
        if cont is None:
            continue
        for li in X.seq(cont, NS_DD_CONTAINER, "Directory"):
            node = X.struct_node(li)
            it = X.child(node, NS_DD_CONTAINER, "Item")
            items.append(it if it is not None else node)
    return items


def _dd_locate(path, data: bytes, lay: X.JpegLayout, items: list) -> list:
    """(offset, length) of every Dynamic Depth container item in the file (primary: 0, lay.end)."""
    def num(it, name, default=0):
        v = X.prop(it, NS_DD_ITEM, name)
        try:
            return int(float(v)) if v not in (None, "") else default
        except ValueError:
            raise _bad(path, f"Dynamic Depth Item:{name} is {v!r}, not a number") from None

    lengths = [num(it, "Length") for it in items]
    pads = [num(it, "Padding") for it in items]
    out = [(0, lay.end)]
    pos = lay.end + (pads[0] if pads else 0)
    for k in range(1, len(items)):
        out.append((pos, lengths[k]))
        pos += lengths[k] + pads[k]
    if len(items) > 1 and pos != len(data):
        # not contiguous with the primary's end: count back from the end of the file instead
        tail = len(data)
        back = []
        for k in range(len(items) - 1, 0, -1):
            tail -= pads[k] + lengths[k]
            back.append((tail, lengths[k]))
        if tail >= lay.end:
            out = [(0, lay.end)] + back[::-1]
    return out


def _dynamic_depth(path, data, lay, nodes, geometry):
    cams = []
    for n in nodes:
        cams.extend(X.seq(n, NS_DD_DEVICE, "Cameras"))
    dm = cam_node = None
    for li in cams:
        node = X.struct_node(li)
        cam = X.child(node, NS_DD_DEVICE, "Camera")
        cam = cam if cam is not None else node
        dm = X.child(cam, NS_DD_CAMERA, "DepthMap")
        if dm is not None:
            cam_node = cam
            break
    if dm is None:
        return None
    items = _dd_items(nodes)
    if len(items) < 2:
        raise _bad(path, "Dynamic Depth metadata without a container directory of appended items")
    where = _dd_locate(path, data, lay, items)
    uris = [X.prop(it, NS_DD_ITEM, "DataURI") for it in items]

    def item_bytes(uri, what):
        if uri not in uris:
            raise _bad(path, f"Dynamic Depth {what} names item {uri!r}, which the container does not list "
                             f"(items: {uris})")
        k = uris.index(uri)
        if k == 0:
            return data[:lay.end]
        off, n = where[k]
        buf = data[off:off + n]
        if len(buf) != n or n == 0:
            raise _bad(path, f"Dynamic Depth item {uri!r} ({n} bytes at offset {off}) lies beyond the end "
                             f"of the file ({len(data)} bytes)")
        return buf

    fmt, near, far = _range_params(path, X.prop(dm, NS_DD_DEPTH, "Format"), X.prop(dm, NS_DD_DEPTH, "Near"),
                                   X.prop(dm, NS_DD_DEPTH, "Far"), "DepthMap")
    units = X.prop(dm, NS_DD_DEPTH, "Units")
    uri = X.prop(dm, NS_DD_DEPTH, "DepthURI")
    dn = _unit(_decode_image(item_bytes(uri, "DepthMap:DepthURI"), path, f"Dynamic Depth item {uri!r}"))
    z = decode_range(dn, fmt, near, far)
    disp, valid = _from_distance(z, path, f"Dynamic Depth item {uri!r}",
                                 diopters=(units or "").lower() == "diopters")
    orig_bytes = original = None
    img = X.child(cam_node, NS_DD_CAMERA, "Image")
    if img is not None and (X.prop(img, NS_DD_IMAGE, "ItemSemantic") or "") == "Original":
        iuri = X.prop(img, NS_DD_IMAGE, "ItemURI")
        if iuri and iuri in uris and uris.index(iuri) != 0:
            orig_bytes = item_bytes(iuri, "Image:ItemURI")
            stored, orientation = geometry()
            original = _decode_original(orig_bytes, stored, orientation, path, f"Dynamic Depth item {iuri!r}")
    kind = (f"Dynamic Depth {fmt} (appended item {uri!r}), near {near:g} far {far:g}"
            f"{' ' + units if units else ''}: disparity {'as stored (diopters)' if (units or '').lower() == 'diopters' else '1/z'}")
    if original is not None:
        kind += ", unblurred original from the Original item"
    return _finish(path, disp, valid, geometry(), kind, near=near, far=far, original=original,
                   original_bytes=orig_bytes, units=units)


def _apple_mpf(path, data, lay, geometry):
    try:
        entries = X.mpf_entries(lay)
    except X.MetadataError as e:
        raise _bad(path, f"its MPF index (APP2) is damaged ({e})",
                   "the secondary images (e.g. an iPhone depth map) cannot be located") from None
    for ent in entries[1:]:
        if not X.is_jpeg(data, ent.offset):
            continue                                      # not an image we read; keep looking
        try:
            sub = X.scan_jpeg(data, ent.offset)
        except X.MetadataError:
            continue
        packet = X.standard_xmp(sub)
        if not X.mentions(packet, NS_APDI):
            continue
        try:
            nodes = X.descriptions(X.parse_xmp(packet))
        except X.MetadataError as e:
            raise _bad(path, f"the XMP of MPF image {ent.index} (Apple depth data) is damaged ({e})") from None
        aux = (X.find_prop(nodes, NS_APDI, "AuxiliaryImageType") or "").strip().lower()
        if aux not in ("disparity", "depth"):
            continue                                      # mattes, gain maps ...
        end = ent.offset + ent.size if ent.size else sub.end
        arr = _decode_image(data[ent.offset:end], path, f"MPF image {ent.index} (Apple {aux})")
        try:
            fmin = float(X.find_prop(nodes, NS_APDI, "FloatMinValue"))
            fmax = float(X.find_prop(nodes, NS_APDI, "FloatMaxValue"))
            imin = float(X.find_prop(nodes, NS_APDI, "IntMinValue") or 0)
            imax = float(X.find_prop(nodes, NS_APDI, "IntMaxValue") or np.iinfo(arr.dtype).max)
        except (TypeError, ValueError):
            raise _bad(path, f"MPF image {ent.index}: Apple depth data without numeric apdi:FloatMinValue/"
                             f"FloatMaxValue") from None
        if not (imax > imin):
            raise _bad(path, f"MPF image {ent.index}: apdi:IntMinValue={imin:g} >= IntMaxValue={imax:g}")
        val = fmin + (arr.astype(np.float64) - imin) / (imax - imin) * (fmax - fmin)
        if aux == "disparity":
            disp = val
            valid = np.isfinite(val) & (val > 0)
            near = 1.0 / fmax if fmax > 0 else None
            far = 1.0 / fmin if fmin > 0 else None
            how = f"disparity {fmin:g}-{fmax:g} 1/m as stored"
        else:
            disp, valid = _from_distance(val, path, f"MPF image {ent.index} (Apple depth)")
            near, far = fmin, fmax
            how = f"depth {fmin:g}-{fmax:g} m: disparity 1/z"
        kind = f"Apple MPF {aux} (MPF image {ent.index}, apdi XMP): {how}"
        return _finish(path, disp, valid, geometry(), kind, near=near, far=far, units="Meters")
    return None


# -- HEIC ------------------------------------------------------------------------------------

# ISO/IEC 23002-3 depth representation types, as libheif reports them
_HEIF_REPR = {0: "uniform inverse Z", 1: "uniform disparity", 2: "uniform Z", 3: "non-uniform disparity"}


def _read_heif(path: Path) -> EmbeddedDepth | None:
    try:
        import pillow_heif
    except ImportError:
        raise UnsupportedFormatError(
            f"{path}: HEIC/HEIF photo; reading its depth needs the optional package pillow-heif: "
            "install refocus[heic] (pip install 'refocus[heic]')") from None
    try:
        hf = pillow_heif.open_heif(str(path), convert_hdr_to_8bit=False)
        primary = hf[hf.primary_index] if hasattr(hf, "primary_index") else hf
        depths = primary.info.get("depth_images") or []
    except Exception as e:
        raise UnsupportedFormatError(f"{path}: cannot read HEIC/HEIF file ({type(e).__name__}: {e})") from None
    if not depths:
        return None
    dimg = depths[0]
    try:
        arr = np.asarray(dimg)
    except Exception as e:
        raise _bad(path, f"its HEIF depth auxiliary image cannot be decoded ({type(e).__name__}: {e})") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise _bad(path, f"its HEIF depth image has shape {arr.shape}, expected a 2-D map")
    meta = dict(dimg.info.get("metadata") or {})
    rtype = int(meta.get("representation_type", 1))
    dmin, dmax = meta.get("d_min"), meta.get("d_max")
    v = _unit(arr)
    if rtype == 2:                                       # uniform Z: distance, linear in the samples
        if dmin is not None and dmax is not None and dmax > dmin:
            z = dmin + v * (dmax - dmin)
        else:
            z = v
        disp, valid = _from_distance(z, path, "HEIF depth image")
        how = "depth: disparity 1/z"
    else:                                                # disparity-like: larger sample = nearer
        disp, valid = v, np.ones(v.shape, bool)
        how = "disparity as stored"
    W, H = primary.size                                  # displayed size (libheif applies irot/imir)
    h, w = disp.shape
    note = ""
    if abs(w / h - W / H) > 0.02 * (W / H) and abs(h / w - W / H) <= 0.02 * (W / H) and W != H:
        # the map is stored turned by a quarter relative to the displayed photo
        orient = int(primary.info.get("original_orientation") or 6)
        orient = orient if orient in (5, 6, 7, 8) else 6
        from ..imageio import apply_orientation
        disp = np.ascontiguousarray(apply_orientation(disp, orient))
        valid = np.ascontiguousarray(apply_orientation(valid, orient))
        note = f", turned by EXIF orientation {orient} to match the photo"
    rng = f" d_min {dmin:g} d_max {dmax:g}" if dmin is not None and dmax is not None else ""
    kind = f"Apple HEIC disparity (HEIF depth auxiliary image, {_HEIF_REPR.get(rtype, rtype)}{rng}): {how}{note}"
    if rtype == 2:
        kind = kind.replace("Apple HEIC disparity", "Apple HEIC depth", 1)
    return _finish(path, disp, valid, ((W, H), 1), kind)
