"""Install, remove and describe the GIMP 3 plug-in (``refocus gimp install|uninstall|status``).

The plug-in folder holds::

    <plug-ins>/refocus-gimp/refocus-gimp.py     the script GIMP runs (executable; stdlib + gi only)
    <plug-ins>/refocus-gimp/refocus_bridge.py   the worker client (copy of refocus.plugin_gimp.bridge)
    <plug-ins>/refocus-gimp/refocus-gimp.json   parameter declarations, presets, the Python to run

The JSON is generated at install time from :func:`refocus.params.gimp_arguments`, so the
GIMP dialog and PDB arguments are the CLI's parameters; re-run the install after upgrading
refocus.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .._version import __version__
from ..errors import BadInputError, OutputError

PLUGIN_NAME = "refocus-gimp"
SCRIPT = PLUGIN_NAME + ".py"
BRIDGE = "refocus_bridge.py"
CONFIG = PLUGIN_NAME + ".json"
CONFIG_FORMAT = 1
HERE = Path(__file__).resolve().parent


def candidate_dirs() -> list:
    """GIMP 3's user plug-in folders on this platform (existing or not), most usual first."""
    home = Path.home()
    out = []
    if sys.platform.startswith("win"):
        appdata = os.environ.get("APPDATA")
        if appdata:
            out.append(Path(appdata) / "GIMP" / "3.0" / "plug-ins")
    elif sys.platform == "darwin":
        out.append(home / "Library" / "Application Support" / "GIMP" / "3.0" / "plug-ins")
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        out.append((Path(xdg) if xdg else home / ".config") / "GIMP" / "3.0" / "plug-ins")
        out.append(home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0" / "plug-ins")
    return out


def plugin_dirs(gimp_dir=None) -> list:
    """Where to install: ``gimp_dir`` (a GIMP profile or its plug-ins folder), else every
    existing default plug-in folder, else the first default (created)."""
    if gimp_dir:
        d = Path(gimp_dir).expanduser()
        return [d if d.name == "plug-ins" else d / "plug-ins"]
    existing = [d for d in candidate_dirs() if d.parent.is_dir()]
    return existing or candidate_dirs()[:1]


def config_record(python: str) -> dict:
    """The JSON the plug-in reads: parameter declarations, presets, interpreter, version."""
    from .. import params, presets
    try:
        names = sorted(presets.available())
    except Exception as e:            # a broken user preset must not block the install
        print(f"refocus: warning: presets not listed in GIMP: {e}", file=sys.stderr)
        names = []
    return {"refocus_gimp": CONFIG_FORMAT, "refocus_version": __version__, "python": python,
            "params_version": params.PARAMS_VERSION, "params": params.gimp_arguments(), "presets": names,
            "timeout": None, "mode": "auto",
            "installed": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def check_python(python: str) -> None:
    """Refuse an interpreter that cannot run the worker (it must have refocus installed)."""
    p = Path(python)
    if not p.is_file():
        raise BadInputError(f"--python: {python} is not a file; give the python executable of the "
                            "environment where refocus is installed")
    try:
        r = subprocess.run([str(p), "-c", "import refocus.plugin_gimp.worker, onnxruntime"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BadInputError(f"--python: could not run {python}: {e}") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise BadInputError(f"--python: {python} cannot import refocus and onnxruntime ({last}); "
                            "install refocus into that environment or give another --python")


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    from ..imageio import atomic_write
    atomic_write(path, data, mode)


def install(gimp_dir=None, python: str | None = None) -> list:
    """Install the plug-in; returns the plug-in folders written."""
    if python:
        python = os.path.abspath(os.path.expanduser(python))
        check_python(python)
    else:
        python = sys.executable
    record = json.dumps(config_record(python), indent=1).encode("utf-8")
    done = []
    for pdir in plugin_dirs(gimp_dir):
        folder = pdir / PLUGIN_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder / SCRIPT, (HERE / SCRIPT).read_bytes(), 0o755)
            _write(folder / BRIDGE, (HERE / "bridge.py").read_bytes())
            _write(folder / CONFIG, record)
        except OSError as e:
            raise OutputError(f"{folder}: could not install the GIMP plug-in ({e.strerror or e}); "
                              "check the folder's permissions or give another --gimp-dir") from None
        done.append(folder)
    return done


def _ours(folder: Path) -> bool:
    cfg = folder / CONFIG
    if not cfg.is_file():
        return False
    try:
        return "refocus_gimp" in json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def uninstall(gimp_dir=None) -> list:
    """Remove the plug-in folder(s) refocus installed; other plug-ins are left alone."""
    dirs = plugin_dirs(gimp_dir) if gimp_dir else candidate_dirs()
    removed = []
    for pdir in dirs:
        folder = pdir / PLUGIN_NAME
        if folder.is_dir() and _ours(folder):
            try:
                shutil.rmtree(folder)
            except OSError as e:
                raise OutputError(f"{folder}: could not remove the plug-in ({e.strerror or e})") from None
            removed.append(folder)
    return removed


def status(gimp_dir=None) -> list:
    """One dict per plug-in folder looked at: path, installed, version, python, python_ok."""
    dirs = plugin_dirs(gimp_dir) if gimp_dir else candidate_dirs()
    out = []
    for pdir in dirs:
        folder = pdir / PLUGIN_NAME
        rec = {"folder": str(folder), "installed": False}
        if _ours(folder):
            cfg = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
            script = folder / SCRIPT
            rec.update(installed=True, version=cfg.get("refocus_version"), python=cfg.get("python"),
                       python_ok=bool(cfg.get("python")) and Path(cfg["python"]).is_file(),
                       executable=script.is_file() and os.access(script, os.X_OK),
                       installed_at=cfg.get("installed"))
        out.append(rec)
    return out
