"""The shipped ONNX graphs: reproducible, versioned, checked at load time; providers; direct runs."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

import refocus
from refocus import aperture, lens, onnx_models, runtime
from refocus.errors import BadInputError, ModelError

NAMES = sorted(onnx_models.GRAPH_VERSIONS)


# -- reproducible build --------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_rebuild_reproduces_shipped_graph_byte_for_byte(name):
    pytest.importorskip("onnx")
    shipped = onnx_models.graph_path(name).read_bytes()
    assert onnx_models.build_bytes(name) == shipped
    assert onnx_models.build_bytes(name) == shipped            # deterministic between builds


def test_builders_cover_every_versioned_graph():
    pytest.importorskip("onnx")
    assert sorted(onnx_models.builders()) == NAMES


def test_check_command_passes_on_shipped_graphs():
    pytest.importorskip("onnx")
    proc = subprocess.run([sys.executable, "-m", "refocus.onnx_models", "--check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stale" not in proc.stdout


def test_check_command_detects_a_stale_graph(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    from refocus.onnx_models import __main__ as cmd
    for name in NAMES:
        (tmp_path / f"{name}.onnx").write_bytes(onnx_models.graph_path(name).read_bytes())
    stale = tmp_path / "lens_blur.onnx"
    stale.write_bytes(stale.read_bytes() + b"\x00")
    monkeypatch.setattr(cmd, "graph_path", lambda n: tmp_path / f"{n}.onnx")
    assert cmd.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "stale" in out and "lens_blur.onnx" in out and "guided_upsample" not in out


def test_manifest_matches_the_shipped_files():
    pytest.importorskip("onnx")
    manifest = json.loads(onnx_models.MANIFEST.read_text())
    assert sorted(manifest) == NAMES
    for name in NAMES:
        data = onnx_models.graph_path(name).read_bytes()
        assert manifest[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest[name]["version"] == onnx_models.GRAPH_VERSIONS[name]
        assert manifest[name] == onnx_models.describe(name, data)


# -- version stamps ------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_metadata_version_stamp(name):
    sess = runtime.graph_session(name, "cpu")
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["refocus_graph_version"] == onnx_models.GRAPH_VERSIONS[name]
    assert meta["refocus_graph"] == name


def test_lens_blur_radius_slots_match_the_code():
    meta = runtime.graph_session("lens_blur", "cpu").get_modelmeta().custom_metadata_map
    assert int(meta["radius_slots"]) == lens.RADIUS_SLOTS


@pytest.mark.parametrize("name", NAMES)
def test_graph_session_refuses_a_wrong_version(monkeypatch, name):
    monkeypatch.setitem(onnx_models.GRAPH_VERSIONS, name, "99.0.0")
    monkeypatch.setattr(runtime, "_sessions", {})
    with pytest.raises(ModelError, match=r"python -m refocus\.onnx_models") as e:
        runtime.graph_session(name, "cpu")
    assert "99.0.0" in str(e.value) and name in str(e.value)
    # the renderer refuses too (in a scene that needs this graph: the full upsampling only
    # when something lies in front of the focal plane)
    img = np.full((8, 8, 3), 0.5, np.float32)
    d = np.full((8, 8), 1.0 if name == "guided_upsample" else 0.0, np.float32)
    with pytest.raises(ModelError, match=r"python -m refocus\.onnx_models"):
        refocus.render_linear(img, d, 1.0 - d[0, 0], 4.0, device="cpu")


def test_graph_session_refuses_a_missing_graph(monkeypatch, tmp_path):
    monkeypatch.setattr(onnx_models, "graph_path", lambda n: tmp_path / f"{n}.onnx")
    with pytest.raises(ModelError, match=r"missing.*python -m refocus\.onnx_models"):
        runtime.graph_session("lens_blur", "cpu")


def test_corrupt_graph_file_is_a_model_error(monkeypatch, tmp_path):
    bad = tmp_path / "lens_blur.onnx"
    bad.write_bytes(b"this is not a protobuf")
    monkeypatch.setattr(onnx_models, "graph_path", lambda n: tmp_path / f"{n}.onnx")
    monkeypatch.setattr(runtime, "_sessions", {})
    with pytest.raises(ModelError, match="lens_blur.onnx"):
        runtime.graph_session("lens_blur", "cpu")


def test_sessions_are_cached():
    assert runtime.graph_session("lens_blur", "cpu") is runtime.graph_session("lens_blur", "cpu")


# -- execution providers --------------------------------------------------------------------

def test_choose_cuda_on_a_cpu_only_build_falls_back_to_cpu():
    if "CUDAExecutionProvider" in runtime.available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    providers, device = runtime.choose("cuda")
    assert providers == ["CPUExecutionProvider"] and device == "cpu"


@pytest.mark.parametrize("device", ["auto", "AUTO", None, "", "cpu", "cuda", "directml", "coreml"])
def test_cpu_provider_is_always_last(device):
    providers, name = runtime.choose(device)
    assert providers[-1] == "CPUExecutionProvider"
    assert name in runtime.DEVICES
    assert set(providers) <= set(runtime.available_providers())


@pytest.mark.parametrize("available,device,expect", [
    (["CPUExecutionProvider"], "auto", (["CPUExecutionProvider"], "cpu")),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "auto",
     (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda")),
    (["DmlExecutionProvider", "CPUExecutionProvider"], "auto",
     (["DmlExecutionProvider", "CPUExecutionProvider"], "directml")),
    (["CoreMLExecutionProvider", "DmlExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], "auto",
     (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda")),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu", (["CPUExecutionProvider"], "cpu")),
    (["CPUExecutionProvider"], "coreml", (["CPUExecutionProvider"], "cpu")),
    (["CoreMLExecutionProvider", "CPUExecutionProvider"], "coreml",
     (["CoreMLExecutionProvider", "CPUExecutionProvider"], "coreml")),
])
def test_choose_order(monkeypatch, available, device, expect):
    monkeypatch.setattr(runtime, "available_providers", lambda: list(available))
    assert runtime.choose(device) == expect


def test_unavailable_device_prints_one_notice(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "_notified", set())
    runtime.choose("directml")
    runtime.choose("directml")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnxruntime-directml" in err


@pytest.mark.parametrize("device", ["bogus", "gpu", "tpu"])
def test_choose_unknown_device_raises(device):
    with pytest.raises(BadInputError, match="--device"):
        runtime.choose(device)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages are Linux's")
@pytest.mark.parametrize("preset", [None, "1", "0"])
def test_no_hugepage_stalls_switches_numpy_off_unless_the_user_said_otherwise(monkeypatch, preset):
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        from numpy.core.multiarray import _set_madvise_hugepage
    before = _set_madvise_hugepage(True)
    try:
        if preset is None:
            monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
        else:
            monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", preset)
        runtime.no_hugepage_stalls()
        import os
        assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == (preset or "0")     # children inherit it
        assert _set_madvise_hugepage(True) is (preset == "1")             # numpy's state now
    finally:
        _set_madvise_hugepage(before)


_IN_HEAP = """
import sys
{setup}
import numpy as np
def in_heap(a):
    p = a.ctypes.data
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
            if lo <= p < hi:
                return True
    return False
