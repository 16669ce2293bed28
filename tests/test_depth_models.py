"""Depth from ONNX models: pre-/post-processing against independent references, the
registry, the cache folder, downloads from a local HTTP server, read_depth, guided upsampling.

The networks here are tiny stand-ins built with the `onnx` package (conftest.make_depth_onnx):
same tensor names, layouts and dtypes as the real exports, output = a known linear
combination of the normalised channels, so every number can be recomputed by hand.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import refocus
from refocus import color, imageio
from refocus.depth import estimate, guided, models

from conftest import make_depth_onnx, write_png8

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
W3 = np.array([1.0, 10.0, 100.0])


def _expected_raw(srgb8: np.ndarray, size_hw, weights=W3) -> np.ndarray:
    """Reference pre-processing + stand-in network, written out from the model card:
    RGB /255, bicubic resize (OpenCV) to (h, w), ImageNet mean/std, weighted channel sum."""
    h, w = size_hw
    x = cv2.resize(srgb8.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    x = (x - MEAN) / STD
    return (x * np.asarray(weights)).sum(axis=2)


def _normalised(raw):
    lo, hi = np.percentile(raw, [1, 99])
    return np.clip((raw - lo) / (hi - lo), 0, 1)


@pytest.fixture
def photo8(rng):
    """A smooth 8-bit sRGB photo (40 x 60) whose three channels differ."""
    base = cv2.resize(rng.random((5, 7, 3)).astype(np.float32), (60, 40), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.round(base * 255), 0, 255).astype(np.uint8)


# -- size rules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, expected", [
    ((3000, 4000), (518, 686)),     # 4000 * 518 / 3000 = 690.7 = 49.33 * 14 -> 49 * 14
    ((4000, 3000), (686, 518)),     # portrait: the same, transposed
    ((40, 60), (518, 784)),         # upscaled: 60 * 518 / 40 = 777 = 55.5 * 14 -> halves up: 56 * 14
    ((518, 518), (518, 518)),
    ((100, 1000), (518, 5180)),     # 10:1 panorama: 5180 = 370 * 14
])
def test_depth_anything_size_rule(hw, expected):
    rules = estimate.InputRules.from_registry(models.get_spec("depth-anything-v2-small").input)
    got = estimate.network_size(*hw, rules)
    assert got == expected
    assert got[0] % 14 == 0 and got[1] % 14 == 0 and min(got) == 518


def test_midas_rule_is_fixed_256():
    rules = estimate.InputRules.from_registry(models.get_spec("midas-v2.1-small").input)
    assert estimate.network_size(3000, 4000, rules) == (256, 256)
    assert rules.mean == tuple(MEAN) and rules.std == tuple(STD)


# -- pre-processing and inference -----------------------------------------------------------------

def _session(path):
    from refocus import runtime
    return runtime.session_for_file(path, "cpu")


def test_network_input_and_output_match_reference(tmp_path, photo8):
    onnx_path = make_depth_onnx(tmp_path / "m.onnx")
    spec = dataclasses.replace(models.get_spec("depth-anything-v2-small"))
    sess = _session(onnx_path)
    io = estimate.inspect_session(sess, spec, onnx_path)
    assert (io.input_name, io.output_name, io.input_dtype, io.fixed_hw) == \
        ("pixel_values", "predicted_depth", np.float32, None)
    srgb = estimate.srgb_encode(color.decode_srgb(photo8))
    x = estimate.preprocess(srgb, estimate.rules_for(spec, io), io.input_dtype)
    assert x.shape == (1, 3, 518, 784) and x.dtype == np.float32
    raw = estimate.run_network(sess, io, x, onnx_path)
    ref = _expected_raw(photo8, (518, 784))
    # the sRGB values went through linear float32 and a 16-bit table: ~1e-4 of the range
    assert np.abs(raw - ref).max() < 2e-4 * np.ptp(ref)


def test_channel_order_is_rgb(tmp_path):
    onnx_path = make_depth_onnx(tmp_path / "m.onnx", weights=(1.0, 0.0, 0.0))   # "depth" = red channel
    spec = models.get_spec("depth-anything-v2-small")
    img = np.zeros((28, 28, 3), np.uint8)
    img[:, :14, 0] = 255            # red on the left half, blue on the right half
    img[:, 14:, 2] = 255
    d, _, _ = estimate.predict(color.decode_srgb(img), spec, onnx_path, device="cpu", refine=False)
    # red = high = near (not exactly 1 / 0: bicubic ringing at the colour edge moves the percentiles)
    assert d[:, :12].min() > 0.85 and d[:, 16:].max() < 0.15


def test_predict_end_to_end_unrefined(tmp_path, photo8):
    onnx_path = make_depth_onnx(tmp_path / "m.onnx")
    spec = models.get_spec("depth-anything-v2-small")
    d, detail, timings = estimate.predict(color.decode_srgb(photo8), spec, onnx_path, device="cpu",
                                          refine=False)
    ref = _normalised(_expected_raw(photo8, (518, 784)))
    ref = np.clip(cv2.resize(ref.astype(np.float32), (60, 40), interpolation=cv2.INTER_LINEAR), 0, 1)
    assert d.shape == (40, 60) and d.dtype == np.float32
    np.testing.assert_allclose(d, ref, atol=2e-3)
    assert "Depth Anything V2 Small (fp32) on CPUExecutionProvider" in detail and "784x518" in detail
    assert {"preprocess", "inference", "postprocess"} <= set(timings)


def test_fp16_model_and_4d_output(tmp_path, photo8):
    onnx_path = make_depth_onnx(tmp_path / "m16.onnx", dtype="float16", out_4d=True)
    spec = models.get_spec("depth-anything-v2-small-fp16")
    io = estimate.inspect_session(_session(onnx_path), spec, onnx_path)
    assert io.input_dtype == np.float16
    d, detail, _ = estimate.predict(color.decode_srgb(photo8), spec, onnx_path, device="cpu", refine=False)
    ref = _normalised(_expected_raw(photo8, (518, 784)))
    ref = np.clip(cv2.resize(ref.astype(np.float32), (60, 40), interpolation=cv2.INTER_LINEAR), 0, 1)
    assert "float16" in detail
    np.testing.assert_allclose(d, ref, atol=1e-2)         # half precision inputs and outputs


def test_fixed_input_size_and_names_read_from_the_session(tmp_path, photo8):
    # a MiDaS-like export: fixed 256x256, other tensor names than the registry expects
    onnx_path = make_depth_onnx(tmp_path / "midas.onnx", in_name="0", out_name="1044", fixed_hw=(256, 256))
    installed = models.models_dir()
    installed.mkdir(parents=True)
    shutil.copy(onnx_path, installed / "midas-v2.1-small.onnx")
    res = refocus.depth.estimate_depth(color.decode_srgb(photo8), source="model", model="midas-v2.1-small",
                                       device="cpu")
    assert res.source == "model" and "MiDaS v2.1 Small" in res.detail and "256x256" in res.detail
    # unrefined reference: squashed to 256x256 (the aspect ratio is not kept)
    spec = models.get_spec("midas-v2.1-small")
    d, _, _ = estimate.predict(color.decode_srgb(photo8), spec, installed / "midas-v2.1-small.onnx",
                               device="cpu", refine=False)
    ref = _normalised(_expected_raw(photo8, (256, 256)))
    ref = np.clip(cv2.resize(ref.astype(np.float32), (60, 40), interpolation=cv2.INTER_LINEAR), 0, 1)
    np.testing.assert_allclose(d, ref, atol=2e-3)
    # the refined map is the same depth, edge-aware: close to the plain one on this smooth photo
    assert res.disparity.shape == (40, 60)
    assert np.corrcoef(res.disparity.ravel(), d.ravel())[0, 1] > 0.98


def test_user_file_with_fixed_size_overrides_the_default_rules(tmp_path, photo8):
    onnx_path = make_depth_onnx(tmp_path / "custom.onnx", fixed_hw=(140, 210))
    res = refocus.depth.estimate_depth(color.decode_srgb(photo8), source="model", model=str(onnx_path),
                                       device="cpu")
    assert "custom.onnx" in res.detail and "210x140" in res.detail


@pytest.mark.parametrize("kw, match", [
    (dict(channels=4, weights=(1, 1, 1, 1)), "4 channels"),
    (dict(extra_input=True), "one input"),
])
def test_incompatible_models_are_refused(tmp_path, photo8, kw, match):
    onnx_path = make_depth_onnx(tmp_path / "bad.onnx", **kw)
    with pytest.raises(refocus.ModelError, match=match):
        refocus.depth.estimate_depth(color.decode_srgb(photo8), source="model", model=str(onnx_path),
                                     device="cpu")


def test_not_an_onnx_file_is_a_model_error(tmp_path, photo8):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(refocus.ModelError, match="junk.onnx"):
        refocus.depth.estimate_depth(color.decode_srgb(photo8), source="model", model=str(bad), device="cpu")


def test_robust_normalisation_ignores_outliers(rng):
    raw = rng.normal(0, 1, (100, 100)).astype(np.float32)
    spiked = raw.copy()
    spiked.flat[rng.choice(raw.size, 40, replace=False)] = 1e6       # 0.4 % outliers
    a, b = estimate.normalise(raw), estimate.normalise(spiked)
    assert a.min() == 0 and a.max() == 1 and b.min() == 0 and b.max() == 1
    keep = spiked < 1e5
    assert np.abs(a - b)[keep].mean() < 0.03
    minmax = (spiked - spiked.min()) / (spiked.max() - spiked.min())
    assert np.abs(a - minmax)[keep].mean() > 0.4                      # what raw min/max would have done
    assert np.all(estimate.normalise(np.full((5, 5), 3.0)) == 0.5)


# -- guided upsampling -----------------------------------------------------------------------------

def _jbu_reference(low, guide_low, guide, reach, sigma_color):
    """Joint bilateral upsampling, one pixel at a time (Kopf et al. 2007), float64."""
    h0, w0 = low.shape
    H, W = guide.shape[:2]
    out = np.zeros((H, W))
    s2 = (reach / 2.0) ** 2
    for y in range(H):
        for x in range(W):
            cy, cx = (y + 0.5) * h0 / H - 0.5, (x + 0.5) * w0 / W - 0.5
            num = den = 0.0
            for j in range(int(np.floor(cy)) - reach + 1, int(np.floor(cy)) + reach + 1):
                for i in range(int(np.floor(cx)) - reach + 1, int(np.floor(cx)) + reach + 1):
                    jj, ii = min(max(j, 0), h0 - 1), min(max(i, 0), w0 - 1)
                    dc = np.sum((guide_low[jj, ii].astype(np.float64) - guide[y, x]) ** 2)
                    wgt = (np.exp(-((j - cy) ** 2 + (i - cx) ** 2) / (2 * s2))
                           * (np.exp(-dc / (2 * sigma_color ** 2)) + 1e-6))
                    num += wgt * low[jj, ii]
                    den += wgt
            out[y, x] = num / den
    return out


def test_joint_bilateral_upsampling_matches_reference(rng):
    low = rng.random((5, 7)).astype(np.float32)
    guide = rng.random((15, 21, 3)).astype(np.float32)
    guide_low = cv2.resize(guide, (7, 5), interpolation=cv2.INTER_AREA)
    got = guided.joint_bilateral_upsample(low, guide_low, guide, reach=2, sigma_color=0.2, threads=2)
    np.testing.assert_allclose(got, _jbu_reference(low, guide_low, guide, 2, 0.2), rtol=1e-4, atol=1e-5)


def test_refine_puts_the_depth_edge_on_the_image_edge(rng):
    H, W, edge = 120, 160, 67                     # image edge not on the coarse grid (factor 8)
    guide = np.empty((H, W, 3), np.float32)
    guide[:, :edge] = (0.8, 0.5, 0.4)             # subject
    guide[:, edge:] = (0.2, 0.4, 0.3)             # background
    guide += rng.normal(0, 0.01, guide.shape).astype(np.float32)
    truth = np.where(np.arange(W) < edge, 0.9, 0.2).astype(np.float32)[None].repeat(H, 0)
    low = cv2.GaussianBlur(cv2.resize(truth, (W // 8, H // 8), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
    plain = cv2.resize(low, (W, H), interpolation=cv2.INTER_LINEAR)
    out = guided.refine(low, guide)
    assert out.shape == (H, W) and out.dtype == np.float32
    err_plain, err_out = np.abs(plain - truth).mean(), np.abs(out - truth).mean()
    assert err_out < 0.7 * err_plain
    # in every row the largest step between neighbours sits exactly on the image edge, and it
    # carries most of the depth change; the plain resize spreads it over a ramp
    jumps = -np.diff(out, axis=1)
    assert np.all(np.argmax(jumps, axis=1) == edge - 1)
    assert jumps[:, edge - 1].min() > 0.4 and -np.diff(plain, axis=1).max() < 0.05


def test_refine_keeps_constant_depth_and_range(rng):
    guide = rng.random((50, 70, 3)).astype(np.float32)
    out = guided.refine(np.full((10, 14), 0.37, np.float32), guide)
    np.testing.assert_allclose(out, 0.37, atol=1e-6)
    out = guided.refine(rng.random((10, 14)).astype(np.float32), guide)
    assert out.min() >= 0 and out.max() <= 1


def test_refine_on_real_photo_with_ground_truth():
    """Middlebury motorcycle (real photo + measured disparity): upsampling a 1/6-size map
    guided by the photo lands closer to the truth near depth edges than a plain resize."""
    img, gt = DATA / "portraits" / "motorcycle_left.png", DATA / "portraits" / "motorcycle_disp.npz"
    if not (img.is_file() and gt.is_file()):
        pytest.skip("shared/data not available")
    photo = imageio.read_photo(img)
    g = np.load(gt)["arr_0"]
    valid = np.isfinite(g)
    g = np.where(valid, g, g[valid].min())
    lo, hi = np.percentile(g[valid], [1, 99])
    g = np.clip((g - lo) / (hi - lo), 0, 1).astype(np.float32)
    H, W = g.shape
    gy, gx = np.gradient(g)
    near_edge = cv2.dilate((np.hypot(gx, gy) > 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    near_edge &= valid
    low = cv2.resize(g, (W // 6, H // 6), interpolation=cv2.INTER_AREA)
    plain = np.clip(cv2.resize(low, (W, H), interpolation=cv2.INTER_LINEAR), 0, 1)
    out = guided.refine(low, estimate.srgb_encode(photo.linear))
    e_plain = np.abs(plain - g)[near_edge].mean()
    e_out = np.abs(out - g)[near_edge].mean()
    assert e_out < 0.95 * e_plain, (e_out, e_plain)


# -- registry and cache folder -------------------------------------------------------------------

def test_registry_contents():
    reg = models.load_registry()
    assert list(reg)[0] == models.default_name() == "depth-anything-v2-small"
    assert set(reg) == {"depth-anything-v2-small", "depth-anything-v2-small-fp16",
                        "depth-anything-v2-small-int8", "midas-v2.1-small"}
    for spec in reg.values():
        assert spec.urls and all(u.startswith("https://") for u in spec.urls)
        assert spec.license in ("Apache-2.0", "MIT")
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.input["mean"] == list(MEAN) and spec.input["std"] == list(STD)
    assert reg["depth-anything-v2-small"].sha256 == \
        "afb6a5c28f3b6bf1618c6e43f02073ef9dfdc70e937502d51603e57b0a1df10c"
    assert reg["depth-anything-v2-small-fp16"].sha256 is None and reg["midas-v2.1-small"].sha256 is None


def test_registry_is_package_data():
    setup_py = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    assert '"refocus.depth": "core/depth"' in setup_py and '"refocus.depth": ["*.json"]' in setup_py


def test_refocus_home_decides_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REFOCUS_HOME", str(tmp_path / "elsewhere"))
    assert models.models_dir() == tmp_path / "elsewhere" / "models"
    monkeypatch.delenv("REFOCUS_HOME")
    import platformdirs
    assert models.home() == Path(platformdirs.user_data_dir("refocus", appauthor=False))


def test_resolve_errors(tmp_path):
    with pytest.raises(refocus.ModelError, match="refocus models download depth-anything-v2-small"):
        models.resolve(None)
    with pytest.raises(refocus.ModelError, match="refocus models download midas-v2.1-small"):
        models.resolve("midas-v2.1-small")
    with pytest.raises(refocus.BadInputError, match="unknown model 'dav3'.*depth-anything-v2-small"):
        models.resolve("dav3")
    with pytest.raises(refocus.BadInputError, match="file not found"):
        models.resolve(str(tmp_path / "missing.onnx"))


# -- downloads from a local server ---------------------------------------------------------------

class _Server:
    """A local HTTP server for one payload, with Range support and scripted faults."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.requests = []            # Range header of each GET (None if absent)
        self.cut_after = None         # next full response: send only this many bytes, then drop
        self.ignore_range = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                data, start = server.payload, 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[:server.cut_after])
                    server.cut_after = None
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/model.onnx"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(rng):
    s = _Server(rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    yield s
    s.close()


def _spec(server, name="depth-anything-v2-small-int8", sha256="payload"):
    h = hashlib.sha256(server.payload).hexdigest() if sha256 == "payload" else sha256
    return dataclasses.replace(models.get_spec(name), urls=(server.url,), sha256=h)


def test_download_verified_and_moved_into_place(server):
    spec = _spec(server)
    path = models.download(spec.name, spec=spec, progress=False)
    assert path == models.models_dir() / "depth-anything-v2-small-int8.onnx"
    assert path.read_bytes() == server.payload
    assert not models.part_path(spec.name).exists()
    rec = json.loads(models.record_path(spec.name).read_text())
    assert rec["sha256"] == hashlib.sha256(server.payload).hexdigest() and rec["size"] == len(server.payload)
    assert server.requests == [None]
    models.download(spec.name, spec=spec, progress=False)      # already installed: no second transfer
    assert server.requests == [None]


def test_download_checksum_mismatch_discards_the_file(server):
    spec = _spec(server, sha256="0" * 64)
    with pytest.raises(refocus.ModelError, match="sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        models.download(spec.name, spec=spec, progress=False)
    assert not (models.models_dir() / spec.filename).exists()
    assert not models.part_path(spec.name).exists()


def test_interrupted_download_resumes_with_range(server):
    spec = _spec(server)
    server.cut_after = 100_000
    with pytest.raises(refocus.ModelError, match="interrupted after 100000 of 300000 bytes.*again to resume"):
        models.download(spec.name, spec=spec, progress=False)
    assert models.part_path(spec.name).stat().st_size == 100_000
    assert not (models.models_dir() / spec.filename).exists()
    path = models.download(spec.name, spec=spec, progress=False)
    assert server.requests == [None, "bytes=100000-"]
    assert path.read_bytes() == server.payload


def test_server_ignoring_range_restarts_cleanly(server):
    spec = _spec(server)
    server.cut_after = 1234
    with pytest.raises(refocus.ModelError, match="interrupted"):
        models.download(spec.name, spec=spec, progress=False)
    server.ignore_range = True
    path = models.download(spec.name, spec=spec, progress=False)
    assert path.read_bytes() == server.payload            # not 1234 stale bytes + the whole file


def test_unpinned_download_records_hash_and_verify_catches_tampering(server):
    spec = _spec(server, name="midas-v2.1-small", sha256=None)
    logs = []
    path = models.download(spec.name, spec=spec, progress=False, log=logs.append)
    digest = hashlib.sha256(server.payload).hexdigest()
    assert any("unpinned" in m and digest in m for m in logs)
    assert [c.status for c in models.verify(spec.name)] == ["ok"]
    with open(path, "r+b") as f:
        f.write(b"X")
    (check,) = models.verify(spec.name)
    assert check.status == "mismatch" and digest in check.message


def test_offline_download_says_where_to_put_the_file(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                    # nothing listens there now
    spec = dataclasses.replace(models.get_spec("depth-anything-v2-small"),
                               urls=(f"http://127.0.0.1:{port}/model.onnx",))
    with pytest.raises(refocus.ModelError) as e:
        models.download(spec.name, spec=spec, progress=False, timeout=5)
    msg = str(e.value)
    assert "no network" in msg and str(models.models_dir() / "depth-anything-v2-small.onnx") in msg
    assert "refocus models verify depth-anything-v2-small" in msg


def test_http_error_is_reported(server):
    spec = dataclasses.replace(_spec(server), urls=(server.url.replace("127.0.0.1", "localhost") + "x",))
    server.httpd.RequestHandlerClass.do_GET = lambda self: self.send_error(404)
    with pytest.raises(refocus.ModelError, match="HTTP 404"):
        models.download(spec.name, spec=spec, progress=False)


# -- read_depth -----------------------------------------------------------------------------------

def test_read_depth_kind_depth_16bit_png_with_holes(tmp_path):
    z_mm = np.array([[500, 1000, 2000, 0], [4000, 1000, 500, 2000]], np.uint16)   # 0 = no measurement
    assert cv2.imwrite(str(tmp_path / "z.png"), z_mm)
    d = imageio.read_depth(tmp_path / "z.png", kind="depth")
    inv = 1.0 / np.array([500, 1000, 2000, 4000], float)      # 1/z normalised, not 1 - z
    expect = {500: 1.0, 1000: (inv[1] - inv[3]) / (inv[0] - inv[3]), 2000: (inv[2] - inv[3]) / (inv[0] - inv[3]),
              4000: 0.0}
    for (y, x), z in np.ndenumerate(z_mm):
        if z:
            assert d[y, x] == pytest.approx(expect[z], abs=1e-6)
    assert 0.0 <= d[0, 3] <= 1.0 and np.isfinite(d).all()     # the hole is filled from its neighbours
    assert d[0, 1] != pytest.approx(1 - (1000 - 500) / 3500)   # a flip would give 6/7


def test_read_depth_kind_depth_infinity_is_far(tmp_path):
    np.save(tmp_path / "z.npy", np.array([[1.0, 2.0, np.inf]], np.float32))
    np.testing.assert_allclose(imageio.read_depth(tmp_path / "z.npy", kind="depth"), [[1.0, 0.5, 0.0]], atol=1e-6)


def test_read_depth_float_tiff_in_pixels_is_scaled(tmp_path):
    import tifffile
    disp_px = np.array([[10.0, 20.0], [30.0, 50.0]], np.float32)
    tifffile.imwrite(tmp_path / "d.tif", disp_px)
    np.testing.assert_allclose(imageio.read_depth(tmp_path / "d.tif"), (disp_px - 10) / 40, atol=1e-7)


def test_read_depth_refuses_colour_mapped_images(tmp_path, rng):
    write_png8(tmp_path / "jet.png", (rng.random((10, 12, 3)) * 255).astype(np.uint8))
    with pytest.raises(refocus.BadInputError, match="colour channels"):
        imageio.read_depth(tmp_path / "jet.png")
    grey3 = np.repeat((rng.random((10, 12, 1)) * 255).astype(np.uint8), 3, axis=2)    # grey stored as RGB: fine
    write_png8(tmp_path / "grey3.png", grey3)
    np.testing.assert_allclose(imageio.read_depth(tmp_path / "grey3.png"), grey3[..., 0] / 255.0, atol=1e-7)
