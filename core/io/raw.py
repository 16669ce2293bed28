"""Camera raw files through rawpy (LibRaw), imported only when a raw file is read.

Development settings, chosen for a lens-blur tool rather than for a finished look:

* ``gamma=(1, 1)``, ``no_auto_bright=True``, ``output_bps=16``: LibRaw's output stays in
  linear light at 16 bits, so there is no second gamma trip and no brightness guess; the
  exposure is the camera's.
* ``use_camera_wb=True``: the white balance the photographer shot with.
* ``output_color=sRGB``: linear sRGB primaries, the project's default working space; the
  written file carries an sRGB profile.  (Wider primaries would be possible, but most
  outputs end up on the web; a user who needs ProPhoto develops the raw elsewhere and
  gives refocus the TIFF, whose profile is honoured.)
* ``highlight_mode=Blend``: clipped highlights are blended towards neutral instead of
  being clipped per channel (which turns them magenta/pink) or reconstructed (slow, and it
  invents colour).  Clipped light sources are exactly what the bokeh highlight stage boosts,
  so they should be neutral and smooth.
* Orientation: LibRaw rotates/flips the image by ``sizes.flip`` inside ``postprocess`` (the
  test suite checks this with a DNG whose Orientation tag is changed), so the array is
  already as displayed; the EXIF copied to outputs gets Orientation = 1 anyway.

LibRaw's errors are mapped to refocus errors that name the file.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import BadInputError, UnsupportedFormatError

# extensions LibRaw reads (used only to prefer the raw reader for TIFF-like files)
RAW_EXTS = {".3fr", ".ari", ".arw", ".bay", ".cap", ".cr2", ".cr3", ".crw", ".dcr", ".dcs", ".dng",
            ".drf", ".eip", ".erf", ".fff", ".gpr", ".iiq", ".k25", ".kdc", ".mdc", ".mef", ".mos",
            ".mrw", ".nef", ".nrw", ".orf", ".pef", ".ptx", ".pxn", ".r3d", ".raf", ".raw", ".rw2",
            ".rwl", ".rwz", ".sr2", ".srf", ".srw", ".x3f"}


def _tiff_truncated(path: Path, data_len: int) -> str | None:
    """For TIFF-structured raws: a reason if a strip or tile of any IFD lies past the file end."""
    try:
        import tifffile
        with tifffile.TiffFile(path) as tf:
            pages = list(tf.pages)
            for p in list(pages):
                pages.extend(getattr(p, "pages", []) or [])
            for p in pages:
                offs, counts = p.dataoffsets, p.databytecounts
                if offs and counts:
                    end = max(o + c for o, c in zip(offs, counts))
                    if end > data_len:
                        return f"image data ends at byte {end} but the file has {data_len} bytes"
    except Exception:
        return None
    return None


def read_raw(path: Path, max_pixels: int, *, half_size: bool = False):
    """Develop a raw file: returns (linear float32 (H, W, 3) in sRGB primaries, info dict)."""
    try:
        import rawpy
    except ImportError:
        raise UnsupportedFormatError(f"{path}: camera raw files need rawpy (pip install rawpy)") from None
    errors = (rawpy.LibRawError,)
    size = path.stat().st_size
    try:
        with rawpy.imread(str(path)) as raw:
            s = raw.sizes
            w, h = (s.iheight, s.iwidth) if s.flip in (5, 6) else (s.iwidth, s.iheight)
            if w * h > max_pixels:
                raise BadInputError(f"{path}: {w}x{h} = {w * h / 1e6:.0f} MP exceeds the limit of "
                                    f"{max_pixels / 1e6:.0f} MP (set REFOCUS_MAX_PIXELS to raise it)")
            with open(path, "rb") as f:
                head = f.read(4)
            if head in (b"II*\x00", b"MM\x00*"):
                why = _tiff_truncated(path, size)
                if why:
                    raise UnsupportedFormatError(f"{path}: truncated raw file ({why}); copy it again "
                                                 "from the card or camera")
            rgb = raw.postprocess(gamma=(1, 1), no_auto_bright=True, output_bps=16, use_camera_wb=True,
                                  output_color=rawpy.ColorSpace.sRGB,
                                  highlight_mode=rawpy.HighlightMode.Blend, half_size=half_size,
                                  user_flip=None)
            info = {"flip": int(s.flip), "raw_size": (int(s.raw_width), int(s.raw_height)),
                    "camera_wb": [float(v) for v in raw.camera_whitebalance],
                    "color_desc": raw.color_desc.decode("ascii", "replace")}
    except (BadInputError, UnsupportedFormatError):
        raise
    except rawpy.LibRawFileUnsupportedError:
        raise UnsupportedFormatError(f"{path}: not an image refocus can read (neither a photo format "
                                     "nor a camera raw file LibRaw knows)") from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as e:
        raise UnsupportedFormatError(f"{path}: damaged or truncated raw file ({type(e).__name__}: {e}); "
                                     "copy it again from the card or camera") from None
    except rawpy.LibRawTooBigError:
        raise BadInputError(f"{path}: raw image too big for LibRaw") from None
    except errors as e:
        raise UnsupportedFormatError(f"{path}: cannot develop raw file ({type(e).__name__}: {e})") from None
    except MemoryError:
        raise BadInputError(f"{path}: not enough memory to develop this raw file") from None
    lin = rgb.astype(np.float32)
    lin *= np.float32(1 / 65535)
    return lin, info


def raw_exif(path: Path):
    """PIL ``Image.Exif`` of a TIFF-based raw (DNG, NEF, CR2, ARW, RW2, ORF, ...); None otherwise."""
    from PIL import Image
    try:
        with open(path, "rb") as f:
            data = f.read(4 << 20)          # IFD0 and the EXIF IFD sit at the start
    except OSError:
        return None
    if data[:2] not in (b"II", b"MM"):
        return None
    e = "<" if data[:2] == b"II" else ">"
    magic = struct.unpack(e + "H", data[2:4])[0]
    if magic != 42:                          # RW2 (0x55), ORF (0x4F52/0x5352): TIFF with another magic
        data = data[:2] + struct.pack(e + "H", 42) + data[4:]
    try:
        ex = Image.Exif()
        ex.load(data)
        ex.get_ifd(0x8769)
        return ex
    except Exception:
        return None