a = np.ones((3000, 4000), np.float32)          # a 12 MP plane, 48 MB
first = a.ctypes.data
heap = in_heap(a)
del a
b = np.ones((3000, 4000), np.float32)          # the next plane of the same size
print(heap, b.ctypes.data == first)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_own_processes_take_large_planes_from_the_reused_heap():
    """refocus's own processes (the command, batch and GIMP workers) allocate 48 MB planes
    from the heap, where a freed plane is reused, not mmapped fresh and faulted in again;
    a program that only imports refocus keeps glibc's defaults."""
    import subprocess
    own = subprocess.run([sys.executable, "-c", _IN_HEAP.format(setup="from refocus import runtime; runtime.own_process()")],
                         capture_output=True, text=True, check=True).stdout.split()
    if own == ["False", "False"] and "glibc" not in " ".join(__import__("platform").libc_ver()):
        pytest.skip("not glibc")
    assert own == ["True", "True"]
    plain = subprocess.run([sys.executable, "-c", _IN_HEAP.format(setup="import refocus")],
                           capture_output=True, text=True, check=True).stdout.split()
    assert plain[0] == "False"                      # mmapped: glibc's default for 48 MB


def test_the_renderers_graphs_reuse_memory_in_an_arena_given_back_after_a_render(tmp_path):
    """The lens and upsampling graphs run with onnxruntime's CPU arena and the renderer hands
    it back (RunOptions arena shrinkage); other sessions (depth models) keep the default off."""
    for name in ("lens_blur", "guided_upsample", "guided_upsample_behind"):
        assert runtime.graph_session(name, "cpu").get_session_options().enable_cpu_mem_arena
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_models.graph_path("guided_upsample_behind").read_bytes())
    assert not runtime.session_for_file(model, "cpu").get_session_options().enable_cpu_mem_arena
    assert runtime.shrink_after().get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"


