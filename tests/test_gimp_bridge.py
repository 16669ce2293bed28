"""The GIMP plug-in's worker bridge, without GIMP: real worker subprocesses on small arrays."""
from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refocus import params
from refocus.pipeline import refocus_image
from refocus.plugin_gimp import bridge, worker

PY = sys.executable


@pytest.fixture
def folder():
    d = bridge.new_request_dir()
    yield d
    bridge.remove_request_dir(d)


def _arr(folder, resp, name):
    spec = resp["arrays"][name]
    return np.frombuffer(bridge.read_array(folder, spec), np.float32).reshape(spec["shape"])


def _scene(rng, C=3):
    img = rng.random((36, 48, C)).astype(np.float32)
    depth = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (36, 1))
    return img, depth


def test_request_folder_is_private(folder):
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_worker_round_trip_matches_the_pipeline(folder, rng):
    img, depth = _scene(rng, 4)                       # RGBA: alpha travels through untouched
    settings = {"blur": "9", "focus": "disparity", "focus_disparity": "0.8", "shape": "polygon", "blades": 5}
    bridge.write_request(folder, {"mode": "refocus", "settings": settings,
                                  "outputs": ["result", "disparity", "blur_mask"]},
                         {"image": (img.tobytes(), img.shape), "depth": (depth.tobytes(), depth.shape)})
    seen = []
    resp = bridge.run_worker(folder, PY, timeout=120, progress=seen.append)
    out = _arr(folder, resp, "result")
    assert out.shape == (36, 48, 4)
    assert np.array_equal(out[..., 3], img[..., 3])
    ref = refocus_image(img[..., :3], params.resolve(settings), disparity=depth, device="cpu")
    np.testing.assert_allclose(out[..., :3], ref.linear, atol=2e-5)
    np.testing.assert_allclose(_arr(folder, resp, "disparity")[..., 0], depth, atol=1e-6)
    np.testing.assert_allclose(_arr(folder, resp, "blur_mask")[..., 0], ref.blur_mask, atol=1e-6)
    assert resp["K"] == pytest.approx(9.0) and resp["depth_source"] == "layer"
    assert resp["focus"]["how"].startswith("disparity") or resp["focus"]["disparity"] == pytest.approx(0.8)
    # progress forwarded in order, ending at 1
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_grey_image_and_selection_mask(folder, rng):
    img, _ = _scene(rng, 1)
    mask = np.zeros((36, 48, 1), np.float32)
    mask[8:28, 12:36] = 1
    bridge.write_request(folder, {"mode": "refocus", "settings": {"blur": "8", "focus": "subject",
                                                                   "depth": "fallback"}},
                         {"image": (img.tobytes(), img.shape), "mask": (mask.tobytes(), mask.shape)})
    resp = bridge.run_worker(folder, PY, timeout=120)
    out = _arr(folder, resp, "result")
    assert out.shape == (36, 48, 1)
    core = mask[..., 0] > 0
    assert np.abs(out - img)[core].max() < 1e-4               # the selected subject stays sharp
    assert np.abs(out - img)[~core].mean() > 0.02              # the rest is blurred
    assert any("subject" in n for n in resp["notes"])


def test_depth_mode_returns_only_the_map(folder, rng):
    img, _ = _scene(rng, 3)
    bridge.write_request(folder, {"mode": "depth", "settings": {"depth": "fallback"}, "outputs": ["disparity"]},
                         {"image": (img.tobytes(), img.shape)})
    resp = bridge.run_worker(folder, PY, timeout=120)
    assert set(resp["arrays"]) == {"disparity"}
    d = _arr(folder, resp, "disparity")
    assert d.shape == (36, 48, 1) and d.min() >= 0 and d.max() <= 1 and d.std() > 0
    assert resp["depth_source"].startswith("fallback")


