"""``refocus depth`` and ``refocus models``: depth maps and the depth-model cache.

Registered on the main group in :mod:`refocus.cli`; heavy modules are imported inside
the commands so ``refocus --help`` stays fast.
"""
from __future__ import annotations

import sys

import click

DEVICE_CHOICES = ["auto", "cpu", "cuda", "directml", "coreml"]
SOURCE_CHOICES = ["auto", "embedded", "model", "fallback"]
DEPTH_EXTS = (".png", ".tif", ".tiff", ".npy")


def _fail(e: Exception, debug: bool = False):
    if debug:
        raise e
    click.echo(f"refocus: error: {e}", err=True)
    sys.exit(2)


def encode_depth(disparity, ext: str) -> bytes:
    """Disparity in [0, 1] as file bytes: 16-bit grey PNG, float32 TIFF or .npy."""
    import io

    import numpy as np
    d = np.clip(np.asarray(disparity, np.float32), 0.0, 1.0)
    if ext == ".png":
        import cv2
        ok, buf = cv2.imencode(".png", np.round(d * 65535).astype(np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            from .errors import OutputError
            raise OutputError("PNG encoding of the depth map failed")
        return buf.tobytes()
    bio = io.BytesIO()
    if ext == ".npy":
        np.save(bio, d)
    else:
        import tifffile
        tifffile.imwrite(bio, d, photometric="minisblack", compression="zlib")
    return bio.getvalue()


@click.command()
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Depth file to write: .png (16-bit grey), .tif (float32) or .npy; 1 = near.")
@click.option("--source", type=click.Choice(SOURCE_CHOICES), default="auto", show_default=True,
              help="Where the depth comes from; auto = embedded in the file, else an installed model, "
                   "else the offline default.")
@click.option("--model", default=None, metavar="NAME_OR_PATH",
              help="A model from `refocus models list`, or the path of a compatible .onnx file.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where the depth network runs.")
@click.option("-v", "--verbose", is_flag=True, help="Print the timings.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def depth(input, output, source, model, device, verbose, debug):
    """Write the disparity map of INPUT (at its displayed size, 1 = near) to --output."""
    from pathlib import Path

    from . import imageio
    from .depth import estimate_depth
    from .errors import BadInputError, OutputError, RefocusError
    try:
        out = Path(output)
        ext = out.suffix.lower()
        if ext not in DEPTH_EXTS:
            raise BadInputError(f"{out}: unknown depth file type {ext or '(none)'}; use one of "
                                f"{', '.join(DEPTH_EXTS)}")
        imageio.output_folder(out)
        if out.exists() and Path(input).exists() and out.samefile(input):
            raise OutputError(f"{out}: refusing to overwrite the input file")
        res = estimate_depth(input, source=source, model=model, device=device)
        imageio.atomic_write(out, encode_depth(res.disparity, ext))
    except RefocusError as e:
        _fail(e, debug)
    H, W = res.disparity.shape
    click.echo(f"{out}: {W}x{H} disparity from {res.source}: {res.detail}")
    if verbose:
        click.echo("timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in res.timings.items()), err=True)


@click.group()
def models():
    """List, download and verify depth models (cache: $REFOCUS_HOME/models or the user data dir)."""


def _size(spec) -> str:
    if spec.size_bytes:
        return f"{spec.size_bytes / 1e6:.1f} MB"
    return f"{spec.size_mb:.1f} MB" if spec.size_mb else "? MB"


@models.command("list")
def models_list():
    """Name, size, licence, whether installed, and where."""
    from .depth import models as m
    from .errors import RefocusError
    try:
        reg = m.load_registry()
        default = m.default_name()
        rows = []
        for name, spec in reg.items():
            path = m.model_path(name)
            if path.is_file():
                state, where = "installed", str(path)
            elif m.part_path(name).is_file():
                state, where = f"partial ({m.part_path(name).stat().st_size / 1e6:.1f} MB)", str(m.part_path(name))
            else:
                state, where = "not installed", spec.urls[0]
            rows.append((name + (" (default)" if name == default else ""), _size(spec), spec.license, state, where))
    except RefocusError as e:
        _fail(e)
    widths = [max(len(r[i]) for r in rows + [("NAME", "SIZE", "LICENSE", "STATUS", "WHERE")]) for i in range(4)]
    for r in [("NAME", "SIZE", "LICENSE", "STATUS", "WHERE")] + rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    click.echo(f"cache folder: {m.models_dir()}")


@models.command("download")
@click.argument("name")
@click.option("--url", default=None, help="Download from this URL (a mirror) instead of the registry's.")
@click.option("--force", is_flag=True, help="Download again even if the model is installed.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Network timeout, seconds.")
def models_download(name, url, force, timeout):
    """Download model NAME into the cache (resumable; sha256 checked before it is used)."""
    from .depth import models as m
    from .errors import RefocusError
    try:
        m.download(name, url=url, force=force, timeout=timeout, log=lambda s: click.echo(s, err=True))
    except RefocusError as e:
        _fail(e)
    click.echo(str(m.model_path(name)))


@models.command("verify")
@click.argument("name", required=False)
def models_verify(name):
    """Check installed models against their sha256 (exit status 2 if one does not match)."""
    from .depth import models as m
    from .errors import RefocusError
    try:
        checks = m.verify(name)
    except RefocusError as e:
        _fail(e)
    if not checks:
        click.echo(f"no models installed in {m.models_dir()}")
    bad = False
    for c in checks:
        click.echo(f"{c.name}: {c.status}: {c.message}")
        bad |= c.status in ("mismatch", "missing")
    if bad:
        sys.exit(2)


@models.command("path")
@click.argument("name", required=False)
def models_path(name):
    """Print the cache folder, or the file model NAME is (or would be) stored in."""
    from .depth import models as m
    from .errors import RefocusError
    try:
        click.echo(str(m.model_path(name) if name else m.models_dir()))
    except RefocusError as e:
        _fail(e)
