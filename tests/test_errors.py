"""Bad input: clear errors (BadInputError / exit code 2), nothing written, input untouched."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import refocus
from refocus.cli import main
from conftest import write_png8


# -- render_linear -------------------------------------------------------------------------

def _ok_args(h=16, w=20):
    img = np.full((h, w, 3), 0.5, np.float32)
    d = np.zeros((h, w), np.float32)
    return img, d


@pytest.mark.parametrize("bad,match", [
    ("nan_disparity", "disparity"),
    ("inf_disparity", "disparity"),
    ("negative_K", "K"),
    ("nan_K", "K"),
    ("shape_mismatch", "shape"),
    ("transposed_disparity", "shape"),
    ("focus_above", "focus_disparity"),
    ("focus_below", "focus_disparity"),
    ("focus_nan", "focus_disparity"),
    ("unknown_aperture", "aperture"),
    ("bad_blades", "blades"),
    ("highlight_gain_below_1", "highlight_gain"),
    ("four_channels", "channels"),
    ("not_an_array", "image"),
    ("empty_image", "empty"),
])
def test_render_linear_rejects_bad_input(bad, match):
    img, d = _ok_args()
    args = dict(image=img, disparity=d, focus_disparity=0.5, K=10.0)
    kw = {}
    if bad == "nan_disparity":
        d[3, 4] = np.nan
    elif bad == "inf_disparity":
        d[0, 0] = np.inf
    elif bad == "negative_K":
        args["K"] = -1.0
    elif bad == "nan_K":
        args["K"] = float("nan")
    elif bad == "shape_mismatch":
        args["disparity"] = np.zeros((16, 21), np.float32)
    elif bad == "transposed_disparity":
        args["disparity"] = np.zeros((20, 16), np.float32)
    elif bad == "focus_above":
        args["focus_disparity"] = 1.5
    elif bad == "focus_below":
        args["focus_disparity"] = -0.01
    elif bad == "focus_nan":
        args["focus_disparity"] = float("nan")
    elif bad == "unknown_aperture":
        kw["aperture"] = "triangle"
    elif bad == "bad_blades":
        kw.update(aperture="polygon", blades=1)
    elif bad == "highlight_gain_below_1":
        kw["highlight_gain"] = 0.5
    elif bad == "four_channels":
        args["image"] = np.zeros((16, 20, 4), np.float32)
    elif bad == "not_an_array":
        args["image"] = [[0.5] * 20] * 16
    elif bad == "empty_image":
        args["image"] = np.zeros((0, 20, 3), np.float32)
        args["disparity"] = np.zeros((0, 20), np.float32)
    with pytest.raises(refocus.BadInputError, match=match):
        refocus.render_linear(args["image"], args["disparity"], args["focus_disparity"], args["K"],
                              device="cpu", **kw)


def test_badinputerror_is_a_valueerror_and_refocuserror():
    img, d = _ok_args()
    d[0, 0] = np.nan
    with pytest.raises(ValueError):
        refocus.render_linear(img, d, 0.5, 1.0)
    with pytest.raises(refocus.RefocusError, match="1 pixel"):
        refocus.render_linear(img, d, 0.5, 1.0)


def test_good_edge_values_are_accepted():
    img, d = _ok_args()
    for focus in (0.0, 1.0):
        out = refocus.render_linear(img, d, focus, 0.0, highlight_gain=1.0, device="cpu")
        assert out.shape == img.shape
    d3 = d[..., None]                                      # (H, W, 1) disparity is accepted
    out = refocus.render_linear(img, d3, 1.0, 4.0, device="cpu")
    assert out.shape == img.shape


# -- the CLI -------------------------------------------------------------------------------

@pytest.fixture
def files(tmp_path, rng):
    """A small photo (PNG and JPEG) with matching / mismatching depth maps and broken files."""
    import cv2
    img = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    f = {"dir": tmp_path}
    f["png"] = tmp_path / "in.png"
    write_png8(f["png"], img)
    f["jpg"] = tmp_path / "in.jpg"
    assert cv2.imwrite(str(f["jpg"]), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    depth = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    f["depth"] = tmp_path / "depth.png"
    write_png8(f["depth"], depth)
    f["depth_half"] = tmp_path / "depth_half.png"          # same aspect, half resolution
    write_png8(f["depth_half"], np.ascontiguousarray(depth[::2, ::2]))
    f["depth_square"] = tmp_path / "depth_square.png"      # other aspect ratio
    write_png8(f["depth_square"], np.ascontiguousarray(depth[:, :40]))
    f["depth_nan"] = tmp_path / "depth_nan.npy"
    dn = np.full((40, 60), 0.5, np.float32)
    dn[5, 5] = np.nan
    np.save(f["depth_nan"], dn)
    f["text_jpg"] = tmp_path / "notes.jpg"
    f["text_jpg"].write_text("this is not a JPEG\n")
    f["empty_jpg"] = tmp_path / "empty.jpg"
    f["empty_jpg"].write_bytes(b"")
    data = f["jpg"].read_bytes()
    f["trunc_jpg"] = tmp_path / "trunc.jpg"
    f["trunc_jpg"].write_bytes(data[:len(data) // 2])
    f["trunc90_jpg"] = tmp_path / "trunc90.jpg"
    f["trunc90_jpg"].write_bytes(data[:len(data) * 9 // 10])
    return f


def _invoke(args):
    runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def _render_args(inp, out, depth, *extra, focus="0.5", blur="10"):
    return ["render", inp, "-o", out, "--depth", depth, "--focus-disparity", focus, "--blur", blur,
            "--device", "cpu", *extra]


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


CASES = {
    # name: (input key or name, depth key, output name, extra args, text that the message must name)
    "missing_input": ("missing.png", "depth", "out.png", [], "missing.png"),
    "missing_depth": ("png", "nodepth.png", "out.png", [], "nodepth.png"),
    "depth_other_aspect": ("png", "depth_square", "out.png", [], "depth_square.png"),
    "depth_nan": ("png", "depth_nan", "out.png", [], "depth_nan.npy"),
    "text_named_jpg": ("text_jpg", "depth", "out.png", [], "notes.jpg"),
    "empty_jpg": ("empty_jpg", "depth", "out.png", [], "empty.jpg"),
    "truncated_jpg_half": ("trunc_jpg", "depth", "out.png", [], "trunc.jpg"),
    "truncated_jpg_90": ("trunc90_jpg", "depth", "out.png", [], "trunc90.jpg"),
    "unknown_output_ext": ("png", "depth", "out.gif", [], "out.gif"),
    "no_output_ext": ("png", "depth", "out", [], "unknown output type (none)"),
    "negative_blur": ("png", "depth", "out.png", ["--blur", "-1"], "blur"),
    "focus_out_of_range": ("png", "depth", "out.png", ["--focus-disparity", "1.5"], "focus_disparity"),
    "too_few_blades": ("png", "depth", "out.png", ["--aperture", "polygon", "--blades", "2"], "--blades"),
    "highlight_gain_below_1": ("png", "depth", "out.png", ["--highlight-gain", "0.5"], "highlight_gain"),
    "output_folder_missing": ("png", "depth", "nowhere/out.png", [], "nowhere"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_bad_input_exits_2_and_writes_nothing(files, case):
    inp, depth, out, extra, named = CASES[case]
    folder = files["dir"]
    inp = files.get(inp, folder / inp)
    depth = files.get(depth, folder / depth)
    out = folder / out
    before = _listing(folder)
    args = _render_args(inp, out, depth)
    # later options override the defaults given by _render_args
    args += extra
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert err.startswith("refocus: error: "), err
    assert named in err, err
    assert "Traceback" not in result.output
    assert err.count("\n") == 1                          # one line, no traceback
    assert not out.exists()
    assert _listing(folder) == before                    # no output, no temporary .part files
    assert not any(n.endswith(".part") for n in _listing(folder))


def test_cli_depth_same_aspect_other_resolution_is_resized(files):
    out = files["dir"] / "out.png"
    result = _invoke(_render_args(files["png"], out, files["depth_half"]))
    assert result.exit_code == 0, result.output
    from refocus import imageio
    assert imageio.read_photo(out).linear.shape == (40, 60, 3)
    # the resized map is used: the same as rendering with a full-size map that is the
    # linear resize of the half-size one
    import cv2
    half = cv2.imread(str(files["depth_half"]), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    full = cv2.resize(half, (60, 40), interpolation=cv2.INTER_LINEAR)
    np.save(files["dir"] / "full.npy", full)
    out2 = files["dir"] / "out2.png"
    assert _invoke(_render_args(files["png"], out2, files["dir"] / "full.npy")).exit_code == 0
    a = cv2.imread(str(out), cv2.IMREAD_UNCHANGED).astype(int)
    b = cv2.imread(str(out2), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(a - b).max() <= 1
    assert not any(n.endswith(".part") for n in _listing(files["dir"]))


@pytest.mark.parametrize("spelling", ["same", "dot_slash", "absolute"])
def test_cli_refuses_to_overwrite_the_input(files, monkeypatch, spelling):
    monkeypatch.chdir(files["dir"])
    original = files["png"].read_bytes()
    before = _listing(files["dir"])
    out = {"same": "in.png", "dot_slash": "./in.png", "absolute": str(files["png"].resolve())}[spelling]
    result = _invoke(_render_args("in.png", out, "depth.png"))
    assert result.exit_code == 2
    assert result.stderr.startswith("refocus: error: ")
    assert "input" in result.stderr and "in.png" in result.stderr
    assert files["png"].read_bytes() == original
    assert _listing(files["dir"]) == before


def test_cli_unknown_device_is_a_usage_error(files):
    result = _invoke(_render_args(files["png"], files["dir"] / "o.png", files["depth"], "--device", "tpu"))
    assert result.exit_code == 2
    assert "--device" in result.stderr
    assert not (files["dir"] / "o.png").exists()


def test_cli_debug_shows_the_exception(files):
    runner = CliRunner()
    with pytest.raises(refocus.BadInputError):
        runner.invoke(main, [str(a) for a in _render_args(files["dir"] / "missing.png", files["dir"] / "o.png",
                                                          files["depth"], "--debug")],
                      catch_exceptions=False)


def test_real_subprocess_reports_error_and_exit_code_2(files):
    out = files["dir"] / "out.jpg"
    before = _listing(files["dir"])
    proc = subprocess.run([sys.executable, "-m", "refocus.cli", *[str(a) for a in _render_args(
        files["trunc_jpg"], out, files["depth"])]], capture_output=True, text=True, timeout=120,
        cwd=files["dir"], env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("refocus: error: ")
    assert "trunc.jpg" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not out.exists() and _listing(files["dir"]) == before


def test_real_refocus_command_renders(files):
    """The installed console script works end to end."""
    import shutil
    exe = shutil.which("refocus")
    if exe is None:
        pytest.skip("the refocus console script is not on PATH")
    out = files["dir"] / "out.png"
    proc = subprocess.run([exe, *[str(a) for a in _render_args(files["png"], out, files["depth"], "-v")]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "max CoC" in proc.stderr
    from refocus import imageio
    assert imageio.read_photo(out).linear.shape == (40, 60, 3)
