"""The ``refocus`` command.  Heavy modules are imported inside the commands, so
``refocus --version`` and ``--help`` answer at once."""
from __future__ import annotations

import sys

import click

from ._version import __version__

DEVICE_CHOICES = ["auto", "cpu", "cuda", "directml", "coreml"]
_done = False                 # set by a command whose work is all on disk: run() may exit at once


def run(args=None):
    """The console entry point (``refocus``, ``python -m refocus.cli``): the click group, then,
    after a command that says its work is all on disk (``render``: the output written,
    renamed into place and closed; no child process, no thread that is not a daemon), the
    process ends with ``os._exit`` once stdout and stderr are flushed.  Tearing down a 12 MP
    render's heap, numpy's arrays and onnxruntime's thread pools took about 0.2 s of every
    command (``refocus render`` 1.68 -> 1.48 s, 8 runs interleaved).  Tests call
    :func:`main` through click's runner and never get here."""
    import os
    try:
        main(args=args)
        code = 0
    except SystemExit as e:
        code = e.code
    if not _done or not isinstance(code, (int, type(None))):
        sys.exit(code)
    import threading
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):      # a closed pipe: nothing more to say
            pass
    os._exit(code or 0)


def _fail(e: Exception, debug: bool):
    if debug:
        raise e
    click.echo(f"refocus: error: {e}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="refocus")
def main():
    """refocus: synthetic shallow depth of field for ordinary photos."""
    from .runtime import own_process
    own_process()                     # before the commands import numpy or start threads


@main.command()
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output file; its extension picks the format: .jpg, .png, .tif (flattened), "
                   ".ora, .psd (layered).")
@click.option("--depth", default="auto", show_default=True,
              help="Disparity map (grey PNG/TIFF 8/16-bit, float TIFF or .npy; 1 = near), or auto: depth "
                   "embedded in INPUT, else an installed model, else the offline default.")
@click.option("--model", default=None, metavar="NAME_OR_PATH",
              help="Depth model for --depth auto (see `refocus models list`) or an .onnx file.")
@click.option("--depth-kind", type=click.Choice(["disparity", "depth"]), default="disparity", show_default=True,
              help="What the map holds: disparity (larger = nearer) or depth (larger = farther).")
@click.option("--focus-disparity", "focus_disparity", required=True, type=float,
              help="Disparity of the focal plane, in [0, 1].")
@click.option("--blur", "K", required=True, type=float,
              help="Blur strength K: CoC radius in pixels per unit of disparity, r = K*(d - focus).")
@click.option("--aperture", type=click.Choice(["circle", "polygon"]), default="circle", show_default=True,
              help="Shape of the bokeh.")
@click.option("--blades", type=int, default=6, show_default=True, help="Number of blades of a polygon aperture.")
@click.option("--rotation", type=float, default=0.0, show_default=True, help="Rotation of the polygon, degrees.")
@click.option("--depth-as-is", "--soft-depth", "soft_depth", is_flag=True, default=False,
              help="Render the depth map exactly as given.  By default its depth edges are cleaned "
                   "up first: a blurred step (as depth models give) is made hard at its middle, and "
                   "a step a few pixels off the photo's outline is moved onto it; exact maps are "
                   "unchanged.  (--soft-depth: the same.)")
@click.option("--highlight-gain", type=float, default=None,
              help="Energy given back to clipped light sources (1 = off; default 6).")
@click.option("--bits", type=click.Choice(["8", "16"]), default=None,
              help="Bit depth of PNG/TIFF/layered output (default: PNG as the input; TIFF, PSD, ORA 16).")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG quality.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where the graphs run; auto = CUDA, DirectML, CoreML if present, else CPU.")
@click.option("--layers", is_flag=True,
              help="Layered output (result, original, disparity, blur mask); with .tif: one page per layer.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (by default they are kept).")
