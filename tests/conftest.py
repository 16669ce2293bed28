"""Shared helpers and fixtures of the refocus test suite (small synthetic images only)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def render(image, disparity, focus, K, **kw):
    """render_linear with highlight recovery off unless asked (most tests want pure blur)."""
    import refocus
    kw.setdefault("highlight_gain", 1.0)
    kw.setdefault("device", "cpu")
    return refocus.render_linear(np.asarray(image, np.float32), np.asarray(disparity, np.float32),
                                 focus, K, **kw)


def reference_convolution(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """True 2-D convolution (kernel flipped) of an (H, W, C) image, edge-replicated borders.

    Written with plain numpy (shifted sums), float64: independent of the ONNX graphs.
    out(y, x) = sum_{u, v} k(u, v) * img(y - u, x - v), with (u, v) relative to the kernel centre.
    """
    img = np.asarray(img, np.float64)
    k = np.asarray(k, np.float64)
    H, W = img.shape[:2]
    h = k.shape[0] // 2
    assert k.shape == (2 * h + 1, 2 * h + 1)
    p = np.pad(img, ((h, h), (h, h)) + ((0, 0),) * (img.ndim - 2), mode="edge")
    out = np.zeros_like(img)
    for u in range(-h, h + 1):
        for v in range(-h, h + 1):
            w = k[u + h, v + h]
            if w:
                out += w * p[h - u:h - u + H, h - v:h - v + W]
    return out


def laplacian_abs(grey: np.ndarray) -> np.ndarray:
    """|5-point Laplacian| of a 2-D float array (interior pixels only)."""
    g = np.asarray(grey, np.float64)
    return np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


def write_png8(path, rgb_uint8: np.ndarray) -> None:
    import cv2
    arr = rgb_uint8[..., ::-1] if rgb_uint8.ndim == 3 else rgb_uint8
    assert cv2.imwrite(str(path), np.ascontiguousarray(arr))


@pytest.fixture
def photo_files(tmp_path, rng):
    """A small 8-bit RGB PNG (60x40) and a matching 8-bit disparity ramp; returns a dict of paths."""
    img = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    depth = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    paths = {"png": tmp_path / "in.png", "depth": tmp_path / "depth.png"}
    write_png8(paths["png"], img)
    write_png8(paths["depth"], depth)
    paths["pixels"] = img
    return paths


def pytest_configure(config):
    config.addinivalue_line("markers", "gimp: runs GIMP 3 (in the shared/gimp3 chroot); skipped when absent")


@pytest.fixture(autouse=True)
def _refocus_home(tmp_path_factory, monkeypatch):
    """Every test gets its own REFOCUS_HOME: no test reads or writes the real user data dir."""
    home = tmp_path_factory.mktemp("refocus_home")
    monkeypatch.setenv("REFOCUS_HOME", str(home))
    return home


def make_depth_onnx(path, *, weights=(1.0, 10.0, 100.0), in_name="pixel_values", out_name="predicted_depth",
                    dtype="float32", fixed_hw=None, out_4d=False, channels=3, extra_input=False):
    """A tiny stand-in for a depth network: output = sum_c weights[c] * input[:, c] (a 1x1 Conv).

    Same interface as the real exports: input (N, 3, H, W) -> output (N, H, W) (or (N, 1, H, W)),
    float32 or float16, dynamic or fixed H, W; so a test can compute the expected output
    from the photo independently.
    """
    import onnx
    from onnx import TensorProto, helper
    ft = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    H, W = fixed_hw if fixed_hw else ("H", "W")
    nodes, inits = [], []
    x = in_name
    if dtype == "float16":
        nodes.append(helper.make_node("Cast", [in_name], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    w = np.asarray(weights, np.float32).reshape(1, channels, 1, 1)
    inits.append(helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist()))
    nodes.append(helper.make_node("Conv", [x, "w"], ["y4"]))
    y = "y4"
    if not out_4d:
        inits.append(helper.make_tensor("axes", TensorProto.INT64, [1], [1]))
        nodes.append(helper.make_node("Squeeze", ["y4", "axes"], ["y3"]))
        y = "y3"
    if dtype == "float16":
        nodes.append(helper.make_node("Cast", [y], [out_name], to=TensorProto.FLOAT16))
    else:
        nodes.append(helper.make_node("Identity", [y], [out_name]))
    out_shape = ["N", 1, H, W] if out_4d else ["N", H, W]
    inputs = [helper.make_tensor_value_info(in_name, ft, ["N", channels, H, W])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", ft, ["N", 1, H, W]))
    graph = helper.make_graph(nodes, "stand_in_depth", inputs,
                              [helper.make_tensor_value_info(out_name, ft, out_shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
