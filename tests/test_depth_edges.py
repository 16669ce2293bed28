"""Soft depth edges made hard (refocus.depth.edges): blurred steps become steps at their
middle; exact maps, slopes and steep smooth slopes are left as they are."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import refocus
from refocus.depth.edges import harden_soft_edges
from conftest import render


def _step(H=240, W=320, at=120, near=0.8, far=0.2, sigma=0.0, horizontal=True):
    y = np.arange(H)[:, None] * np.ones((1, W))
    d = np.where(y >= at, near, far).astype(np.float32)
    if not horizontal:
        d = np.ascontiguousarray(d.T)
    return cv2.GaussianBlur(d, (0, 0), sigma) if sigma else d


@pytest.mark.parametrize("sigma", [1.5, 3.0, 6.0])
def test_a_blurred_step_becomes_a_step_at_its_middle(sigma):
    d = _step(sigma=sigma)
    out, n = harden_soft_edges(d)
    assert n > 0 and out is not d
    col = out[:, 160]
    # every value within 5 % of the jump from its level (what stays soft is the flat tails)
    assert np.abs(col[:120] - 0.2).max() < 0.03 and np.abs(col[120:] - 0.8).max() < 0.03
    # the middle of the transition is where the exact edge was (within a pixel)
    assert abs(int(np.argmax(col > 0.5)) - 120) <= 1
    assert np.abs(out - _step()).mean() < 0.25 * np.abs(d - _step()).mean()
    assert np.array_equal(d, _step(sigma=sigma))          # the input is not modified


def test_exact_maps_come_back_untouched():
    """Hard steps between several layers, a slanted plane beside them, a thin wire: nothing
    is an in-between value, so the very same array comes back."""
    H, W = 240, 320
    yy, xx = np.mgrid[:H, :W]
    d = (0.1 + 0.3 * yy / H).astype(np.float32)               # slanted floor
    d[(yy - 80) ** 2 + (xx - 100) ** 2 < 40 ** 2] = 0.6          # disc
    d[(yy - 100) ** 2 + (xx - 130) ** 2 < 25 ** 2] = 0.9         # nearer disc overlapping it
    d[:, 250:252] = 0.95                                         # thin wire
    out, n = harden_soft_edges(d)
    assert n == 0 and out is d


def test_slopes_stay_continuous():
    H, W = 240, 320
    yy = np.mgrid[:H, :W][0].astype(np.float32)
    gentle = 0.2 + 0.6 * yy / H
    out, n = harden_soft_edges(gentle)
    assert n == 0 and out is gentle
    ramp = (0.1 + 0.5 * np.clip((yy - 60) / 120, 0, 1)).astype(np.float32)   # steep: 0.5 over half the height
    out, n = harden_soft_edges(ramp)
    assert np.array_equal(out[90:150], ramp[90:150])             # its middle is not cut into a step


def test_large_maps_take_the_subsampled_check_and_still_harden():
    big_sharp = _step(H=1920, W=2560, at=960)
    out, n = harden_soft_edges(big_sharp)
    assert n == 0 and out is big_sharp
    big_soft = _step(H=1920, W=2560, at=960, sigma=16.0)         # sigma 4 at 640 px, scaled
    out, n = harden_soft_edges(big_soft)
    col = out[:, 1000]
    assert n > 0 and abs(int(np.argmax(col > 0.5)) - 960) <= 2
    assert np.abs(col[:960] - 0.2).max() < 0.04 and np.abs(col[960:] - 0.8).max() < 0.04


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))


@pytest.mark.parametrize("focus", ["near", "far"])
def test_rendering_with_a_blurred_map_comes_closer_to_the_exact_render(rng, focus):
    H, W = 120, 160
    yy, xx = np.mgrid[:H, :W]
    img = (0.2 + 0.6 * rng.random((H, W, 3))).astype(np.float32)
    img[(yy - 60) ** 2 + (xx - 80) ** 2 < 30 ** 2] = (0.9, 0.3, 0.1)    # a flat orange disc in front
    exact = np.where((yy - 60) ** 2 + (xx - 80) ** 2 < 30 ** 2, 0.9, 0.2).astype(np.float32)
    soft = cv2.GaussianBlur(exact, (0, 0), 3.0)
    f = 0.9 if focus == "near" else 0.2
    ref = render(img, exact, f, 12.0)
    hard = render(img, soft, f, 12.0)
    as_is = refocus.render_linear(img, soft, f, 12.0, harden_edges=False)
    assert _psnr(hard, ref) > _psnr(as_is, ref) + 3.0


def test_render_command_soft_depth_keeps_the_map(tmp_path):
    from click.testing import CliRunner
    from refocus.cli import main
    H, W = 96, 128
    img = (np.random.default_rng(1).random((H, W, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), img)
    soft = cv2.GaussianBlur(_step(H, W, 48), (0, 0), 3.0)
    cv2.imwrite(str(tmp_path / "d.png"), np.round(soft * 65535).astype(np.uint16))
    outs = {}
    for name, extra in (("hard", []), ("soft", ["--soft-depth"])):
        res = CliRunner().invoke(main, ["render", str(tmp_path / "in.png"), "-o", str(tmp_path / f"{name}.png"),
                                        "--depth", str(tmp_path / "d.png"), "--focus-disparity", "0.8",
                                        "--blur", "15", "--bits", "16", "-v"] + extra)
        assert res.exit_code == 0, res.output
        outs[name] = cv2.imread(str(tmp_path / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        made_hard = int(res.output.split(" soft depth-edge px")[0].rsplit(", ", 1)[1])
        assert (made_hard > 0) == (name == "hard")
    assert np.abs(outs["hard"].astype(int) - outs["soft"]).max() > 1000


@pytest.mark.parametrize("shape", [(301, 433), (1001, 1369)])   # one and a 2x reduced grid (odd: 685 cells)
def test_hardening_at_the_steep_pixels_equals_the_full_size_formula(rng, shape):
    """The full-size pass looks only at steep pixels; it must pick the same pixels and give
    them the same levels as the formula evaluated everywhere (edges._candidates)."""
    import math
    from refocus.depth import edges
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W]
    d = 0.2 + 0.1 * yy / H                                              # a floor ...
    for cy, cx, rad, level in [(0.4, 0.3, 0.2, 0.8), (0.6, 0.7, 0.15, 0.55), (0.2, 0.8, 0.08, 0.95),
                               (0.75, 0.97, 0.05, 0.9)]:                 # the last at the right border
        d = np.where((yy - cy * H) ** 2 + (xx - cx * W) ** 2 < (rad * W) ** 2, level, d)   # ... and objects
    d = cv2.GaussianBlur(d.astype(np.float32), (0, 0), 2.5 * max(H, W) / 640)  # a model's soft steps
    d += rng.normal(0, 0.002, d.shape).astype(np.float32)
    out, n = harden_soft_edges(d)
    scale = max(H, W) / 640.0
    r, f = max(2, int(round(edges.RADIUS * scale))), max(1, int(math.floor(scale)))
    sel, (t, hi, lo) = edges._candidates(d, r, f, edges.STEEP / max(H, W))
    ref = d.copy()
    ref[sel] = np.where(t[sel] >= 0.5, hi[sel], lo[sel])
    assert n == int(sel.sum()) > 100
    np.testing.assert_array_equal(out, ref)
