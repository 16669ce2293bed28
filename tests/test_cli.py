"""The refocus command: fast --help/--version (no heavy imports), info, render."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import refocus
from refocus import onnx_models
from refocus.cli import main

HEAVY = ("onnxruntime", "numpy", "cv2", "PIL", "tifffile", "onnx")


def _run(args, timeout=60):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _refocus_cmd():
    exe = shutil.which("refocus")
    return [exe] if exe else [sys.executable, "-m", "refocus.cli"]


@pytest.mark.parametrize("flag", ["--version", "--help", "-h"])
def test_version_and_help_via_subprocess(flag):
    t0 = time.perf_counter()
    proc = _run([*_refocus_cmd(), flag])
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    if flag == "--version":
        assert proc.stdout.strip() == f"refocus, version {refocus.__version__}"
    else:
        assert "render" in proc.stdout and "info" in proc.stdout
    assert elapsed < 10          # generous: a loaded test machine; the import check below is the real test


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["render", "--help"], ["info", "--help"]])
def test_help_and_version_import_nothing_heavy(argv):
    code = (
        "import sys\n"
        "from refocus.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_importtime_of_help_has_no_onnxruntime():
    proc = _run([sys.executable, "-X", "importtime", "-m", "refocus.cli", "--help"])
    assert proc.returncode == 0
    assert "Usage" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert {"refocus", "refocus._version", "click"} <= imported     # the trace is there ...
    for mod in ("onnxruntime", "numpy", "cv2"):                     # ... without these
        assert not [m for m in imported if m == mod or m.startswith(mod + ".")], mod


def test_the_command_exits_at_once_after_a_render_with_everything_written(photo_files, tmp_path):
    """`refocus render` ends with os._exit after its output is in place (cli.run): the file is
    whole (read back by Pillow), what -v printed reaches a pipe, and errors keep exit code 2."""
    from PIL import Image
    out = tmp_path / "out.jpg"
    base = [*_refocus_cmd(), "render", str(photo_files["png"]), "--depth", str(photo_files["depth"]),
            "--focus-disparity", "0.5", "--blur", "30", "--device", "cpu"]
    proc = _run([*base, "-o", str(out), "-v"])
    assert proc.returncode == 0, proc.stderr
    assert "timings:" in proc.stderr and proc.stderr.endswith("\n")
    with Image.open(out) as im:
        im.load()
        assert im.size == (60, 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.png", "depth.png", "out.jpg"])  # no temp left
    again = _run([*base, "-o", str(out)])                   # exists, no --overwrite
    assert again.returncode == 2 and "exists" in again.stderr


def test_render_help_lists_options():
    result = CliRunner().invoke(main, ["render", "--help"])
    assert result.exit_code == 0
    for opt in ("--depth", "--focus-disparity", "--blur", "--aperture", "--blades", "--rotation",
                "--highlight-gain", "--bits", "--device", "--quality"):
        assert opt in result.output, opt


def test_info_prints_provider_and_onnxruntime_version():
    import onnxruntime
    proc = _run([*_refocus_cmd(), "info"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "CPUExecutionProvider" in out
    assert f"onnxruntime {onnxruntime.__version__}" in out
    assert f"refocus {refocus.__version__}" in out
    assert out.count(": ok (") == len(onnx_models.GRAPH_VERSIONS) == 3 and "PROBLEM" not in out   # every graph loads


def test_info_reports_a_stale_graph(monkeypatch):
    from refocus import onnx_models, runtime
    monkeypatch.setitem(onnx_models.GRAPH_VERSIONS, "lens_blur", "0.0.0-test")
    monkeypatch.setattr(runtime, "_sessions", {})
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0
    assert "graph lens_blur: PROBLEM" in result.output
    assert "python -m refocus.onnx_models" in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["blur"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_render_requires_its_options(tmp_path):
    # --depth is optional since it defaults to auto (issue 3); the focus and the blur are not
    result = CliRunner().invoke(main, ["render", str(tmp_path / "x.jpg"), "-o", str(tmp_path / "y.jpg")])
    assert result.exit_code == 2
    assert "--focus-disparity" in result.output
    assert not (tmp_path / "y.jpg").exists()


def test_verbose_render_reports_scale_and_timings(photo_files, tmp_path):
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["render", str(photo_files["png"]), "-o", str(out), "--depth",
                                       str(photo_files["depth"]), "--focus-disparity", "0.5", "--blur", "60",
                                       "--device", "cpu", "-v"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    err = result.stderr
    assert "max CoC 30.0 px" in err
    assert "working scale 1/" in err and "device cpu" in err
    assert "timings:" in err and "render" in err
