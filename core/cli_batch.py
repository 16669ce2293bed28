"""``refocus batch`` and ``refocus presets``: folders of photos, and the looks they get.

Registered on the main group in :mod:`refocus.cli`; the work is done by
:mod:`refocus.batch` (imported inside the commands so ``refocus --help`` stays fast).
Every look parameter of :mod:`refocus.params` is a ``batch`` option; explicit flags win
over the preset's values.
"""
from __future__ import annotations

import sys

import click

from . import params as _params

DEVICE_CHOICES = ["auto", "cpu", "cuda", "directml", "coreml"]


def _fail(e: Exception, debug: bool = False):
    if debug:
        raise e
    click.echo(f"refocus: error: {e}", err=True)
    sys.exit(2)


@click.command(context_settings={"max_content_width": 100})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False), metavar="OUTDIR",
              help="Output folder (created if needed); the input folder structure is mirrored in it.")
@click.option("--preset", default=None, metavar="NAME",
              help="Preset: a built-in (portrait, group, landscape, macro, miniature, historic, painting) "
                   "or user preset; see `refocus presets list`.")
@click.option("--preset-file", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Preset from a .json file.")
@click.option("-r", "--recursive", is_flag=True, help="Also process photos in sub-folders.")
@click.option("--format", "formats", default="jpg", show_default=True, metavar="LIST",
              help="Outputs per photo, comma-separated: jpg, tif (16-bit), png, ora, psd (layered: result, "
                   "original, disparity, blur mask), depth (16-bit disparity PNG NAME.depth.png).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
              help="Worker processes (default: from the cores and free memory, ~2.5 GB per 12 MP photo).")
@click.option("--overwrite/--skip-existing", default=False,
              help="Replace existing outputs, or (default) skip photos whose outputs are all there and "
                   "write only the missing ones of the others.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be done; write nothing.")
@click.option("--report", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write a record per file (.json or .csv): source, outputs, depth source, focus, preset, "
                   "settings, timings, error.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG quality.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where the graphs run.")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures.")
@click.option("-v", "--verbose", is_flag=True,
              help="Print each photo's decisions: depth source, focus, blur.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@_params.click_options()
def batch(inputs, outdir, preset, preset_file, recursive, formats, jobs, overwrite, dry_run, report, quality, device,
          quiet, verbose, debug, **look):
    """Refocus every photo in INPUT... (files, folders, globs) into OUTDIR.

    Photos are recognised by content (JPEG, PNG, TIFF, WebP, BMP, HEIC, camera raw);
    other files are counted and skipped.  Outputs are named after the photo
    (IMG_1.CR2 -> IMG_1.jpg; IMG_1.cr2.jpg and IMG_1.jpg.jpg when two photos share a name).
    A second run skips what is done.  Exit status: 0 all done, 1 some photos failed,
    2 bad arguments, 130 interrupted.

    \b
    Example:
      refocus batch ~/Pictures/trip -o trip_refocused --preset portrait --recursive --format jpg,psd
    """
    import signal

    from .batch import progress as bprogress
    from .batch.runner import BatchInterrupted, run
    from .errors import RefocusError

    def _term(signum, frame):
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, _term) if _in_main_thread() else None
    reporter = bprogress.Reporter(quiet=quiet, verbose=verbose)
    try:
        rep = run(list(inputs), outdir, preset=preset, preset_file=preset_file, formats=formats,
                  overrides={k: v for k, v in look.items() if v is not None}, recursive=recursive,
                  jobs=jobs, overwrite=overwrite, dry_run=dry_run, report=report, quality=quality,
                  device=device, progress=reporter)
    except BatchInterrupted as e:
        rep = e.report
        click.echo(f"refocus batch: interrupted: {rep.summary()}", err=True)
        sys.exit(130)
    except RefocusError as e:
        _fail(e, debug)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    if dry_run:
        for line in bprogress.dry_run_lines(rep):
            click.echo(line)
        click.echo(f"dry run: {rep.summary()}; nothing written")
        return
    if debug:
        for f in rep.files:
            if f.get("traceback"):
                click.echo(f["traceback"], err=True)
    if not quiet or rep.failed:
        click.echo(f"refocus batch: {rep.summary()}", err=quiet)
        if rep.failed:
            click.echo("failed:", err=True)
            for f in rep.files:
                if f["status"] == "failed":
                    click.echo(f"  {f['rel']}: {f['error']}", err=True)
    sys.exit(rep.exit_code)


def _in_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


@click.group()
def presets():
    """List and show the presets (built-in and user)."""


@presets.command("list")
def presets_list():
    """Print every preset: name, where it comes from, description."""
    from .errors import RefocusError
    from .presets import available, broken
    try:
        found = available()
    except RefocusError as e:
        _fail(e)
    width = max((len(n) for n in list(found) + list(broken())), default=4)
    for name in sorted(found):
        p = found[name]
        click.echo(f"{name:<{width}}  {p.source:<8}  {p.description}")
    for name, err in sorted(broken().items()):
        click.echo(f"{name:<{width}}  {'user':<8}  NOT USABLE: {err}")


@presets.command("show")
@click.argument("name", metavar="NAME_OR_FILE")
def presets_show(name):
    """Print a preset: its description, its settings and the full resolved parameters."""
    import json

    from .errors import RefocusError
    from .presets import get
    try:
        p = get(name)
        resolved = p.resolve()
    except RefocusError as e:
        _fail(e)
    click.echo(f"name: {p.name}")
    click.echo(f"source: {p.source}" + (f" ({p.path})" if p.path is not None and p.source != str(p.path) else ""))
    click.echo(f"description: {p.description}")
    click.echo("settings (the preset's own values):")
    click.echo(json.dumps(p.settings, indent=2, sort_keys=True))
    click.echo("resolved (with the defaults of the other parameters):")
    for k, v in resolved.as_dict().items():
        mark = "*" if k in p.settings else " "
        click.echo(f"  {mark} {k} = {v}")


@presets.command("path")
def presets_path():
    """Print the folder of user presets (``$REFOCUS_PRESETS`` or the user config folder)."""
    from .presets import user_dir
    click.echo(str(user_dir()))