def test_describe():
    d = runtime.describe()
    import onnxruntime
    assert d["onnxruntime"] == onnxruntime.__version__
    assert d["auto_providers"][-1] == "CPUExecutionProvider"


# -- the graphs themselves ------------------------------------------------------------------

def _lens_feeds(slices, R, shape="circle", blades=6):
    feeds = lens.compact_slots(slices)
    for i in range(2 * R + 1):
        if i == R:
            continue
        k = aperture.kernel(abs(i - R), shape, blades)
        feeds[onnx_models.kernel_input_name(i)] = np.ascontiguousarray(np.broadcast_to(k, (4, 1) + k.shape))
    return feeds


@pytest.fixture(scope="module")
def lens_graph():
    sess = runtime.graph_session("lens_blur", "cpu")
    R = int(sess.get_modelmeta().custom_metadata_map["radius_slots"])
    return sess, R


def test_lens_graph_only_in_focus_slot(lens_graph, rng):
    sess, R = lens_graph
    h, w = 24, 30
    colour = rng.random((3, h, w)).astype(np.float32)
    slices = np.zeros((2 * R + 1, 5, h, w), np.float32)
    slices[R, :3] = colour                       # premultiplied by alpha 1
    slices[R, 3] = 1.0
    slices[R, 4] = 1.0
    back, backf, front = sess.run(["back", "backf", "front"], _lens_feeds(slices, R))
    assert backf.shape == (1, 3, h, w)
    np.testing.assert_allclose(backf[0], colour, atol=1e-5)
    np.testing.assert_allclose(front, 0.0, atol=1e-6)        # nothing in front of the focal plane
    np.testing.assert_allclose(back, 0.0, atol=1e-6)         # nothing behind it


def test_lens_graph_uniform_back_slot(lens_graph):
    """A uniform opaque slice behind the focal plane stays uniform after blurring (edge padding)."""
    sess, R = lens_graph
    h, w = 20, 26
    c = np.array([0.2, 0.5, 0.9], np.float32)
    slices = np.zeros((2 * R + 1, 5, h, w), np.float32)
    i = R - 3
    slices[i, :3] = c[:, None, None]
    slices[i, 3] = 1.0
    slices[i, 4] = 1.0
    back, backf, front = sess.run(["back", "backf", "front"], _lens_feeds(slices, R))
    np.testing.assert_allclose(back[0], np.broadcast_to(c[:, None, None], (3, h, w)), atol=1e-5)
    np.testing.assert_allclose(backf, back, atol=1e-6)      # empty in-focus slot: nothing over it
    np.testing.assert_allclose(front, 0.0, atol=1e-6)


def test_lens_graph_front_slot_coverage(lens_graph):
    """One opaque pixel in a front slot spreads to the kernel's footprint with total coverage 1."""
    sess, R = lens_graph
    h = w = 31
    slices = np.zeros((2 * R + 1, 5, h, w), np.float32)
    slices[R, 3:5] = 1.0                         # an in-focus background, transparent colour 0
    slices[R, 4, 15, 15] = 0.0
    i = R + 4
    slices[i, :4, 15, 15] = 1.0
    slices[i, 4, 15, 15] = 1.0
    _, _, front = sess.run(["back", "backf", "front"], _lens_feeds(slices, R))
    k = aperture.kernel(4)
    assert abs(float(front[0, 3].sum()) - 1.0) < 1e-5
    np.testing.assert_allclose(front[0, 3, 15 - 5:15 + 6, 15 - 5:15 + 6], k, atol=1e-6)


