"""Camera metadata: EXIF parsed into :class:`CameraInfo`, and EXIF blocks prepared for outputs.

Reading uses exifread (it reads the EXIF of JPEG, TIFF, PNG, WebP, HEIC and the TIFF-based
raws).  Writing keeps the source's EXIF block **byte for byte** and patches values in place:
Orientation becomes 1 (the pixels are written upright), PixelXDimension/PixelYDimension get
the output size, and the link to IFD1 (the embedded thumbnail, which shows the unprocessed
picture) is cut.  Patching in place keeps every offset, so maker notes, which many vendors
write with offsets relative to the TIFF header, stay readable (exiftool decodes them).

EXIF from TIFF containers (TIFF images, DNG and other TIFF-based raws) is rebuilt instead:
their IFD0 describes the raw data (strips, CFA pattern, DNG colour matrices), so only the
descriptive IFD0 tags are kept, with the Exif and GPS sub-IFDs (maker notes included, but a
vendor note with absolute offsets may not decode after the move).
"""
from __future__ import annotations

import io
import struct
from dataclasses import asdict, dataclass
from fractions import Fraction

FULL_FRAME_DIAGONAL_MM = 43.2666      # 36 x 24 mm

# IFD0 tags kept when an EXIF block is rebuilt from a TIFF container (descriptive only)
IFD0_KEEP = {0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B,
             0x8298, 0xA430, 0xA431, 0xA432, 0xA433, 0xA434, 0xA435}


@dataclass(frozen=True)
class CameraInfo:
    """What photographers care about, from EXIF.  Missing values are None.

    ``focal_length_35mm`` is the EXIF FocalLengthIn35mmFilm when the camera wrote one, else an
    estimate from FocalPlaneXResolution (``crop_source`` says which); ``crop_factor`` =
    35 mm equivalent / focal length; the sensor size follows from the crop factor and the
    image's aspect ratio.
    """
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: float | None = None
    crop_factor: float | None = None
    crop_source: str | None = None
    sensor_width_mm: float | None = None
    sensor_height_mm: float | None = None
    f_number: float | None = None
    exposure_time_s: float | None = None
    iso: int | None = None
    datetime_original: str | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    gps_altitude_m: float | None = None
    orientation: int = 1
    subject_distance_m: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def exposure_text(self) -> str | None:
        t = self.exposure_time_s
        if not t:
            return None
        return f"1/{round(1 / t)} s" if t < 0.5 else f"{t:g} s"


def _num(v) -> float | None:
    """First value of an exifread tag as float (None when absent, zero-denominator or 0)."""
    if v is None:
        return None
    vals = getattr(v, "values", v)
    if isinstance(vals, (list, tuple)):
        if not vals:
            return None
        vals = vals[0]
    try:
        if hasattr(vals, "num"):
            if vals.den == 0:
                return None
            f = vals.num / vals.den
        else:
            f = float(vals)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if f == f and f != 0 else None


def _text(v) -> str | None:
    if v is None:
        return None
    s = str(getattr(v, "printable", v)).strip().strip("\x00").strip()
    return s or None


def _dms(v, ref) -> float | None:
    vals = getattr(v, "values", None)
    if not vals or len(vals) < 3:
        return None
    try:
        d, m, s = (float(Fraction(x.num, x.den)) if x.den else 0.0 for x in vals[:3])
    except (AttributeError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    if _text(ref) in ("S", "W"):
        deg = -deg
    return deg


def parse_exif(source, *, image_size: tuple[int, int] | None = None) -> CameraInfo:
    """:class:`CameraInfo` from an EXIF block (bytes, with or without ``Exif\\0\\0``), a file
    path, or a binary file object.  `image_size` (w, h, as displayed) sets the sensor aspect.
    Never raises: unreadable EXIF gives an empty record.
    """
    import exifread
    try:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
            if data.startswith(b"Exif\x00\x00"):
                data = data[6:]
            tags = exifread.process_file(io.BytesIO(data), details=False)
        elif hasattr(source, "read"):
            tags = exifread.process_file(source, details=False)
        else:
            with open(source, "rb") as f:
                tags = exifread.process_file(f, details=False)
    except Exception:
        tags = {}
    if not tags:
        return CameraInfo()

    def get(*names):
        for n in names:
            for prefix in ("EXIF ", "Image "):
                if prefix + n in tags:
                    return tags[prefix + n]
        return None

    focal = _num(get("FocalLength"))
    f35 = _num(get("FocalLengthIn35mmFilm"))
    crop_source = "FocalLengthIn35mmFilm" if (f35 and focal) else None
    crop = f35 / focal if crop_source else None
    if crop is None and focal:
        # estimate from the focal-plane resolution: sensor width = pixels / (pixels per unit)
        xres = _num(get("FocalPlaneXResolution"))
        unit = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}.get(int(_num(get("FocalPlaneResolutionUnit")) or 2), 25.4)
        width = _num(get("ExifImageWidth"))
        height = _num(get("ExifImageLength"))
        if xres and width and height:
            w_mm = width / xres * unit
            h_mm = height / xres * unit
            diag = (w_mm ** 2 + h_mm ** 2) ** 0.5
            c = FULL_FRAME_DIAGONAL_MM / diag
            if 0.5 <= c <= 12:                 # implausible values come from resized files
                crop, crop_source = c, "FocalPlaneXResolution"
                f35 = focal * c
    sensor_w = sensor_h = None
    if crop:
        w, h = image_size or (3, 2)
        w, h = max(w, h), min(w, h)
        diag = FULL_FRAME_DIAGONAL_MM / crop
        k = diag / (w * w + h * h) ** 0.5
        sensor_w, sensor_h = w * k, h * k
    lens = _text(get("LensModel"))
    lens_make = _text(get("LensMake"))
    if lens and lens_make and not lens.lower().startswith(lens_make.lower()) and lens_make.lower() != "apple":
        lens = f"{lens_make} {lens}"
    dt = _text(get("DateTimeOriginal", "DateTime"))
    off = _text(get("OffsetTimeOriginal"))
    if dt and off:
        dt = f"{dt}{off}"
    alt = _num(tags.get("GPS GPSAltitude"))
    if alt is not None and _text(tags.get("GPS GPSAltitudeRef")) in ("1", "Below Sea Level"):
        alt = -alt
    iso = _num(get("ISOSpeedRatings", "PhotographicSensitivity", "ISOSpeed"))
    orient = get("Orientation")
    try:
        orient = int(orient.values[0]) if orient is not None else 1
    except (AttributeError, IndexError, TypeError, ValueError):
        orient = 1
    return CameraInfo(
        make=_text(get("Make")), model=_text(get("Model")), lens=lens,
        focal_length_mm=focal, focal_length_35mm=f35, crop_factor=crop, crop_source=crop_source,
        sensor_width_mm=sensor_w, sensor_height_mm=sensor_h,
        f_number=_num(get("FNumber")), exposure_time_s=_num(get("ExposureTime")),
        iso=int(iso) if iso else None, datetime_original=dt,
        gps_latitude=_dms(tags.get("GPS GPSLatitude"), tags.get("GPS GPSLatitudeRef")),
        gps_longitude=_dms(tags.get("GPS GPSLongitude"), tags.get("GPS GPSLongitudeRef")),
        gps_altitude_m=alt, orientation=orient if 1 <= orient <= 8 else 1,
        subject_distance_m=_num(get("SubjectDistance")))