def test_core_error_is_carried_back_with_its_message(folder, rng):
    img, _ = _scene(rng)
    bridge.write_request(folder, {"mode": "refocus", "settings": {"blades": 99}},
                         {"image": (img.tobytes(), img.shape)})
    with pytest.raises(bridge.BridgeError) as ei:
        bridge.run_worker(folder, PY, timeout=120)
    assert ei.value.kind == "BadInputError"
    assert "blades" in str(ei.value) and "99" in str(ei.value) and "3..16" in str(ei.value)


def test_unknown_preset_lists_the_available_ones(folder, rng):
    img, _ = _scene(rng)
    bridge.write_request(folder, {"mode": "refocus", "settings": {}, "preset": "no-such-look"},
                         {"image": (img.tobytes(), img.shape)})
    with pytest.raises(bridge.BridgeError, match="no-such-look.*portrait"):
        bridge.run_worker(folder, PY, timeout=120)


def test_preset_values_apply_and_explicit_values_win(folder, rng, monkeypatch):
    from refocus import presets
    img, depth = _scene(rng)
    arrays = {"image": (img.tobytes(), img.shape), "depth": (depth.tobytes(), depth.shape)}
    bridge.write_request(folder, {"mode": "refocus", "settings": {"blur": "5"}, "preset": "portrait"}, arrays)
    resp = bridge.run_worker(folder, PY, timeout=120)
    ref = refocus_image(img, presets.get("portrait").resolve({"blur": 5}), disparity=depth, device="cpu")
    np.testing.assert_allclose(_arr(folder, resp, "result"), ref.linear, atol=2e-5)
    assert resp["K"] == pytest.approx(5.0)