def test_lens_graph_on_the_occupied_slots_equals_the_graph_on_all_slots(lens_graph, rng):
    """The caller passes only the slots that hold something (and one zero slot the empty ones
    point to); the picture must be the one every slot passed as its own row gives, with
    occupied slots far apart, on both sides of the focus and next to each other."""
    sess, R = lens_graph
    h, w = 26, 34
    slices = np.zeros((2 * R + 1, 5, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, (cy, cx, r) in zip([R - 9, R - 4, R - 3, R, R + 2, R + 7],
                              [(13, 17, 99), (8, 9, 6), (18, 25, 5), (12, 14, 7), (6, 26, 4), (20, 8, 5)]):
        inside = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32)
        slices[i, :3] = rng.random((3, h, w)) * inside
        slices[i, 3] = inside
    # floor counts: each pixel's nearest slot holds it (mattes over the ones behind)
    cover = np.zeros((h, w), np.float32)
    for i in range(2 * R, -1, -1):
        slices[i, 4] = slices[i, 3] * (1 - cover)
        cover = np.maximum(cover, slices[i, 3])
    compact = _lens_feeds(slices, R)
    assert compact["slices"].shape[0] == 7                       # 6 slots and the zero slot
    every = dict(compact, slices=slices, slot_index=np.arange(2 * R + 1, dtype=np.int64))
    a = sess.run(["back", "backf", "front"], compact)
    b = sess.run(["back", "backf", "front"], every)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)
    assert a[2][0, 3].max() > 0.5 and a[0].max() > 0.1


def _up_feeds(image, rho, blur, blur_front, front, transmit, upsize=None, crop=(0, 0)):
    """Feeds of the full upsampling graph from channels-last arrays (1, h, w, c); the graph
    takes rho and the fields as planes (1, c, h, w)."""
    H, W = image.shape[1:3]
    planes = lambda x: np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return {"image": image, "rho": planes(rho), "blur": planes(blur), "blur_front": planes(blur_front),
            "front": planes(front), "transmit": planes(transmit), "upsize": np.array(upsize or (H, W), np.int64),
            "crop": np.array(crop, np.int64)}


