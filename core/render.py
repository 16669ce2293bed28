"""File-level rendering: photo + depth map on disk -> refocused photo on disk."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import imageio
from .highlights import DEFAULT_GAIN
from .lens import RenderInfo, render_linear


def render_file(input, output, *, depth, focus_disparity: float, K: float, aperture: str = "circle",
                blades: int = 6, rotation: float = 0.0, highlight_gain: float = DEFAULT_GAIN,
                depth_kind: str = "disparity", device: str = "auto", bits: int | None = None,
                quality: int = 95, info: RenderInfo | None = None, layers: bool = False,
                overwrite: bool = False, depth_out=None, gdepth: bool = False, to_srgb: bool = False,
                preset: str | None = None, subject_mask: np.ndarray | None = None,
                model=None, soft_depth: bool = False) -> RenderInfo:
    """Render `input` with a disparity map and write `output`.

    ``depth``: a disparity map file, or ``"auto"`` (or None) to estimate it
    (:func:`refocus.depth.estimate_depth`: embedded depth, else an installed model -- `model`
    picks one --, else the offline default); when the file holds an unblurred original
    (Google Lens Blur), the rendering starts from it.  ``info.depth_source`` says which
    source was used.

    The output's extension picks the format: .jpg/.png/.tif (flattened, with the source's
    EXIF, ICC profile and an XMP record), .ora/.psd (layered), or .tif with ``layers=True``
    (layered TIFF).  Layers: result, original, disparity, blur (|CoC| / max CoC), subject
    mask when given.  ``depth_out``: also write the disparity map as a 16-bit PNG;
    ``gdepth``: the JPEG carries the disparity map as Google GDepth XMP.  Existing outputs
    are kept unless ``overwrite``; nothing is written if anything fails; the input is never
    modified.
    """
    from . import io as rio
    from .io import layers as rlayers
    from .io import write as rwrite
    info = info if info is not None else RenderInfo()
    t0 = time.perf_counter()
    auto_depth = depth is None or str(depth) == "auto"
    depth_inputs = [input] if auto_depth else [input, depth]
    if model is not None and not auto_depth:
        from .errors import BadInputError
        raise BadInputError(f"--model {model}: a depth model is only used with --depth auto, "
                            f"but --depth {depth} was given; drop one of the two")
    kind = rwrite.output_kind(output, layers=layers)           # fail early on a bad output name ...
    rwrite.check_output(output, overwrite=overwrite, inputs=depth_inputs)   # ... or folder, before any work
    if gdepth and kind != "jpeg":
        from .errors import BadInputError
        raise BadInputError(f"{output}: --gdepth embeds the depth map in a JPEG; use a .jpg output")
    if depth_out is not None:
        if Path(depth_out).suffix.lower() != ".png":
            from .errors import BadInputError
            raise BadInputError(f"{depth_out}: --depth-out writes a 16-bit PNG; use a .png name")
        rwrite.check_output(depth_out, overwrite=overwrite, inputs=depth_inputs + [output])
    if auto_depth:
        from .depth import estimate_depth
        photo = rio.read_photo(input)
        linear = photo.linear
        res = estimate_depth(photo, model=model, device=device)
        disp = res.disparity
        if res.original is not None and res.original.shape[:2] == disp.shape:
            linear = res.original
        info.depth_source = f"{res.source} ({res.detail})"
        depth_name = f"{res.source}: {res.detail}"
        harden = not soft_depth and res.clean_edges          # see DepthResult.clean_edges
    else:                      # the map is read in a second thread while the photo is decoded
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1, thread_name_prefix="refocus-depth") as pool:
            map_read = pool.submit(imageio.read_depth, depth, None, kind=depth_kind)
            photo = rio.read_photo(input)              # the photo's errors first, as before
            disp = imageio.fit_depth(map_read.result(), photo.linear.shape[:2], depth)
        linear = photo.linear
        depth_name = Path(depth).name
        harden = not soft_depth
    t1 = time.perf_counter()
    # a flattened output needs neither the photo nor the map once rendered: the result goes
    # into the photo's buffer and the map's holds the CoC (two full-size buffers fewer)
    flat = kind not in ("ora", "psd", "layered-tiff") and not gdepth and depth_out is None
    out = render_linear(linear, disp, focus_disparity, K, aperture=aperture, blades=blades,
                        rotation=rotation, highlight_gain=highlight_gain, device=device,
                        harden_edges=harden, info=info, in_place=flat)
    if info.disparity is not None:
        disp = info.disparity
    t2 = time.perf_counter()
    record = {"preset": preset, "focus_disparity": float(focus_disparity), "blur": float(K),
              "aperture": aperture if aperture != "polygon" else f"polygon-{blades}",
              "depth_source": depth_name, "depth_kind": depth_kind, "source": Path(input).name}
    if kind in ("ora", "psd", "layered-tiff"):
        coc = np.float32(K) * (disp - np.float32(focus_disparity))
        max_coc = float(np.abs(coc).max())
        stack = rlayers.result_layers(out, linear, disp, coc, max_coc=max_coc, subject_mask=subject_mask)
        rlayers.write_layers(output, stack, photo=photo, bits=16 if bits is None else bits, overwrite=overwrite,
                             xmp_record=record, to_srgb=to_srgb)
    elif gdepth:
        rwrite.write_gdepth_jpeg(output, out, disp, photo=photo, quality=quality, original=linear,
                                 xmp_record=record, overwrite=overwrite, to_srgb=to_srgb)
    else:
        rwrite.write_result(output, out, photo=photo, bits=bits, quality=quality, xmp_record=record,
                            overwrite=overwrite, to_srgb=to_srgb)
    if depth_out is not None:
        rwrite.write_disparity_png(depth_out, disp, overwrite=overwrite, inputs=depth_inputs,
                                   record={"source": Path(input).name, "depth_source": depth_name})
    t3 = time.perf_counter()
    info.timings.update({"read": t1 - t0, "render": t2 - t1, "write": t3 - t2, "total": t3 - t0})
    return info
