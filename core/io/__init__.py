"""Photo I/O: reading every common photo format and camera raw, writing results with their
metadata, layered files (OpenRaster, layered TIFF, PSD), disparity maps and GDepth JPEGs.

See ``docs/io.md``.  Heavy or optional modules (rawpy, pillow-heif, tifffile, OpenCV) are
imported only when a file needs them.

    photo = refocus.io.read_photo("IMG_1234.CR2")         # linear float32, upright
    refocus.io.write_result("out.jpg", result, photo=photo, xmp_record={"blur": 20})
    refocus.io.write_layers("out.psd", refocus.io.result_layers(result, photo.linear, disp, coc),
                            photo=photo)
"""
from __future__ import annotations

from ..imageio import Photo
from .colour import ColourSpace, parse_icc
from .layers import Layer, result_layers, write_layers
from .metadata import CameraInfo, parse_exif
from .read import read_photo, sniff
from .write import write_disparity_png, write_gdepth_jpeg, write_result

__all__ = ["Photo", "ColourSpace", "parse_icc", "CameraInfo", "parse_exif", "read_photo", "sniff",
           "write_result", "write_disparity_png", "write_gdepth_jpeg", "Layer", "result_layers", "write_layers"]
