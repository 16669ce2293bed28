"""File-level rendering: photo + depth map on disk -> refocused photo on disk."""
from __future__ import annotations

import time

from . import imageio
from .highlights import DEFAULT_GAIN
from .lens import RenderInfo, render_linear


def render_file(input, output, *, depth, focus_disparity: float, K: float, aperture: str = "circle",
                blades: int = 6, rotation: float = 0.0, highlight_gain: float = DEFAULT_GAIN,
                depth_kind: str = "disparity", device: str = "auto", bits: int | None = None,
                quality: int = 95, info: RenderInfo | None = None, model=None) -> RenderInfo:
    """Render `input` with the disparity map `depth` and write `output` (format by extension).

    ``depth="auto"`` (or None) estimates it (:func:`refocus.depth.estimate_depth`: embedded
    depth, else an installed model -- `model` picks one --, else the offline default); when
    the file holds an unblurred original (Google Lens Blur), the rendering starts from it.
    ``info.depth_source`` then says which source was used.
    Nothing is written if anything fails; the input is never modified.
    """
    info = info if info is not None else RenderInfo()
    t0 = time.perf_counter()
    fmt = imageio.output_format(output)              # fail early on a bad output name ...
    imageio.output_folder(output)                    # ... or a missing folder, before any work
    photo = imageio.read_photo(input)
    linear = photo.linear
    if depth is None or str(depth) == "auto":
        from .depth import estimate_depth
        res = estimate_depth(photo, model=model, device=device)
        disp = res.disparity
        if res.original is not None and res.original.shape[:2] == disp.shape:
            linear = res.original
        info.depth_source = f"{res.source} ({res.detail})"
    else:
        disp = imageio.read_depth(depth, photo.linear.shape[:2], kind=depth_kind)
    t1 = time.perf_counter()
    out = render_linear(linear, disp, focus_disparity, K, aperture=aperture, blades=blades,
                        rotation=rotation, highlight_gain=highlight_gain, device=device, info=info)
    t2 = time.perf_counter()
    if bits is None:
        bits = 16 if (fmt == "tiff" or (fmt == "png" and photo.bits == 16)) else 8
    imageio.write_photo(output, out, bits=bits, quality=quality, grey=photo.grey,
                        icc=photo.icc, exif=photo.exif, source=input)
    t3 = time.perf_counter()
    info.timings.update({"read": t1 - t0, "render": t2 - t1, "write": t3 - t2, "total": t3 - t0})
    return info
