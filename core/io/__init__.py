"""Photo I/O: reading every common photo format and camera raw, writing results with their
metadata, layered files (OpenRaster, layered TIFF, PSD), disparity maps and GDepth JPEGs.

See ``docs/io.md``.  Heavy or optional modules (rawpy, pillow-heif, tifffile) are imported
only when a file needs them.
"""
from __future__ import annotations

from ..imageio import Photo
from .colour import ColourSpace, parse_icc
from .metadata import CameraInfo, parse_exif
from .read import read_photo, sniff

__all__ = ["Photo", "ColourSpace", "parse_icc", "CameraInfo", "parse_exif", "read_photo", "sniff"]
