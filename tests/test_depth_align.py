"""Depth steps moved onto the photo's outlines (refocus.depth.align): maps grown or shrunk
by a few pixels come back to the outline, exact maps and an object's own inner edges are
left alone, and the renderer uses the result."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from refocus import color
from refocus.depth.align import align_depth_edges

BENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "bench" / "scenes"


def _scene(H=480, W=640, r=120.0, seed=0):
    """A flat-coloured disc (near, d = 0.8) with an anti-aliased outline on a textured
    background (d = 0.2); returns (linear image, exact map, disc coverage)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cov = np.clip(r + 0.5 - np.hypot(yy - H / 2, xx - W / 2), 0, 1)          # pixel coverage
    bg = np.array([0.08, 0.12, 0.30], np.float32) + 0.03 * rng.standard_normal((H, W, 1)).astype(np.float32)
    fg = np.array([0.70, 0.45, 0.10], np.float32) + 0.02 * rng.standard_normal((H, W, 1)).astype(np.float32)
    img = np.clip(cov[..., None] * fg + (1 - cov[..., None]) * bg, 0, 1).astype(np.float32)
    d = np.where(cov >= 0.5, 0.8, 0.2).astype(np.float32)
    return img, d, cov


def _disc(n):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * n + 1, 2 * n + 1))


def _wrong(d, ref):
    return int(np.count_nonzero(np.abs(d - ref) > 0.05))


def test_an_exact_map_is_returned_as_it_is():
    img, d, _ = _scene()
    out, n = align_depth_edges(d, img)
    assert n == 0 and out is d


@pytest.mark.parametrize("how", ["dilate", "erode"])
@pytest.mark.parametrize("px", [3, 6])
def test_a_grown_or_shrunk_map_comes_back_to_the_outline(how, px):
    img, exact, _ = _scene()
    bad = getattr(cv2, how)(exact, _disc(px))
    before = _wrong(bad, exact)
    keep = bad.copy()
    out, n = align_depth_edges(bad, img)
    assert np.array_equal(bad, keep)                               # the input is not modified
    assert n > 0
    assert _wrong(out, exact) <= 0.03 * before                     # nearly every wrong pixel fixed
    assert set(np.unique(out)) <= {np.float32(0.2), np.float32(0.8)}   # levels kept, no new values


def test_an_objects_own_inner_edge_does_not_pull_an_exact_outline_in():
    # the disc's rim has the background's colour along a third of the outline (as a coin's
    # dark rim on dark bricks): the photo's strongest edge there is 4 px inside the outline
    img, d, cov = _scene()
    H, W = d.shape
    yy, xx = np.mgrid[0:H, 0:W]
    rim = (cov > 0) & (np.hypot(yy - H / 2, xx - W / 2) > 116) & (np.arctan2(yy - H / 2, xx - W / 2) < -np.pi / 3)
    img[rim] = np.array([0.08, 0.12, 0.30], np.float32)
    out, n = align_depth_edges(d, img)
    assert n == 0