# -- EXIF blocks for outputs --------------------------------------------------------------

def tiff_block(exif: bytes | None) -> bytes | None:
    """The TIFF structure of an EXIF block (the ``Exif\\0\\0`` prefix removed)."""
    if not exif:
        return None
    return exif[6:] if exif.startswith(b"Exif\x00\x00") else exif


def patch_exif(exif: bytes | None, size: tuple[int, int] | None = None) -> bytes | None:
    """Copy of an EXIF block for an upright output: Orientation = 1, pixel dimensions =
    `size` (w, h), thumbnail (IFD1) unlinked.  Offsets are unchanged (patched in place).
    Returns the TIFF structure (no ``Exif`` prefix); None for a block that cannot be parsed.
    """
    b = tiff_block(exif)
    if not b or len(b) < 8 or b[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    e = "<" if b[:2] == b"II" else ">"
    out = bytearray(b)
    try:
        def walk(ifd_off, fn):
            n = struct.unpack_from(e + "H", out, ifd_off)[0]
            for i in range(n):
                pos = ifd_off + 2 + 12 * i
                tag, typ, count = struct.unpack_from(e + "HHI", out, pos)
                fn(tag, typ, count, pos + 8)
            return ifd_off + 2 + 12 * n          # position of the next-IFD pointer

        sub = {}

        def ifd0(tag, typ, count, vpos):
            if tag == 0x0112 and typ == 3:
                struct.pack_into(e + "H", out, vpos, 1)
            elif tag == 0x8769 and count == 1:
                sub["exif"] = struct.unpack_from(e + "I", out, vpos)[0]

        ifd0_off = struct.unpack_from(e + "I", out, 4)[0]
        nxt = walk(ifd0_off, ifd0)
        struct.pack_into(e + "I", out, nxt, 0)                 # unlink IFD1 (thumbnail)

        def exififd(tag, typ, count, vpos):
            if size and tag in (0xA002, 0xA003) and count == 1:
                v = size[0] if tag == 0xA002 else size[1]
                if typ == 3 and v < 65536:
                    struct.pack_into(e + "H", out, vpos, v)
                elif typ == 4:
                    struct.pack_into(e + "I", out, vpos, v)

        if sub.get("exif") and sub["exif"] < len(out):
            walk(sub["exif"], exififd)
    except struct.error:
        return None
    return bytes(out)


def rebuild_exif(pil_exif) -> bytes | None:
    """EXIF block (TIFF structure) from a PIL ``Image.Exif`` of a TIFF container: descriptive
    IFD0 tags + the Exif and GPS sub-IFDs; None when there is nothing to keep."""
    from PIL import Image
    try:
        new = Image.Exif()
        for tag, val in pil_exif.items():
            if tag in IFD0_KEEP:
                new[tag] = val
        for ptr in (0x8769, 0x8825):
            sub = pil_exif.get_ifd(ptr)
            if sub:
                new.get_ifd(ptr).update(sub)
        if not len(new) and not new.get_ifd(0x8769):
            return None
        data = new.tobytes()
        return data[6:] if data.startswith(b"Exif\x00\x00") else data
    except Exception:
        return None
