"""`refocus depth`, `refocus models ...` and `refocus render --depth auto`, as a user runs them.

REFOCUS_HOME points at a fresh temporary folder in every test (conftest), so the real
user data folder is never read or written.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from refocus.cli import main
from refocus.depth import models

from conftest import make_depth_onnx, write_png8

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ROTATED = DATA / "exif" / "orientation" / "Landscape_6.jpg"
DOWNLOAD_HINT = "refocus models download depth-anything-v2-small"


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@pytest.fixture
def installed_default(tmp_path):
    """The stand-in network installed under the default model's name."""
    folder = models.models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return make_depth_onnx(folder / "depth-anything-v2-small.onnx")


def test_models_path_follows_refocus_home(tmp_path, monkeypatch):
    monkeypatch.setenv("REFOCUS_HOME", str(tmp_path / "rh"))
    r = _cli("models", "path")
    assert r.exit_code == 0 and r.output.strip() == str(tmp_path / "rh" / "models")
    r = _cli("models", "path", "midas-v2.1-small")
    assert r.output.strip() == str(tmp_path / "rh" / "models" / "midas-v2.1-small.onnx")
    # the same from a fresh process (the console script reads the environment itself)
    proc = subprocess.run([sys.executable, "-m", "refocus.cli", "models", "path"], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == str(tmp_path / "rh" / "models")


def test_models_list(installed_default):
    r = _cli("models", "list")
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln for ln in r.output.splitlines() if ln and not ln.startswith(("NAME", "cache"))}
    assert set(lines) == {"depth-anything-v2-small", "depth-anything-v2-small-fp16",
                          "depth-anything-v2-small-int8", "midas-v2.1-small"}
    default = lines["depth-anything-v2-small"]
    assert "(default)" in default and "99.1 MB" in default and "Apache-2.0" in default
    assert " installed " in default and str(installed_default) in default
    assert "not installed" in lines["midas-v2.1-small"] and "MIT" in lines["midas-v2.1-small"]
    assert "https://github.com/isl-org/MiDaS/releases/download/v2_1/model-small.onnx" in lines["midas-v2.1-small"]
    assert f"cache folder: {models.models_dir()}" in r.output


def test_models_verify(installed_default):
    # the stand-in under a pinned name does not match the registry's hash: tampering detected
    r = _cli("models", "verify")
    assert r.exit_code == 2
    digest = hashlib.sha256(installed_default.read_bytes()).hexdigest()
    assert f"depth-anything-v2-small: mismatch: sha256 {digest} but expected afb6a5c2" in r.output
    r = _cli("models", "verify", "midas-v2.1-small")
    assert r.exit_code == 2 and "not installed" in r.output and "refocus models download midas-v2.1-small" in r.output
    # a manually copied unpinned model: reported, not failed
    shutil.copy(installed_default, models.models_dir() / "midas-v2.1-small.onnx")
    r = _cli("models", "verify", "midas-v2.1-small")
    assert r.exit_code == 0 and "unchecked" in r.output


def test_models_download_via_cli_offline(monkeypatch):
    r = _cli("models", "download", "depth-anything-v2-small", "--url", "http://127.0.0.1:9/model.onnx",
             "--timeout", "5")
    assert r.exit_code == 2
    assert "refocus: error: cannot download depth-anything-v2-small: no network?" in r.output
    assert str(models.models_dir() / "depth-anything-v2-small.onnx") in r.output
    r = _cli("models", "download", "no-such-model")
    assert r.exit_code == 2 and "unknown model 'no-such-model'" in r.output


def _displayed_size(path):
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size, im.size