def test_guided_upsample_in_focus_returns_the_image(rng):
    sess = runtime.graph_session("guided_upsample", "cpu")
    H, W, s = 12, 16, 2
    image = rng.random((1, H, W, 3)).astype(np.float32)
    rho = np.zeros((1, H, W, 1), np.float32)
    low = lambda c: rng.random((1, H // s, W // s, c)).astype(np.float32)
    zeros = np.zeros((1, H // s, W // s, 3), np.float32)
    ones = np.ones((1, H // s, W // s, 1), np.float32)   # nothing in front: transmit everything
    out = sess.run(["linear"], _up_feeds(image, rho, low(3), low(3), zeros, ones))[0]
    np.testing.assert_allclose(out, image, atol=1e-6, rtol=0)


def test_guided_upsample_behind_uses_the_blurred_back(rng):
    sess = runtime.graph_session("guided_upsample", "cpu")
    H, W = 10, 14
    image = rng.random((1, H, W, 3)).astype(np.float32)
    rho = np.full((1, H, W, 1), -3.0, np.float32)
    blur = rng.random((1, H, W, 3)).astype(np.float32)
    blur_front = np.full((1, H, W, 3), 0.77, np.float32)      # only for pixels in front
    out = sess.run(["linear"], _up_feeds(image, rho, blur, blur_front, 0 * blur,
                                         np.ones((1, H, W, 1), np.float32)))[0]
    np.testing.assert_allclose(out[0], blur[0], atol=1e-6)


def test_guided_upsample_against_numpy_reference(rng):
    """A strip cut out of an upsampled chunk, pixels behind, in, around and in front of the
    focus: the graph against the formula with cv2's bilinear (half-pixel) upsampling."""
    import cv2
    sess = runtime.graph_session("guided_upsample", "cpu")
    s, h, w = 3, 6, 7
    H, W = h * s, w * s
    rho_full = rng.uniform(-2.5, 2.5, (H, W)).astype(np.float32)
    image_full = rng.random((H, W, 3)).astype(np.float32)
    fields = [rng.random((h, w, c)).astype(np.float32) for c in (3, 3, 3, 1)]
    up = lambda x: cv2.resize(x, (W, H), interpolation=cv2.INTER_LINEAR).reshape(H, W, -1)
    A, D, F, T = (up(x) for x in fields)
    f = (rho_full >= 1)[..., None].astype(np.float32)
    m = np.clip(rho_full + 1, 0, 1)[..., None] - f
    ref = np.clip(m * (F + T * image_full) + (1 - m) * A + f * D, 0, 1)
    y0, y1 = 4, 13                                          # a strip inside the chunk
    out = sess.run(["linear"], _up_feeds(image_full[None, y0:y1], rho_full[None, y0:y1, :, None],
                                         *(x[None] for x in fields), upsize=(H, W), crop=(y0, 0)))[0]
    np.testing.assert_allclose(out[0], ref[y0:y1], atol=2e-6)


def test_guided_upsample_behind_equals_the_full_graph_with_nothing_in_front(rng):
    full = runtime.graph_session("guided_upsample", "cpu")
    behind = runtime.graph_session("guided_upsample_behind", "cpu")
    s, h, w = 4, 5, 6
    H, W = h * s, w * s
    image = rng.random((1, H, W, 3)).astype(np.float32)
    rho = rng.uniform(-3.0, 0.49, (1, H, W, 1)).astype(np.float32)   # nothing in front of the focus
    blur = rng.random((1, h, w, 3)).astype(np.float32)
    feeds = _up_feeds(image, rho, blur, rng.random((1, h, w, 3)).astype(np.float32),
                      np.zeros((1, h, w, 3), np.float32), np.ones((1, h, w, 1), np.float32))
    ref = full.run(["linear"], feeds)[0]
    small = {k: feeds[k] for k in ("image", "rho", "blur", "upsize", "crop")}   # rho, blur as planes
    np.testing.assert_allclose(behind.run(["linear"], small)[0], ref, atol=1e-6)
    assert {i.name for i in behind.get_inputs()} == set(small)


def test_the_renderers_graphs_give_the_same_bits_without_onnxruntimes_optimizer(monkeypatch):
    """On the CPU the project's graphs skip onnxruntime's graph optimizer (it cost a 12 MP
    render more time than it saved); depth models keep it.  Rendering a scene that runs all
    three graphs (focused in the middle: blur behind and in front, the full upsampling;
    focused on the nearest: the short one; a light source) gives the same result either way."""
    import onnxruntime as ort
    from refocus.lens import render_linear
    level = ort.GraphOptimizationLevel
    assert runtime.graph_session("lens_blur", "cpu").get_session_options().graph_optimization_level == level.ORT_DISABLE_ALL
    rng = np.random.default_rng(3)
    img = rng.random((96, 128, 3)).astype(np.float32) * 0.8
    img[20:23, 30:33] = 1.0                                   # a clipped light, far away
    d = np.full((96, 128), 0.2, np.float32)
    d[30:70, 40:90] = 0.6                                     # in focus
    d[60:96, 80:128] = 0.95                                   # in front of the focus
    focus = (0.6, 0.95)
    out_plain = [render_linear(img.copy(), d.copy(), f, 20.0) for f in focus]
    saved = dict(runtime._sessions)
    runtime._sessions.clear()
    real = runtime._session_options
    monkeypatch.setattr(runtime, "_session_options", lambda arena=False, optimize=True: real(arena, True))
    try:
        assert runtime.graph_session("lens_blur", "cpu").get_session_options().graph_optimization_level == level.ORT_ENABLE_ALL
        out_opt = [render_linear(img.copy(), d.copy(), f, 20.0) for f in focus]
    finally:
        runtime._sessions.clear()
        runtime._sessions.update(saved)
    for a, b in zip(out_plain, out_opt):
        assert np.abs(a - img).max() > 0.05                    # it did blur
        np.testing.assert_array_equal(a, b)