def test_worker_exit_status_and_error_response(folder, rng):
    import subprocess
    img, _ = _scene(rng)
    bridge.write_request(folder, {"mode": "refocus", "settings": {"focus": "sideways"}},
                         {"image": (img.tobytes(), img.shape)})
    p = subprocess.run([PY, "-m", "refocus.plugin_gimp.worker", folder], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    resp = json.loads(open(os.path.join(folder, "response.json")).read())
    assert resp["ok"] is False and resp["error"]["type"] == "BadInputError"
    assert "sideways" in resp["error"]["message"]
    assert "PROGRESS" not in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("bad, message", [
    ({"protocol": 99}, "protocol 99"),
    ({"mode": "paint"}, "mode 'paint'"),
    ({"arrays": {"image": {"file": "../image.f32", "shape": [36, 48, 3], "dtype": "float32"}}}, "bad file name"),
    ({"arrays": {"image": {"file": "image.f32", "shape": [36, 48, 4], "dtype": "float32"}}}, "bytes, expected"),
    ({"arrays": {"image": {"file": "image.f32", "shape": [36, 48, 3], "dtype": "object"}}}, "dtype 'object'"),
])
def test_bad_request_is_refused_with_exit_3(folder, rng, bad, message):
    img, _ = _scene(rng)
    bridge.write_request(folder, {"mode": "refocus", "settings": {}}, {"image": (img.tobytes(), img.shape)})
    path = os.path.join(folder, "request.json")
    req = json.load(open(path))
    req.update(bad)
    json.dump(req, open(path, "w"))
    with pytest.raises(bridge.BridgeError, match=message.replace("(", r"\(")) as ei:
        bridge.run_worker(folder, PY, timeout=120)
    assert ei.value.kind == "RequestError"


def test_no_pickle_is_ever_loaded(folder, rng, tmp_path):
    """An array file holding a pickle that would run code is only ever read as raw floats."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Evil())
    n = -(-len(payload) // 4)
    with open(os.path.join(folder, "image.f32"), "wb") as f:
        f.write(payload.ljust(4 * n, b"\0"))
    req = {"protocol": bridge.PROTOCOL, "mode": "refocus", "settings": {},
           "arrays": {"image": {"file": "image.f32", "shape": [1, n], "dtype": "float32"}}}
    json.dump(req, open(os.path.join(folder, "request.json"), "w"))
    try:                        # raw floats (here finite, so processed) or refused: never unpickled
        bridge.run_worker(folder, PY, timeout=120)
    except bridge.BridgeError:
        pass
    assert not marker.exists()


def _fake_python(tmp_path, body: str) -> str:
    p = tmp_path / "fake-python"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as the interpreter")
def test_timeout_kills_the_worker(folder, tmp_path, rng):
    pidfile = tmp_path / "pid"
    fake = _fake_python(tmp_path, f'echo $$ > "{pidfile}"\necho "PROGRESS depth 0.5"\nexec sleep 60')
    img, _ = _scene(rng)
    bridge.write_request(folder, {"mode": "refocus"}, {"image": (img.tobytes(), img.shape)})
    t0 = time.monotonic()
    seen = []
    with pytest.raises(bridge.BridgeError, match="did not finish within 1.5 s.*REFOCUS_GIMP_TIMEOUT") as ei:
        bridge.run_worker(folder, fake, timeout=1.5, progress=seen.append)
    assert time.monotonic() - t0 < 10
    assert ei.value.kind == "TimeoutError"
    assert seen == [pytest.approx(0.225)]                        # half of the depth stage's share
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):                      # killed, and reaped
        os.kill(pid, 0)


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as the interpreter")
def test_crash_without_response_quotes_the_log(folder, tmp_path, rng):
    fake = _fake_python(tmp_path, 'echo "ImportError: libonnxruntime.so: cannot open shared object" >&2\nexit 5')
    img, _ = _scene(rng)
    bridge.write_request(folder, {"mode": "refocus"}, {"image": (img.tobytes(), img.shape)})
    with pytest.raises(bridge.BridgeError, match="(?s)status 5.*libonnxruntime") as ei:
        bridge.run_worker(folder, fake, timeout=30)
    assert ei.value.kind == "WorkerCrash"


def test_missing_interpreter_says_how_to_fix(folder, tmp_path):
    with pytest.raises(bridge.BridgeError, match="does not exist.*refocus gimp install"):
        bridge.run_worker(folder, str(tmp_path / "gone" / "python"), timeout=5)
    with pytest.raises(bridge.BridgeError, match="refocus gimp install"):
        bridge.run_worker(folder, "", timeout=5)


def test_inprocess_mode_gives_the_same_result(tmp_path, rng, monkeypatch):
    img, depth = _scene(rng)
    arrays = {"image": (img.tobytes(), img.shape), "depth": (depth.tobytes(), depth.shape)}
    req = {"mode": "refocus", "settings": {"blur": "7", "focus": "disparity", "focus_disparity": "0.3"}}
    out = {}
    for mode in ("inprocess", "worker"):
        monkeypatch.setenv("REFOCUS_GIMP_MODE", mode)
        d = bridge.new_request_dir()
        try:
            bridge.write_request(d, req, arrays)
            resp = bridge.run(d, {"python": PY})
            out[mode] = _arr(d, resp, "result")
        finally:
            bridge.remove_request_dir(d)
    np.testing.assert_array_equal(out["inprocess"], out["worker"])
    monkeypatch.setenv("REFOCUS_GIMP_MODE", "inprocess")
    d = bridge.new_request_dir()
    try:
        bridge.write_request(d, {"mode": "refocus", "settings": {"blades": 1}}, arrays)
        with pytest.raises(bridge.BridgeError, match="blades"):
            bridge.run(d, {"python": PY})
    finally:
        bridge.remove_request_dir(d)


def test_mode_and_timeout_configuration(monkeypatch):
    monkeypatch.delenv("REFOCUS_GIMP_MODE", raising=False)
    monkeypatch.delenv("REFOCUS_GIMP_TIMEOUT", raising=False)
    assert bridge.choose_mode({}) == "inprocess"                 # this interpreter has refocus
    assert bridge.choose_mode({"mode": "worker"}) == "worker"
    assert bridge.timeout_from({}) == bridge.DEFAULT_TIMEOUT
    assert bridge.timeout_from({"timeout": 30}) == 30
    monkeypatch.setenv("REFOCUS_GIMP_TIMEOUT", "12.5")
    assert bridge.timeout_from({"timeout": 30}) == 12.5
    monkeypatch.setenv("REFOCUS_GIMP_TIMEOUT", "soon")
    with pytest.raises(bridge.BridgeError, match="REFOCUS_GIMP_TIMEOUT.*soon"):
        bridge.timeout_from({})


def test_write_request_checks_sizes(folder):
    with pytest.raises(ValueError, match="40 bytes, expected 48"):
        bridge.write_request(folder, {}, {"image": (b"\0" * 40, (2, 2, 3))})


def test_worker_handle_refuses_missing_request(tmp_path):
    with pytest.raises(worker.RequestError, match="no request.json"):
        worker.handle(str(tmp_path))


# GIMP's GimpMetadata.serialize() format (abridged from GIMP 3.0.4 on a Nikon D70 photo), with
# an IPTC escape that XML 1.0 forbids: the reader must not need a strict XML parser
GIMP_METADATA = """<?xml version='1.0' encoding='UTF-8'?>
<metadata>
  <tag name="Exif.Image.Make">NIKON CORPORATION</tag>
  <tag name="Exif.Image.Model">NIKON D70</tag>
  <tag name="Exif.Photo.FNumber">9/1</tag>
  <tag name="Exif.Photo.FocalLength">100/1</tag>
  <tag name="Exif.Photo.FocalLengthIn35mmFilm">150</tag>
  <tag name="Exif.Photo.LensModel">AF-S &amp; VR 100mm</tag>
  <tag name="Iptc.Envelope.CharacterSet">&#x1b;%G</tag>
</metadata>
"""


def test_camera_from_gimp_metadata():
    cam = worker.camera_from_gimp_metadata(GIMP_METADATA, (400, 600))
    assert cam.focal_length_mm == pytest.approx(100) and cam.crop_factor == pytest.approx(1.5)
    assert cam.f_number == pytest.approx(9) and cam.model == "NIKON D70" and cam.lens == "AF-S & VR 100mm"
    # sensor: full-frame diagonal / 1.5 with the image's 3:2 aspect
    assert cam.sensor_width_mm == pytest.approx(36 / 1.5, rel=1e-3)
    assert worker.camera_from_gimp_metadata("<metadata></metadata>", (10, 10)) is None
    assert worker.camera_from_gimp_metadata(GIMP_METADATA.replace("100/1", "x/0"), (10, 10)) is None


def test_virtual_aperture_from_gimp_metadata(folder, rng):
    img = rng.random((40, 60, 3)).astype(np.float32)
    req = {"mode": "refocus", "settings": {"aperture": "f/2", "depth": "fallback"}, "metadata": GIMP_METADATA}
    bridge.write_request(folder, req, {"image": (img.tobytes(), img.shape)})
    resp = bridge.run_worker(folder, PY, timeout=120)
    assert any("f/2 at 100 mm" in n for n in resp["notes"]), resp["notes"]


def test_settings_from_dialog_values():
    decl = params.gimp_arguments()
    values = {p["name"]: ("" if bridge.is_optional(p) else p["default"]) for p in decl}
    # no preset: every value is sent except empty text (automatic)
    sent = bridge.settings_from(values, decl, None)
    assert sent == {p["key"]: p["default"] for p in decl if not bridge.is_optional(p)}
    params.resolve(sent)                                         # and the core accepts them
    # a preset: values at their default are left to the preset, changed ones override it
    values.update({"blades": 9, "blur": "20", "saturation": 1.0})
    sent = bridge.settings_from(values, decl, "miniature")
    assert sent == {"blades": 9, "blur": "20"}
    from refocus import presets
    s = presets.get("miniature").resolve(sent)
    assert s.blades == 9 and s.blur == 20 and s.saturation == presets.get("miniature").resolve({}).saturation


EMBEDDED = Path(__file__).resolve().parents[2] / "shared" / "data" / "embedded_depth"


def test_source_file_gives_the_embedded_depth(folder):
    """A layer that is the whole photo file uses the depth stored in that file."""
    from refocus.depth.embedded import read_embedded_depth
    from refocus.io import read_photo
    files = sorted(EMBEDDED.glob("*.jpg")) if EMBEDDED.is_dir() else []
    src = next((f for f in files if read_embedded_depth(f) is not None), None)
    if src is None:
        pytest.skip(f"no JPEG with embedded depth in {EMBEDDED}")
    photo = read_photo(src)
    emb = read_embedded_depth(src)
    img = photo.linear[:, :, :3].astype(np.float32)
    req = {"mode": "depth", "settings": {"depth": "embedded"}, "source_file": str(src)}
    bridge.write_request(folder, req, {"image": (img.tobytes(), img.shape)})
    resp = bridge.run_worker(folder, PY, timeout=120)
    assert resp["depth_source"].startswith("embedded")
    np.testing.assert_allclose(_arr(folder, resp, "disparity")[..., 0], emb.disparity, atol=1e-6)
    # the same request without the file cannot find embedded depth: a clear error
    d2 = bridge.new_request_dir()
    try:
        req["source_file"] = None
        bridge.write_request(d2, req, {"image": (img.tobytes(), img.shape)})
        with pytest.raises(bridge.BridgeError, match="(?i)embedded"):
            bridge.run_worker(d2, PY, timeout=120)
    finally:
        bridge.remove_request_dir(d2)


def test_transparent_pixels_do_not_bleed_into_the_layer(folder):
    """A cut-out: the left half is transparent (black under it), the right half opaque grey.
    Blurred, the visible edge must stay grey, not darken with the hidden black."""
    img = np.zeros((30, 60, 4), np.float32)
    img[:, 30:, :3] = 0.5
    img[:, 30:, 3] = 1.0
    depth = np.zeros((30, 60), np.float32)                     # everything far: all blurred
    req = {"mode": "refocus", "settings": {"blur": "12", "focus": "disparity", "focus_disparity": "1",
                                           "highlight_gain": 1.0}}
    bridge.write_request(folder, req, {"image": (img.tobytes(), img.shape), "depth": (depth.tobytes(), depth.shape)})
    out = _arr(folder, bridge.run_worker(folder, PY, timeout=120), "result")
    assert np.array_equal(out[..., 3], img[..., 3])
    np.testing.assert_allclose(out[:, 30:, :3], 0.5, atol=2e-3)
    # the fill itself: holes take the nearest visible colour, visible pixels are unchanged
    rgb = np.zeros((10, 20, 3), np.float32)
    rgb[:, 10:] = (0.2, 0.4, 0.6)
    a = np.zeros((10, 20), np.float32)
    a[:, 10:] = 1
    filled = worker.fill_under_transparency(rgb, a)
    np.testing.assert_allclose(filled, np.broadcast_to(np.float32([0.2, 0.4, 0.6]), rgb.shape), atol=1e-5)
    assert worker.fill_under_transparency(rgb, np.ones((10, 20), np.float32)) is rgb


def test_flatpak_runs_the_worker_on_the_host(monkeypatch, tmp_path):
    """Inside a Flatpak sandbox: request folder in the app cache (visible to the host), worker
    started with flatpak-spawn --host, no existence check of a host path."""
    monkeypatch.setattr(bridge, "in_flatpak", lambda: True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    d = bridge.new_request_dir()
    try:
        assert Path(d).parent == tmp_path and stat.S_IMODE(os.stat(d).st_mode) == 0o700
    finally:
        bridge.remove_request_dir(d)
    assert bridge.worker_command("/home/u/venv/bin/python", "/x", flatpak=True) == [
        "flatpak-spawn", "--host", "--watch-bus", "/home/u/venv/bin/python", "-m",
        "refocus.plugin_gimp.worker", "/x"]
    assert bridge.worker_command("/p", "/x") == ["/p", "-m", "refocus.plugin_gimp.worker", "/x"]


def test_same_picture_tells_an_edited_layer_from_the_file(rng):
    from refocus.plugin_gimp.worker import same_picture
    photo = rng.random((300, 400, 3)).astype(np.float32) ** 2
    assert same_picture(photo, photo)
    assert same_picture(photo * 1.001, photo)                      # rounding of an 8/16-bit trip
    edited = photo.copy()
    edited[100:130, 200:240] = 1.0                                 # 1 % of the picture painted over
    assert not same_picture(edited, photo)
    assert not same_picture(photo[:, ::-1], photo)                 # flipped
    assert not same_picture(photo * 0.8, photo)                    # curves / exposure changed
    assert not same_picture(photo[:200], photo)                    # another size
    grey = photo.mean(axis=2)
    assert same_picture(grey, np.repeat(grey[..., None], 3, 2))    # grey layer, grey photo in RGB


def test_an_edited_layer_does_not_get_the_files_embedded_depth(folder):
    """Same size as the file it came from, but painted over: the file's depth (and its
    stored original) would not match the layer, so it is not used."""
    from refocus.depth.embedded import read_embedded_depth
    from refocus.io import read_photo
    files = sorted(EMBEDDED.glob("*.jpg")) if EMBEDDED.is_dir() else []
    src = next((f for f in files if read_embedded_depth(f) is not None), None)
    if src is None:
        pytest.skip(f"no JPEG with embedded depth in {EMBEDDED}")
    img = read_photo(src).linear[:, :, :3].astype(np.float32).copy()
    H, W = img.shape[:2]
    img[H // 4:H // 2, W // 4:W // 2] = 0.0                        # a black rectangle painted in
    req = {"mode": "depth", "settings": {"depth": "embedded"}, "source_file": str(src)}
    bridge.write_request(folder, req, {"image": (img.tobytes(), img.shape)})
    with pytest.raises(bridge.BridgeError, match="(?i)embedded"):
        bridge.run_worker(folder, PY, timeout=120)


def test_a_core_that_is_found_but_fails_to_import_falls_back_to_the_worker(monkeypatch):
    """find_spec finds refocus, but its import fails (a broken numpy, say): auto mode runs
    the worker; forced in-process reports the import problem."""
    monkeypatch.delenv("REFOCUS_GIMP_MODE", raising=False)
    calls = []
    monkeypatch.setattr(bridge, "core_importable", lambda: True)
    monkeypatch.setattr(bridge, "inprocess_problem", lambda: "ImportError: numpy is broken")
    monkeypatch.setattr(bridge, "run_inprocess", lambda folder, progress=None: calls.append("inprocess"))
    monkeypatch.setattr(bridge, "run_worker", lambda folder, python, timeout, progress=None:
                        calls.append(("worker", python)) or {"ok": True})
    assert bridge.run("/nonexistent", {"python": "/opt/py/bin/python"}) == {"ok": True}
    assert calls == [("worker", "/opt/py/bin/python")]
    with pytest.raises(bridge.BridgeError, match="numpy is broken"):
        bridge.run("/nonexistent", {"mode": "inprocess", "python": "/opt/py/bin/python"})
    assert calls == [("worker", "/opt/py/bin/python")]
    monkeypatch.setattr(bridge, "inprocess_problem", lambda: None)   # imports fine: in-process
    bridge.run("/nonexistent", {"python": "/opt/py/bin/python"})
    assert calls[-1] == "inprocess"


def test_inprocess_problem_is_none_where_refocus_imports():
    assert bridge.inprocess_problem() is None                     # this interpreter runs refocus