def test_depth_of_an_exif_rotated_photo(tmp_path):
    if not ROTATED.is_file():
        pytest.skip("shared/data not available")
    model = make_depth_onnx(tmp_path / "standin.onnx")
    out = tmp_path / "d.png"
    r = _cli("depth", ROTATED, "-o", out, "--model", model, "--device", "cpu")
    assert r.exit_code == 0, r.output
    (W, H), stored = _displayed_size(ROTATED)
    assert (W, H) != stored                                  # the sample really is rotated
    assert f"{out}: {W}x{H} disparity from model: standin.onnx on CPUExecutionProvider" in r.output
    from PIL import Image
    with Image.open(out) as im:                              # an independent reader
        assert im.size == (W, H) and im.mode in ("I;16", "I")
        d = np.asarray(im, np.float64) / 65535
    # the map follows the upright picture: compare with the stand-in network applied to
    # PIL's upright, downscaled photo (sRGB, same channel weights, ImageNet mean/std)
    from PIL import ImageOps
    with Image.open(ROTATED) as im:
        up = np.asarray(ImageOps.exif_transpose(im).convert("RGB").resize((W // 8, H // 8), Image.BICUBIC),
                        np.float64) / 255
    ref = (((up - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]) * [1, 10, 100]).sum(axis=2)
    small = np.asarray(Image.fromarray(d.astype(np.float32)).resize((W // 8, H // 8), Image.BILINEAR))
    assert np.corrcoef(small.ravel(), ref.ravel())[0, 1] > 0.9
    assert np.ptp(d) > 0.9                                   # robustly normalised to the full range


@pytest.mark.parametrize("ext", [".npy", ".tif"])
def test_depth_float_outputs(tmp_path, photo_files, ext):
    model = make_depth_onnx(tmp_path / "m.onnx")
    out = tmp_path / f"d{ext}"
    r = _cli("depth", photo_files["png"], "-o", out, "--model", model, "--source", "model")
    assert r.exit_code == 0, r.output
    if ext == ".npy":
        d = np.load(out)
    else:
        import tifffile
        d = tifffile.imread(out)
    assert d.shape == (40, 60) and d.dtype == np.float32 and 0 <= d.min() and d.max() <= 1


def test_depth_refuses_bad_output_and_overwriting_input(tmp_path, photo_files):
    r = _cli("depth", photo_files["png"], "-o", tmp_path / "d.jpg", "--source", "model")
    assert r.exit_code == 2 and "unknown depth file type .jpg" in r.output
    before = photo_files["png"].read_bytes()
    r = _cli("depth", photo_files["png"], "-o", photo_files["png"])
    assert r.exit_code == 2 and "refusing to overwrite the input" in r.output
    assert photo_files["png"].read_bytes() == before


def test_source_model_without_a_model_names_the_download_command(tmp_path, photo_files):
    out = tmp_path / "d.png"
    r = _cli("depth", photo_files["png"], "-o", out, "--source", "model")
    assert r.exit_code == 2
    assert r.output.startswith("refocus: error: no depth model is installed") and DOWNLOAD_HINT in r.output
    assert "Traceback" not in r.output and not out.exists()


def test_source_embedded_on_a_plain_photo(tmp_path, photo_files):
    r = _cli("depth", photo_files["png"], "-o", tmp_path / "d.png", "--source", "embedded")
    assert r.exit_code == 2 and "refocus: error:" in r.output
    assert ("no depth map is stored in this file" in r.output)


def test_auto_uses_the_installed_model(tmp_path, photo_files, installed_default):
    r = _cli("depth", photo_files["png"], "-o", tmp_path / "d.png")
    assert r.exit_code == 0, r.output
    assert "disparity from model: Depth Anything V2 Small (fp32) on CPUExecutionProvider" in r.output
    assert DOWNLOAD_HINT not in r.stderr


def test_auto_without_any_model(tmp_path, photo_files):
    out = tmp_path / "d.png"
    r = _cli("depth", photo_files["png"], "-o", out)
    if _has("refocus.depth.fallback"):
        assert r.exit_code == 0, r.output
        assert "disparity from fallback" in r.stdout
        assert r.stderr.count(DOWNLOAD_HINT) == 1 and len(r.stderr.strip().splitlines()) == 1
    else:                                    # a build without the offline default
        assert r.exit_code == 2 and DOWNLOAD_HINT in r.output and not out.exists()


def test_render_depth_auto(tmp_path, photo_files, installed_default):
    out = tmp_path / "out.png"
    r = _cli("render", photo_files["png"], "-o", out, "--focus-disparity", "0.5", "--blur", "8", "--device", "cpu",
             "-v")
    assert r.exit_code == 0, r.output
    assert "depth: model (Depth Anything V2 Small (fp32)" in r.stderr
    from PIL import Image
    with Image.open(out) as im:
        assert im.size == (60, 40)


def test_render_depth_kind_depth_and_aspect_errors(tmp_path, photo_files):
    z = np.tile(np.linspace(1.0, 5.0, 60, dtype=np.float32), (40, 1))     # metres: farther to the right
    np.save(tmp_path / "z.npy", z)
    out = tmp_path / "out.png"
    r = _cli("render", photo_files["png"], "-o", out, "--depth", tmp_path / "z.npy", "--depth-kind", "depth",
             "--focus-disparity", "1.0", "--blur", "10", "--device", "cpu", "-v")
    assert r.exit_code == 0, r.output
    assert "max CoC 10.0 px" in r.stderr                     # the far end is disparity 0: |r| = K * 1
    np.save(tmp_path / "square.npy", np.zeros((40, 40), np.float32))
    r = _cli("render", photo_files["png"], "-o", tmp_path / "o2.png", "--depth", tmp_path / "square.npy",
             "--focus-disparity", "0.5", "--blur", "10")
    assert r.exit_code == 2
    assert "depth map is 40x40 but the photo is 60x40; the aspect ratios differ" in r.output
    assert not (tmp_path / "o2.png").exists()


def test_help_of_new_commands_imports_nothing_heavy():
    code = ("import sys\nfrom refocus.cli import main\n"
            "for argv in (['depth', '--help'], ['models', '--help'], ['models', 'list', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code in (0, None)\n"
            "print(sorted(m for m in ('numpy', 'cv2', 'onnxruntime', 'PIL') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "--source [auto|embedded|model|fallback]" in proc.stdout


def test_depth_of_a_damaged_photo_is_a_clear_error(tmp_path, installed_default):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    r = _cli("depth", bad, "-o", tmp_path / "d.png")
    assert r.exit_code == 2 and r.output.startswith(f"refocus: error: {bad}")
    write_png8(tmp_path / "ok.png", np.zeros((4, 4, 3), np.uint8))
    assert _cli("depth", tmp_path / "ok.png", "-o", tmp_path / "nofolder" / "d.png").exit_code == 2


def test_render_depth_auto_prefers_embedded_depth_and_its_unblurred_original(tmp_path, installed_default):
    """A Google Lens Blur JPEG: the embedded map wins over an installed model, and the
    rendering starts from the unblurred GImage original, not the blurred primary image."""
    src = DATA / "embedded_depth" / "gcam_lensblur_gdepth.jpg"
    if not src.is_file():
        pytest.skip("shared/data not available")
    out = tmp_path / "out.png"
    r = _cli("render", src, "-o", out, "--focus-disparity", "0.5", "--blur", "0", "--device", "cpu", "-v")
    assert r.exit_code == 0, r.output
    assert "depth: embedded (GDepth" in r.stderr
    from PIL import Image
    from refocus.depth.embedded import read_embedded_depth
    original = read_embedded_depth(src).original_bytes
    import io
    with Image.open(io.BytesIO(original)) as im:
        want = np.asarray(im.convert("RGB"), np.int16)
    with Image.open(out) as im:
        got = np.asarray(im.convert("RGB"), np.int16)
    with Image.open(src) as im:
        primary = np.asarray(im.convert("RGB"), np.int16)
    assert got.shape == want.shape
    # K = 0: the output is the unblurred original (up to 8-bit rounding), not the primary image
    assert np.abs(got - want).mean() < 1.0
    assert np.abs(got - primary).mean() > 2.0


def test_render_model_with_a_depth_file_is_an_error(tmp_path, photo_files, installed_default):
    np.save(tmp_path / "d.npy", np.zeros((40, 60), np.float32))
    out = tmp_path / "out.png"
    r = _cli("render", photo_files["png"], "-o", out, "--depth", tmp_path / "d.npy",
             "--model", "depth-anything-v2-small", "--focus-disparity", "0.5", "--blur", "8")
    assert r.exit_code == 2
    assert "--model" in r.output and "--depth auto" in r.output
    assert not out.exists()