def _discs(colours, r=40.0, H=480, W=640, seed=1):
    """Four flat discs (near, d = 0.8) in a 2x2 grid on a textured background (d = 0.2), each
    with its colour; returns (linear image, exact map, list of each disc's pixel mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    bg = np.array([0.08, 0.12, 0.30], np.float32)
    img = (bg + 0.03 * rng.standard_normal((H, W, 1))).astype(np.float32)
    d = np.full((H, W), 0.2, np.float32)
    masks = []
    for (cy, cx), col in zip([(140, 180), (140, 460), (340, 180), (340, 460)], colours):
        cov = np.clip(r + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1)[..., None]
        img = cov * np.asarray(col, np.float32) + (1 - cov) * img
        d[cov[..., 0] >= 0.5] = 0.8
        masks.append(np.hypot(yy - cy, xx - cx) < r + 12)
    return np.clip(img, 0, 1).astype(np.float32), d, masks


def test_a_grown_outline_moves_whole_where_the_photo_hides_part_of_it():
    # along a third of the outline the disc's rim (20 px) has the background's colour: no
    # edge within reach there, but the outline is 6 px off along the rest, so there too
    img, exact, _ = _scene()
    H, W = exact.shape
    yy, xx = np.mgrid[0:H, 0:W]
    rho, phi = np.hypot(yy - H / 2, xx - W / 2), np.arctan2(yy - H / 2, xx - W / 2)
    hidden = (rho > 100) & (rho < 121) & (phi < -np.pi / 3)
    img[hidden] = np.array([0.08, 0.12, 0.30], np.float32)
    bad = cv2.dilate(exact, _disc(6))
    out, _ = align_depth_edges(bad, img)
    sector = (rho > 100) & (rho < 140) & (phi < -np.pi / 3 - 0.1)
    assert _wrong(out[sector], exact[sector]) <= 0.1 * _wrong(bad[sector], exact[sector])
    assert _wrong(out, exact) <= 0.05 * _wrong(bad, exact)


def test_outlines_between_the_same_depths_move_together():
    # three discs stand out clearly, the fourth barely (its colour is near the background's
    # except along a quarter of its outline): alone it would not move; like the others its
    # map is 5 px too large, and moves with them
    strong = [(0.70, 0.45, 0.10), (0.20, 0.60, 0.15), (0.65, 0.20, 0.50)]
    img, exact, masks = _discs(strong + [(0.10, 0.14, 0.33)])
    H, W = exact.shape
    yy, xx = np.mgrid[0:H, 0:W]
    quarter = masks[3] & (xx > 460) & (yy < 340)
    img[quarter & (exact > 0.5)] = (0.75, 0.75, 0.2)
    bad = cv2.dilate(exact, _disc(5))
    out, _ = align_depth_edges(bad, img)
    for m in masks:
        assert _wrong(out[m], exact[m]) <= 0.1 * _wrong(bad[m], exact[m])


def test_a_thin_part_the_map_shrank_to_a_sliver_grows_back_with_its_level():
    # three discs and a bar 15 px wide at one depth; the map is eroded by 7 px, which
    # leaves a line 1 px wide of the bar: the discs say the level is 7 px too small, so
    # the sliver grows back too (it has no inside of its own to judge it by)
    cols = [(0.70, 0.45, 0.10), (0.20, 0.60, 0.15), (0.65, 0.20, 0.50), (0.70, 0.70, 0.20)]
    img, exact, masks = _discs(cols[:3] + [(0.08, 0.12, 0.30)])      # the fourth disc: none
    H, W = exact.shape
    yy, xx = np.mgrid[0:H, 0:W]
    bar = (np.abs(xx - 460) <= 7) & (np.abs(yy - 340) <= 60)
    img[bar] = cols[3]
    exact = np.where(masks[3], 0.2, exact).astype(np.float32)
    exact[bar] = 0.8
    bad = cv2.erode(exact, _disc(7))
    around = (np.abs(xx - 460) <= 20) & (np.abs(yy - 340) <= 52)     # along the bar, not its ends
    assert 0 < np.count_nonzero(bad[around] > 0.5) <= 2 * 106
    out, _ = align_depth_edges(bad, img)
    assert _wrong(out[around], exact[around]) <= 0.1 * _wrong(bad[around], exact[around])
    for m in masks[:3]:
        assert _wrong(out[m], exact[m]) <= 0.1 * _wrong(bad[m], exact[m])


def test_an_exact_outline_stays_when_others_at_the_same_depths_are_off():
    cols = [(0.70, 0.45, 0.10), (0.20, 0.60, 0.15), (0.65, 0.20, 0.50), (0.80, 0.80, 0.75)]
    img, exact, masks = _discs(cols)
    bad = np.where(masks[3], exact, cv2.dilate(exact, _disc(5)))    # three grown, one exact
    out, _ = align_depth_edges(bad, img)
    assert np.array_equal(out[masks[3]], exact[masks[3]])
    for m in masks[:3]:
        assert _wrong(out[m], exact[m]) <= 0.05 * _wrong(bad[m], exact[m])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shrunk_map_inside_a_textured_object_comes_back_on_the_whole_outlines_evidence(seed):
    # a strongly textured disc (fur, gravel) whose colour is not far from the background's:
    # the map's edge lies 6 px inside it; at each pixel the texture there is about as strong
    # as the outline 6 px out, so no pixel is clear on its own, but summed along the whole
    # outline the photo's edge is clearly 6 px out
    H, W, r = 480, 640, 60.0
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cov = np.clip(r + 0.5 - np.hypot(yy - H / 2, xx - W / 2), 0, 1)[..., None]
    base = np.array([0.08, 0.12, 0.30], np.float32)
    bg = base + 0.03 * rng.standard_normal((H, W, 1)).astype(np.float32)
    tex = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 1.0)[..., None]
    img = np.clip(cov * (base + 0.25 + 0.5 * tex) + (1 - cov) * bg, 0, 1).astype(np.float32)
    exact = np.where(cov[..., 0] >= 0.5, 0.8, 0.2).astype(np.float32)
    bad = cv2.erode(exact, _disc(6))
    out, _ = align_depth_edges(bad, img)
    assert _wrong(out, exact) <= 0.1 * _wrong(bad, exact)


def test_slopes_and_smooth_maps_are_left_alone():
    img, _, _ = _scene()
    H, W = img.shape[:2]
    slope = np.tile(np.linspace(0.1, 0.9, H, dtype=np.float32)[:, None], (1, W))
    assert align_depth_edges(slope, img)[1] == 0
    smooth = cv2.GaussianBlur(_scene()[1], (0, 0), 4.0)
    assert align_depth_edges(smooth, img)[1] == 0


def test_a_step_where_the_photo_has_no_edge_is_not_moved():
    img, d, _ = _scene()
    flat = np.full_like(img, 0.4)
    assert align_depth_edges(cv2.dilate(d, _disc(5)), flat)[1] == 0


def test_large_maps_are_aligned_at_full_size():
    # over the working grid (2560 px wide: shifts estimated at half size, applied at full size)
    img, exact, _ = _scene(H=1920, W=2560, r=500.0)
    bad = cv2.dilate(exact, _disc(16))
    out, n = align_depth_edges(bad, img)
    assert _wrong(out, exact) <= 0.05 * _wrong(bad, exact)


def test_the_renderer_uses_the_aligned_map():
    import refocus
    img, exact, _ = _scene()
    bad = cv2.dilate(exact, _disc(5))
    kw = dict(focus_disparity=0.8, K=20.0, highlight_gain=1.0, device="cpu")
    ref = refocus.render_linear(img, exact, **kw)
    info = refocus.RenderInfo()
    fixed = refocus.render_linear(img, bad, info=info, **kw)
    as_is = refocus.render_linear(img, bad, harden_edges=False, **kw)
    err = lambda a: float(np.sqrt(np.mean((a - ref) ** 2)))
    assert info.aligned_pixels > 0 and info.disparity is not None
    assert _wrong(info.disparity, exact) <= 0.03 * _wrong(bad, exact)
    assert err(fixed) < 0.5 * err(as_is)


@pytest.mark.skipif(not BENCH.is_dir(), reason=f"benchmark scenes not found at {BENCH}")
def test_benchmark_maps_exact_ones_unchanged_eroded_ones_mostly_fixed():
    scenes = json.loads((BENCH / "index.json").read_text())["scenes"]
    before = after = 0
    for sc in scenes:
        img = color.decode_srgb(cv2.cvtColor(cv2.imread(str(BENCH / sc / "image.png")), cv2.COLOR_BGR2RGB))
        exact = cv2.imread(str(BENCH / sc / "disparity.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        assert align_depth_edges(exact, img)[1] == 0, sc
        eroded = cv2.imread(str(BENCH / sc / "disparity_erode7.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        before += _wrong(eroded, exact)
        after += _wrong(align_depth_edges(eroded, img)[0], exact)
    assert after < 0.75 * before        # thin parts erased by the erosion can't come back


@pytest.mark.parametrize("flag", ["--depth-as-is", "--soft-depth"])
def test_render_command_aligns_unless_told_to_take_the_map_as_is(tmp_path, flag):
    from click.testing import CliRunner
    from refocus.cli import main
    img, exact, _ = _scene()
    cv2.imwrite(str(tmp_path / "in.png"), cv2.cvtColor(color.encode_srgb8(img), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "d.png"), np.round(cv2.dilate(exact, _disc(5)) * 65535).astype(np.uint16))
    moved = {}
    for name, extra in (("aligned", []), ("as_is", [flag])):
        res = CliRunner().invoke(main, ["render", str(tmp_path / "in.png"), "-o", str(tmp_path / f"{name}.png"),
                                        "--depth", str(tmp_path / "d.png"), "--focus-disparity", "0.8",
                                        "--blur", "20", "-v"] + extra)
        assert res.exit_code == 0, res.output
        moved[name] = int(res.output.split(" px moved onto outlines")[0].rsplit(", ", 1)[1])
    assert moved["aligned"] > 1000 and moved["as_is"] == 0


def test_the_pipeline_aligns_a_given_map_and_says_so():
    from refocus.pipeline import refocus_image
    img, exact, _ = _scene()
    settings = {"focus": "disparity", "focus_disparity": 0.8, "blur": 20}
    res = refocus_image(img, settings, disparity=cv2.dilate(exact, _disc(5)), device="cpu")
    assert any("onto the photo's outlines" in n for n in res.notes), res.notes
    ref = refocus_image(img, settings, disparity=exact, device="cpu")
    assert not any("onto the photo's outlines" in n for n in ref.notes), ref.notes
    assert _wrong(res.disparity, exact) <= 0.03 * _wrong(cv2.dilate(exact, _disc(5)), exact)


def test_a_map_with_many_steps_is_handled_whole():
    # 38 000 step pixels (more than one OpenCV remap row can take): vertical bars 16 px
    # wide in the photo, the map's bars 2 px to the right of them
    from refocus.depth.align import _steps
    H, W = 960, 640
    x = np.arange(W)
    bars = ((x // 16) % 2 == 0).astype(np.float32)
    img = np.repeat((0.1 + 0.6 * bars)[None, :, None], H, 0).repeat(3, 2).astype(np.float32)
    exact = np.repeat((0.2 + 0.6 * bars)[None], H, 0).astype(np.float32)
    off = np.roll(exact, 2, axis=1)
    assert np.count_nonzero(_steps(off)[0]) > 32767
    out, n = align_depth_edges(off, img)
    assert _wrong(out[:, 8:-8], exact[:, 8:-8]) <= 0.05 * _wrong(off[:, 8:-8], exact[:, 8:-8])


@pytest.mark.parametrize("H, W, q", [(960, 1280, 4), (853, 1280, 4), (1280, 853, 3), (101, 77, 5)])
def test_sparse_area_average_is_opencvs_inter_area(H, W, q):
    """The evidence along an outline is averaged on a coarse grid; the step pixels' area
    average is scattered from them directly.  It must be what cv2.resize(INTER_AREA) gives
    for the full map that is zero elsewhere, with whole and with fractional cells."""
    from refocus.depth.align import _area_taps, _scatter_area
    rng = np.random.default_rng(H + W)
    flat = np.unique(rng.integers(0, H * W, 4000))
    ys, xs = np.divmod(flat, W)
    v = rng.random(ys.size).astype(np.float32)
    dense = np.zeros((H, W), np.float32)
    dense[ys, xs] = v
    hq, wq = -(-H // q), -(-W // q)
    ref = cv2.resize(dense, (wq, hq), interpolation=cv2.INTER_AREA)
    got = _scatter_area(v, _area_taps(H, hq), _area_taps(W, wq), ys, xs, hq, wq)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * float(ref.max()))