@click.option("--depth-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the disparity map as a 16-bit PNG.")
@click.option("--gdepth", is_flag=True, help="JPEG output carries its depth map (Google GDepth XMP).")
@click.option("--to-srgb", is_flag=True, help="Convert to sRGB instead of keeping the input's ICC profile.")
@click.option("-v", "--verbose", is_flag=True, help="Print what was done and the timings.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def render(input, output, depth, model, depth_kind, focus_disparity, K, aperture, blades, rotation,
           soft_depth, highlight_gain, bits, quality, device, layers, overwrite, depth_out, gdepth, to_srgb, verbose, debug):
    """Render INPUT as a lens focused at --focus-disparity would have captured it."""
    from .errors import RefocusError
    from .highlights import DEFAULT_GAIN
    from .render import render_file
    try:
        info = render_file(input, output, depth=depth, focus_disparity=focus_disparity, K=K, aperture=aperture,
                           blades=blades, rotation=rotation,
                           highlight_gain=DEFAULT_GAIN if highlight_gain is None else highlight_gain,
                           depth_kind=depth_kind, device=device, bits=int(bits) if bits else None,
                           quality=quality, layers=layers, overwrite=overwrite, depth_out=depth_out,
                           gdepth=gdepth, to_srgb=to_srgb, model=model, soft_depth=soft_depth)
    except RefocusError as e:
        _fail(e, debug)
    global _done
    _done = True
    if verbose:
        t = info.timings
        if getattr(info, "depth_source", None):
            click.echo(f"depth: {info.depth_source}", err=True)
        click.echo(f"{output}: max CoC {info.max_coc:.1f} px, working scale 1/{info.scale} "
                   f"({info.working_size[0]}x{info.working_size[1]}), {info.highlight_pixels} highlight px, "
                   f"{info.hardened_pixels} soft depth-edge px made hard, {info.aligned_pixels} px moved onto "
                   f"outlines, device {info.device}", err=True)
        click.echo("timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in t.items()), err=True)


@main.command()
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              help="Folder for the demo renderings (created if needed).")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True)
def demo(outdir, device):
    """Render the bundled sample scene (offline) at three focus settings."""
    from pathlib import Path

    from . import samples
    from .errors import RefocusError
    from .render import render_file
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [("focus_near_circle.jpg", samples.NEAR_DISPARITY, 24.0, "circle"),
            ("focus_mid_hexagon.jpg", samples.MID_DISPARITY, 30.0, "polygon"),
            ("focus_far_circle.jpg", 0.1, 20.0, "circle")]
    for name, focus, K, shape in jobs:
        try:
            info = render_file(samples.PHOTO, out / name, depth=samples.DISPARITY, focus_disparity=focus, K=K,
                               aperture=shape, device=device, overwrite=True)
        except RefocusError as e:
            _fail(e, False)
        click.echo(f"{out / name}: focus disparity {focus}, K {K}, {shape} aperture, "
                   f"{info.timings['total'] * 1000:.0f} ms on {info.device}")


@main.command("photo-info")
@click.argument("photo", type=click.Path(dir_okay=False))
def photo_info(photo):
    """Print what refocus reads from PHOTO: format, size, colour space, camera and lens."""
    from .errors import RefocusError
    from .io.describe import describe
    try:
        for line in describe(photo):
            click.echo(line)
    except RefocusError as e:
        _fail(e, False)


@main.command()
def info():
    """Print the version, onnxruntime, execution providers and the one that will be used."""
    from . import runtime
    d = runtime.describe()
    click.echo(f"refocus {__version__}")
    click.echo(f"python {sys.version.split()[0]}")
    click.echo(f"onnxruntime {d['onnxruntime']}")
    click.echo(f"available execution providers: {', '.join(d['available_providers'])}")
    click.echo(f"device used by --device auto: {d['auto_device']} ({' > '.join(d['auto_providers'])})")
    for line in runtime.graph_lines():
        click.echo(line)


from .cli_depth import depth as _depth_cmd, models as _models_group  # noqa: E402  (click only)

main.add_command(_depth_cmd)
main.add_command(_models_group)

from .cli_batch import batch as _batch_cmd, presets as _presets_group  # noqa: E402  (click only)

main.add_command(_batch_cmd)
main.add_command(_presets_group)

from .cli_gimp import gimp as _gimp_group  # noqa: E402  (click only)

main.add_command(_gimp_group)

if __name__ == "__main__":  # pragma: no cover
    run()
