"""``refocus gimp install|uninstall|status``: the GIMP 3 plug-in.

Registered on the main group in :mod:`refocus.cli`; the work is in
:mod:`refocus.plugin_gimp.install` (imported inside the commands).
"""
from __future__ import annotations

import sys

import click


def _fail(e: Exception):
    click.echo(f"refocus: error: {e}", err=True)
    sys.exit(2)


@click.group()
def gimp():
    """Install the GIMP 3 plug-in (Filters > Blur > Refocus (Depth of Field)...)."""


@gimp.command()
@click.option("--gimp-dir", default=None, type=click.Path(file_okay=False),
              help="GIMP 3 profile folder (or its plug-ins folder). Default: every GIMP 3 profile "
                   "found (Linux, Flatpak, Windows, macOS), else the usual one.")
@click.option("--python", "python", default=None, type=click.Path(dir_okay=False),
              help="Python that runs refocus for GIMP (default: this one). It must have refocus "
                   "installed; GIMP's own Python usually cannot import onnxruntime.")
def install(gimp_dir, python):
    """Install (or update) the plug-in and record which Python runs refocus."""
    from .errors import RefocusError
    from .plugin_gimp import install as inst
    try:
        folders = inst.install(gimp_dir, python)
    except RefocusError as e:
        _fail(e)
    used = python or sys.executable
    for f in folders:
        click.echo(f"installed {f}")
    click.echo(f"refocus runs with {used}; restart GIMP, then use Filters > Blur > Refocus (Depth of Field)...")


@gimp.command()
@click.option("--gimp-dir", default=None, type=click.Path(file_okay=False),
              help="GIMP 3 profile folder (or its plug-ins folder). Default: all known places.")
def uninstall(gimp_dir):
    """Remove the plug-in (only refocus's own folder; other plug-ins are left alone)."""
    from .errors import RefocusError
    from .plugin_gimp import install as inst
    try:
        removed = inst.uninstall(gimp_dir)
    except RefocusError as e:
        _fail(e)
    if not removed:
        click.echo("the refocus plug-in was not installed there; nothing removed")
    for f in removed:
        click.echo(f"removed {f}")


@gimp.command()
@click.option("--gimp-dir", default=None, type=click.Path(file_okay=False),
              help="GIMP 3 profile folder (or its plug-ins folder). Default: all known places.")
def status(gimp_dir):
    """Where the plug-in is installed and which Python it runs refocus with."""
    from .plugin_gimp import install as inst
    found = False
    for rec in inst.status(gimp_dir):
        if not rec["installed"]:
            click.echo(f"{rec['folder']}: not installed")
            continue
        found = True
        warn = "" if rec["python_ok"] else "  (MISSING: run `refocus gimp install` again)"
        click.echo(f"{rec['folder']}: refocus {rec['version']}, installed {rec['installed_at']}")
        click.echo(f"  python: {rec['python']}{warn}")
        if not rec["executable"]:
            click.echo("  warning: the plug-in script is not executable; run `refocus gimp install` again")
    if not found:
        click.echo("not installed; run `refocus gimp install`")
