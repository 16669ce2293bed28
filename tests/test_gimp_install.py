"""``refocus gimp install|uninstall|status`` into temporary folders (no GIMP needed)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from refocus import params, presets
from refocus.cli import main
from refocus.plugin_gimp import install as inst

HERE = Path(__file__).resolve().parent
PLUGIN_SRC = HERE.parent / "plugin_gimp"


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_install_writes_the_plugin_folder(tmp_path):
    r = _run("gimp", "install", "--gimp-dir", str(tmp_path / "profile"))
    assert r.exit_code == 0, r.output
    folder = tmp_path / "profile" / "plug-ins" / "refocus-gimp"
    assert f"installed {folder}" in r.output
    script = folder / "refocus-gimp.py"                        # folder and script named alike
    assert script.is_file() and os.access(script, os.X_OK)
    assert script.read_bytes() == (PLUGIN_SRC / "refocus-gimp.py").read_bytes()
    assert (folder / "refocus_bridge.py").read_bytes() == (PLUGIN_SRC / "bridge.py").read_bytes()
    rec = json.loads((folder / "refocus-gimp.json").read_text())
    assert rec["params"] == params.gimp_arguments()              # the CLI's declarations, as JSON
    assert rec["python"] == sys.executable
    assert rec["presets"] == sorted(presets.available())
    from refocus import __version__
    assert rec["refocus_version"] == __version__


def test_install_regenerates_stale_declarations(tmp_path):
    folder = tmp_path / "plug-ins" / "refocus-gimp"
    assert _run("gimp", "install", "--gimp-dir", str(tmp_path / "plug-ins")).exit_code == 0
    cfg = folder / "refocus-gimp.json"
    old = json.loads(cfg.read_text())
    old["params"] = old["params"][:2]
    cfg.write_text(json.dumps(old))
    assert _run("gimp", "install", "--gimp-dir", str(tmp_path / "plug-ins")).exit_code == 0
    assert json.loads(cfg.read_text())["params"] == params.gimp_arguments()
    assert not (tmp_path / "plug-ins" / "plug-ins").exists()     # a plug-ins folder is used as is


def test_user_presets_are_offered(tmp_path, monkeypatch):
    udir = tmp_path / "presets"
    udir.mkdir()
    (udir / "dreamy.json").write_text(json.dumps({"refocus_preset": 1, "name": "dreamy", "description": "",
                                                  "settings": {"strength": 4.0}}))
    monkeypatch.setenv("REFOCUS_PRESETS", str(udir))
    assert _run("gimp", "install", "--gimp-dir", str(tmp_path / "g")).exit_code == 0
    rec = json.loads((tmp_path / "g" / "plug-ins" / "refocus-gimp" / "refocus-gimp.json").read_text())
    assert "dreamy" in rec["presets"] and "portrait" in rec["presets"]


def test_install_with_a_python_that_lacks_refocus_is_refused(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named refocus' >&2\nexit 1\n")
    fake.chmod(0o755)
    r = _run("gimp", "install", "--gimp-dir", str(tmp_path / "g"), "--python", str(fake))
    assert r.exit_code == 2
    assert "refocus: error: --python" in r.output and "No module named refocus" in r.output
    assert not (tmp_path / "g" / "plug-ins" / "refocus-gimp").exists()
    r = _run("gimp", "install", "--gimp-dir", str(tmp_path / "g"), "--python", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "is not a file" in r.output


def test_install_with_an_explicit_python_records_it(tmp_path):
    r = _run("gimp", "install", "--gimp-dir", str(tmp_path / "g"), "--python", sys.executable)
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "g" / "plug-ins" / "refocus-gimp" / "refocus-gimp.json").read_text())
    assert rec["python"] == os.path.abspath(sys.executable)


def test_uninstall_removes_only_refocus(tmp_path):
    pdir = tmp_path / "g" / "plug-ins"
    other = pdir / "other-plugin"
    other.mkdir(parents=True)
    (other / "other-plugin.py").write_text("print('hi')\n")
    assert _run("gimp", "install", "--gimp-dir", str(tmp_path / "g")).exit_code == 0
    r = _run("gimp", "uninstall", "--gimp-dir", str(tmp_path / "g"))
    assert r.exit_code == 0 and "removed" in r.output
    assert not (pdir / "refocus-gimp").exists()
    assert (other / "other-plugin.py").read_text() == "print('hi')\n"
    r = _run("gimp", "uninstall", "--gimp-dir", str(tmp_path / "g"))
    assert r.exit_code == 0 and "nothing removed" in r.output


def test_uninstall_leaves_a_foreign_folder_of_the_same_name(tmp_path):
    folder = tmp_path / "plug-ins" / "refocus-gimp"
    folder.mkdir(parents=True)
    (folder / "refocus-gimp.py").write_text("# someone else's\n")
    r = _run("gimp", "uninstall", "--gimp-dir", str(tmp_path / "plug-ins"))
    assert r.exit_code == 0 and "nothing removed" in r.output
    assert (folder / "refocus-gimp.py").exists()


def test_status_reports_place_and_interpreter(tmp_path):
    r = _run("gimp", "status", "--gimp-dir", str(tmp_path / "g"))
    assert r.exit_code == 0 and "not installed" in r.output
    assert _run("gimp", "install", "--gimp-dir", str(tmp_path / "g")).exit_code == 0
    r = _run("gimp", "status", "--gimp-dir", str(tmp_path / "g"))
    assert str(tmp_path / "g" / "plug-ins" / "refocus-gimp") in r.output
    assert f"python: {sys.executable}" in r.output and "MISSING" not in r.output
    cfg = tmp_path / "g" / "plug-ins" / "refocus-gimp" / "refocus-gimp.json"
    rec = json.loads(cfg.read_text())
    rec["python"] = str(tmp_path / "gone" / "python")
    cfg.write_text(json.dumps(rec))
    r = _run("gimp", "status", "--gimp-dir", str(tmp_path / "g"))
    assert "MISSING" in r.output


@pytest.mark.skipif(sys.platform != "linux", reason="Linux default folders")
def test_default_folders_on_linux(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    native = tmp_path / ".config" / "GIMP" / "3.0" / "plug-ins"
    flatpak = tmp_path / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0" / "plug-ins"
    # no GIMP 3 profile yet: the usual Linux one
    assert inst.plugin_dirs() == [native]
    # a Flatpak GIMP 3 profile only: that one
    flatpak.parent.mkdir(parents=True)
    assert inst.plugin_dirs() == [flatpak]
    # both: both, and the command says where
    native.parent.mkdir(parents=True)
    r = _run("gimp", "install")
    assert r.exit_code == 0, r.output
    for d in (native, flatpak):
        assert (d / "refocus-gimp" / "refocus-gimp.py").is_file()
        assert f"installed {d / 'refocus-gimp'}" in r.output
    r = _run("gimp", "uninstall")
    assert not (native / "refocus-gimp").exists() and not (flatpak / "refocus-gimp").exists()


def test_default_folders_on_windows_and_macos(tmp_path, monkeypatch):
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData" / "Roaming"))
    monkeypatch.setattr(sys, "platform", "win32")
    assert inst.candidate_dirs() == [tmp_path / "AppData" / "Roaming" / "GIMP" / "3.0" / "plug-ins"]
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert inst.candidate_dirs() == [tmp_path / "Library" / "Application Support" / "GIMP" / "3.0" / "plug-ins"]


def _module_level_imports(path):
    tree = ast.parse(Path(path).read_text())
    names = set()
    for node in tree.body:                                      # module level only
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return names


def test_gimp_side_has_no_heavy_imports():
    assert _module_level_imports(PLUGIN_SRC / "refocus-gimp.py") <= {"json", "os", "sys", "gi"}
    assert _module_level_imports(PLUGIN_SRC / "bridge.py") <= {
        "__future__", "json", "os", "queue", "shutil", "signal", "subprocess", "tempfile", "threading", "time"}


def test_installed_bridge_runs_without_site_packages(tmp_path):
    """The copy GIMP loads needs nothing but the standard library (python -S: no numpy, no refocus)."""
    assert _run("gimp", "install", "--gimp-dir", str(tmp_path / "g")).exit_code == 0
    bridge_py = tmp_path / "g" / "plug-ins" / "refocus-gimp" / "refocus_bridge.py"
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('b', {str(bridge_py)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "assert 'numpy' not in sys.modules and 'refocus' not in sys.modules\n"
            "print(m.PROTOCOL, m.choose_mode({}))\n")
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "worker"]                 # no refocus here: the worker is used


def test_gimp_help_lists_the_commands():
    r = _run("gimp", "--help")
    assert r.exit_code == 0
    for cmd in ("install", "uninstall", "status"):
        assert cmd in r.output
    r = _run("--help")
    assert "gimp" in r.output
