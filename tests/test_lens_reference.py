"""The lens against physical expectations and an independent numpy reference.

All scenes are small synthetic arrays in linear light.  Signed CoC r = K * (d - focus):
r < 0 behind the focal plane, r > 0 in front of it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import refocus
from refocus import aperture, lens
from conftest import iou, laplacian_abs, reference_convolution, render


# -- (a) a point light becomes the aperture ------------------------------------------------

N = 65
C = N // 2


def _point_light():
    img = np.zeros((N, N, 3), np.float32)
    img[C, C] = 1.0
    return img


def _dist():
    yy, xx = np.mgrid[:N, :N]
    return np.hypot(yy - C, xx - C)


@pytest.mark.parametrize("d,focus", [(0.0, 1.0), (1.0, 0.0)], ids=["behind", "in_front"])
def test_point_light_becomes_uniform_disc(d, focus):
    info = refocus.RenderInfo()
    out = render(_point_light(), np.full((N, N), d), focus, 5.0, info=info)    # |r| = 5
    assert info.scale == 1 and abs(info.max_coc - 5.0) < 1e-5
    assert out.shape == (N, N, 3) and out.dtype == np.float32
    for c in range(3):
        assert abs(float(out[..., c].sum()) - 1.0) < 0.02          # energy conserved
    o = out[..., 0]
    r = _dist()
    inner = o[r < 4]
    assert inner.std() / inner.mean() < 0.10                        # flat disc, not a Gaussian
    assert abs(inner.mean() - 1 / (math.pi * 25)) < 0.05 / (math.pi * 25)
    assert o[r > 6.5].max() < 1e-4 * o.max()                        # hard edge, nothing outside


def _footprint(blades, rotation=0.0):
    out = render(_point_light(), np.zeros((N, N)), 1.0, 5.0, aperture="polygon", blades=blades,
                 rotation=rotation)
    o = out[..., 0]
    yy, xx = np.mgrid[:N, :N].astype(np.float64)
    shape = aperture.inside(xx - C, yy - C, 5.0, "polygon", blades, rotation)
    reflected = aperture.inside(C - xx, C - yy, 5.0, "polygon", blades, rotation)
    return out, o >= 0.5 * o.max(), shape, reflected


@pytest.mark.parametrize("blades,rotation", [(3, 0.0), (5, 0.0), (5, 20.0), (6, 0.0), (7, 10.0)])
def test_point_light_polygon_has_the_aperture_shape_and_size(blades, rotation):
    """Shape and size of a polygonal bokeh, whatever its orientation."""
    out, mask, shape, reflected = _footprint(blades, rotation)
    assert abs(float(out[..., 1].sum()) - 1.0) < 0.02
    assert max(iou(mask, shape), iou(mask, reflected)) > 0.85
    circle = _dist() <= 5.0
    assert mask.sum() < 0.95 * circle.sum()          # smaller than the circle of the same radius
    # not a circle: the circle mask fits the footprint clearly worse than the polygon
    assert iou(mask, circle) < max(iou(mask, shape), iou(mask, reflected)) - 0.03 or blades >= 7


@pytest.mark.parametrize("blades", [
    6,                                                # centrally symmetric: orientation cannot show
    5,                                                # odd blades: orientation shows (vertex up)
    3,
])
def test_point_light_polygon_footprint_matches_aperture_inside(blades):
    out, mask, shape, _ = _footprint(blades)
    assert iou(mask, shape) > 0.85
    # the exact, anti-aliased footprint is the kernel itself
    k = aperture.kernel(5.0, "polygon", blades)
    h = k.shape[0] // 2
    np.testing.assert_allclose(out[C - h:C + h + 1, C - h:C + h + 1, 0], k, atol=1e-5)


# -- (b) uniform depth = convolution with the aperture kernel -------------------------------

@pytest.mark.parametrize("shape,blades", [
    ("circle", 6),
    ("polygon", 6),
    ("polygon", 5),                                   # not centrally symmetric: checks convolution
])
@pytest.mark.parametrize("d,focus,K", [(0.2, 0.6, 10.0), (0.8, 0.4, 10.0)], ids=["behind", "in_front"])
def test_uniform_depth_equals_reference_convolution(rng, shape, blades, d, focus, K):
    H, W = 48, 56
    img = (rng.random((H, W, 3)) * 0.9).astype(np.float32)
    r = K * (d - focus)
    assert abs(abs(r) - 4.0) < 1e-4
    out = render(img, np.full((H, W), d), focus, K, aperture=shape, blades=blades)
    ref = reference_convolution(img, aperture.kernel(4.0, shape, blades))
    diff = np.abs(out.astype(np.float64) - ref)
    assert diff[2:-2, 2:-2].max() < 1e-3
    # the blur really happened: far from the input
    assert np.abs(out - img)[2:-2, 2:-2].mean() > 0.1


# -- (c) in-focus pixels come back unchanged -----------------------------------------------

@pytest.mark.parametrize("far", [0.0, 0.3])
def test_in_focus_pixels_unchanged(rng, far):
    H, W, edge = 64, 96, 48
    img = rng.random((H, W, 3)).astype(np.float32)
    d = np.full((H, W), 0.5, np.float32)
    d[:, edge:] = far                                  # behind the focal plane
    K = 12.0
    radius = int(math.ceil(K * (0.5 - far))) + 1
    out = render(img, d, 0.5, K)
    np.testing.assert_allclose(out[:, :edge - radius], img[:, :edge - radius], atol=1e-5, rtol=0)
    # the right half is blurred
    assert np.abs(out[:, edge + radius:] - img[:, edge + radius:]).mean() > 0.1


# -- (d) depth steps ---------------------------------------------------------------------

def _square_scene():
    n = 96
    img = np.full((n, n, 3), 0.05, np.float32)
    d = np.full((n, n), 0.1, np.float32)
    img[32:64, 32:64] = 0.9
    d[32:64, 32:64] = 0.9
    return img, d


def test_sharp_subject_does_not_bleed_into_blurred_background():
    img, d = _square_scene()
    info = refocus.RenderInfo()
    out = render(img, d, 0.9, 10.0, info=info)          # background r = -8
    assert info.scale == 1
    ring = np.zeros(d.shape, bool)
    ring[29:67, 29:67] = True
    ring[32:64, 32:64] = False                          # 3 px around the square
    assert out[ring].max() <= 0.05 + 0.02
    far = np.ones(d.shape, bool)
    far[20:76, 20:76] = False
    np.testing.assert_allclose(out[far], 0.05, atol=1e-4)
    # the square stays sharp, up to its edge pixels
    np.testing.assert_allclose(out[32:64, 32:64], 0.9, atol=1e-4)


@pytest.mark.parametrize("d_fg,focus,K", [
    (0.75, 0.25, 16.0),                       # CoC of the square exactly +8 (float32)
    (0.9, 0.1, 10.0),                         # CoC 7.9999995 in float32: must not swell the silhouette
], ids=["coc_8.0", "coc_7.9999995"])
def test_blurred_foreground_lets_background_show_through(d_fg, focus, K):
    img, d = _square_scene()
    d = np.where(d > 0.5, d_fg, focus).astype(np.float32)      # background in focus
    out = render(img, d, focus, K)                              # square r = +8
    frac = (out[..., 0] - 0.05) / (0.9 - 0.05)
    # the square's centre is uniform 0.9, the background far from it untouched
    assert abs(frac[48, 48] - 1.0) < 1e-3
    np.testing.assert_allclose(out[:10], img[:10], atol=1e-5)
    for y in (40, 48, 56):                              # rows away from the corners
        for x in (31, 32, 63, 64):                      # both sides of the left/right silhouettes
            assert 0.3 <= frac[y, x] <= 0.7, (y, x, frac[y, x])
        for x in (31, 32, 63, 64):
            assert 0.3 <= frac[x, y] <= 0.7, (x, y, frac[x, y])   # top / bottom silhouettes
    # the blurred edge spreads: partial coverage a few pixels outside and inside
    assert 0.02 < frac[48, 28] < 0.45 and 0.55 < frac[48, 36] < 0.98


@pytest.mark.parametrize("side", ["behind", "in_front"])
def test_blurred_object_edge_is_continuous_in_coc(side):
    """An object over a flat background: its silhouette and the image's light must not jump
    when its CoC changes by 0.02 px across an integer."""
    img, d0 = _square_scene()
    results = []
    for r in (3.99, 4.01):
        if side == "behind":     # square behind the focal plane, background farther still
            d = np.where(d0 > 0.5, 1.0 - r / 8.0, 0.0)
            out = render(img, d, 1.0, 8.0)
        else:                    # square in front of the focal plane, background in focus
            d = np.where(d0 > 0.5, r / 8.0, 0.0)
            out = render(img, d, 0.0, 8.0)
        frac = (out[48, :, 0] - 0.05) / 0.85
        results.append((float(frac[31] + frac[32]) / 2, float(out.sum() / img.sum())))
    (edge_a, light_a), (edge_b, light_b) = results
    assert abs(edge_a - edge_b) < 0.03, results
    assert abs(light_a - light_b) < 0.01, results


@pytest.mark.parametrize("r", [3.5, 4.3, 6.75])
def test_flat_foreground_at_fractional_coc_matches_reference_blur(r):
    """A fronto-parallel object whose CoC is not a whole number of pixels is blurred by its own
    radius (not a blend of the two integer radii around it), with no swelling of its edge."""
    H = W = 80
    img = np.full((H, W, 3), 0.05, np.float32)
    img[25:55, 25:55] = 0.9
    sq = np.zeros((H, W), np.float32)
    sq[25:55, 25:55] = 1.0
    d = np.where(sq > 0, 0.5, 0.0).astype(np.float32)            # square CoC = +r, background in focus
    out = render(img, d, 0.0, 2.0 * r)
    alpha = reference_convolution(sq[..., None], aperture.kernel(r))[..., 0]
    ref = 0.05 + alpha * (0.9 - 0.05)                          # blurred square over the sharp background
    err = np.abs(out[..., 0] - ref)
    assert err.max() < 0.03, (r, float(err.max()))
    assert abs(float(out[..., 0].sum() - ref.sum())) / float(ref.sum()) < 0.005


# -- (e) a slanted plane blurs continuously ------------------------------------------------

SLANT_H, SLANT_W, SLANT_FOCUS_COL, SLANT_K = 192, 256, 64, 10.0


@pytest.fixture(scope="module")
def slanted_plane():
    rng = np.random.default_rng(3)
    img = rng.random((SLANT_H, SLANT_W)).astype(np.float32)
    ramp = (np.arange(SLANT_W) / (SLANT_W - 1)).astype(np.float32)
    d = np.broadcast_to(ramp[None, :], (SLANT_H, SLANT_W)).copy()
    focus = float(ramp[SLANT_FOCUS_COL])
    out = render(np.repeat(img[..., None], 3, axis=2), d, focus, SLANT_K).mean(axis=2)
    rho = SLANT_K * (ramp - focus)
    return img, out, rho


def _slanted_reference(img, rho):
    """Ideal gather blur: every column blurred with the anti-aliased kernel of its own radius."""
    H, W = img.shape
    pad = 10
    p = np.pad(img.astype(np.float64), pad, mode="edge")
    ref = np.zeros((H, W))
    for j in range(W):
        k = aperture.kernel(abs(rho[j])).astype(np.float64)
        h = k.shape[0] // 2
        for u in range(-h, h + 1):
            for v in range(-h, h + 1):
                if k[u + h, v + h]:
                    ref[:, j] += k[u + h, v + h] * p[pad + u:pad + u + H, pad + j + v]
    return ref


def _hf_profile(o):
    """High-frequency energy per column (mean |Laplacian|), smoothed over 8 columns."""
    per_col = laplacian_abs(o)[8:-8].mean(axis=0)              # columns 1 .. W-2
    sm = np.convolve(per_col, np.ones(8) / 8, mode="valid")
    centre = np.arange(len(sm)) + 1 + 3.5
    return centre, sm


def _worst_rise(o):
    """Largest ratio of the smoothed HF energy to its running minimum, going outward from focus."""
    centre, sm = _hf_profile(o)
    worst = 0.0
    for side in (centre > SLANT_FOCUS_COL + 4, centre < SLANT_FOCUS_COL - 4):
        v = sm[side]
        if centre[side][0] < SLANT_FOCUS_COL:
            v = v[::-1]
        run_min = np.minimum.accumulate(v)
        worst = max(worst, float((v[1:] / run_min[:-1]).max()))
    return worst


def test_slanted_plane_has_no_brightness_bands_and_blur_grows_with_coc(slanted_plane):
    img, out, rho = slanted_plane
    # brightness: every 16-column band keeps its mean (no dark/bright stripes at slot changes)
    for x0 in range(0, SLANT_W, 16):
        band_in = img[10:-10, x0:x0 + 16].mean()
        band_out = out[10:-10, x0:x0 + 16].mean()
        assert abs(band_out - band_in) < 0.01, x0
    # sharpness, averaged over whole CoC units, falls on both sides of the focal column
    per_col = laplacian_abs(out)[8:-8].mean(axis=0)
    r = np.abs(rho[1:-1])
    side = np.sign(rho[1:-1])
    for s_ in (-1, 1):
        sel = side == s_
        units = [per_col[sel & (r >= u) & (r < u + 1)].mean() for u in range(int(r[sel].max()))]
        assert len(units) >= 2
        assert all(b < 0.95 * a for a, b in zip(units, units[1:])), units
    # in focus it is sharp, at the far end much blurred
    assert per_col[SLANT_FOCUS_COL - 1] > 10 * per_col[-4:].mean()


def test_slanted_plane_reference_criterion_is_achievable(slanted_plane):
    """The 'no bands' criterion below holds for an ideal per-pixel-radius blur."""
    img, _, rho = slanted_plane
    assert _worst_rise(_slanted_reference(img, rho)) < 1.15


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "BUG (banding): between two integer CoC radii the renderer blends the two neighbouring slot "
    "blurs linearly; the blend is much softer than either (fine texture at |r| = k + 1/2 has "
    "~30-50% less high-frequency energy than at k + 1), so sharpness oscillates with a period of "
    "one CoC pixel across a slanted plane instead of falling monotonically"))
def test_slanted_plane_sharpness_falls_monotonically(slanted_plane):
    _, out, _ = slanted_plane
    assert _worst_rise(out) < 1.15


def test_uniform_blur_sharpness_falls_monotonically_with_radius(rng):
    H = W = 96
    img = rng.random((H, W, 3)).astype(np.float32)
    d = np.full((H, W), 0.25, np.float32)
    radii = [3.0, 3.5, 4.0, 4.5, 5.0]
    hf_out, hf_ref = [], []
    for r in radii:
        out = render(img, d, 0.75, r / 0.5)
        hf_out.append(laplacian_abs(out.mean(axis=2))[10:-10, 10:-10].mean())
        ref = reference_convolution(img.mean(axis=2), aperture.kernel(r))
        hf_ref.append(laplacian_abs(ref)[10:-10, 10:-10].mean())
    # the ideal blur gets monotonically softer; so must the renderer (10% noise allowed)
    assert all(b < 1.1 * a for a, b in zip(hf_ref, hf_ref[1:])), hf_ref
    assert all(b < 1.1 * a for a, b in zip(hf_out, hf_out[1:])), hf_out


# -- (f) highlights ------------------------------------------------------------------------

def _spot_scene(n=128):
    img = np.full((n, n, 3), 0.01, np.float32)
    img[n // 2 - 1:n // 2 + 2, n // 2 - 1:n // 2 + 2] = 1.0
    return img


def test_small_clipped_light_source_gets_bright_bokeh():
    img = _spot_scene()
    d = np.zeros(img.shape[:2], np.float32)
    bg = 0.01 * img.size
    sums, peaks = {}, {}
    for gain in (1.0, 4.0):
        info = refocus.RenderInfo()
        out = render(img, d, 1.0, 6.0, highlight_gain=gain, info=info)
        sums[gain] = float(out.sum()) - bg
        peaks[gain] = float(out.max())
        assert info.highlight_pixels == (0 if gain == 1.0 else 9)
    ratio = sums[4.0] / sums[1.0]
    assert 0.9 * 4.0 < ratio < 1.05 * 4.0               # the light's energy is raised to gain x clip
    assert peaks[4.0] > 2 * peaks[1.0]


def test_clipped_light_takes_its_colour_from_its_unclipped_rim():
    # an orange lamp: clipped to white in its core; partly covered rim pixels show its hue
    n = 128
    lamp = np.array([20.0, 9.0, 3.0], np.float32)          # true radiance, clips to (1, 1, 1)
    bg = np.float32(0.01)
    img = np.full((n, n, 3), bg, np.float32)
    c = n // 2
    img[c - 1:c + 2, c - 1:c + 2] = 1.0
    for (y, x), cover in {(c - 2, c): 0.03, (c + 2, c): 0.02, (c, c - 2): 0.025, (c, c + 2): 0.03}.items():
        img[y, x] = np.minimum(cover * lamp + (1 - cover) * bg, 1.0)
    white = img.copy()
    for (y, x) in ((c - 2, c), (c + 2, c), (c, c - 2), (c, c + 2)):
        white[y, x] = img[y, x].mean()                       # the same rim, neutral
    d = np.zeros((n, n), np.float32)
    o = render(img, d, 1.0, 6.0, highlight_gain=6.0)[c - 3:c + 4, c - 3:c + 4].mean(axis=(0, 1)) - bg
    w = render(white, d, 1.0, 6.0, highlight_gain=6.0)[c - 3:c + 4, c - 3:c + 4].mean(axis=(0, 1)) - bg
    assert o[0] > 1.2 * o[1] > 1.2 * 1.2 * o[2]               # the bokeh is orange, R > G > B
    assert np.ptp(w) < 0.02 * w.mean()                       # a neutral rim leaves the disc white
    lum = np.array([0.2126, 0.7152, 0.0722])
    assert abs(o @ lum - w @ lum) < 0.25 * (w @ lum)         # the gain, not the hue, sets the energy


def test_large_white_surface_is_not_brightened():
    n = 128
    img = np.full((n, n, 3), 0.2, np.float32)
    img[34:94, 34:94] = 1.0
    d = np.zeros((n, n), np.float32)
    info = refocus.RenderInfo()
    s4 = float(render(img, d, 1.0, 6.0, highlight_gain=4.0, info=info).sum())
    s1 = float(render(img, d, 1.0, 6.0, highlight_gain=1.0).sum())
    assert info.highlight_pixels == 0
    assert abs(s4 - s1) <= 0.005 * s1


def test_light_source_in_focus_stays_clipped_not_boosted():
    img = _spot_scene()
    n = img.shape[0]
    d = np.zeros((n, n), np.float32)
    d[n // 2 - 8:n // 2 + 8, n // 2 - 8:n // 2 + 8] = 1.0     # the lamp is in the focal plane
    out4 = render(img, d, 1.0, 6.0, highlight_gain=4.0)
    out1 = render(img, d, 1.0, 6.0, highlight_gain=1.0)
    np.testing.assert_allclose(out4, out1, atol=1e-6)
    np.testing.assert_allclose(out4[n // 2 - 1:n // 2 + 2, n // 2 - 1:n // 2 + 2], 1.0, atol=1e-6)


def test_light_sources_in_a_large_photo_are_judged_by_their_unclipped_surroundings(rng):
    """Large photos estimate the surroundings on a reduced copy.  A lamp in the dark is a light
    source even right next to a big white (clipped) area, whose pixels do not count as its
    surroundings; the same spot on a bright wall is not."""
    from refocus import highlights
    H, W = 1500, 2000                                       # reduced 3x for the surround
    img = (0.02 + 0.01 * rng.random((H, W, 3))).astype(np.float32)
    img[300:900, 100:700] = 1.0                             # a big white area: never a light
    img[:, 1300:] = 0.6 + 0.1 * rng.random((H, 700, 3))     # a bright wall
    lamps = {"next to white": (600, 712), "in the dark": (1200, 1000), "on the wall": (700, 1650)}
    for y, x in lamps.values():
        img[y - 2:y + 3, x - 2:x + 3] = 1.0
    ys, xs, _ = highlights.highlight_mask(img, 6.0)
    raised = lambda y, x: bool(((np.abs(ys - y) <= 2) & (np.abs(xs - x) <= 2)).any())
    assert raised(*lamps["next to white"]) and raised(*lamps["in the dark"])
    assert not raised(*lamps["on the wall"])
    assert not ((ys >= 300) & (ys < 900) & (xs >= 100) & (xs < 700)).any()


# -- (g) the working-scale path ------------------------------------------------------------

@pytest.mark.parametrize("H,W", [(900, 1200), (901, 1203)])
def test_working_scale_keeps_focus_exact_and_brightness(H, W):
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:H, :W]
    checker = (((yy // 7) + (xx // 7)) % 2).astype(np.float32)
    img = np.repeat((0.05 + 0.75 * checker)[..., None], 3, axis=2)
    edge = 500
    img[:, :edge] = rng.random((H, edge, 3)) * 0.8
    d = np.zeros((H, W), np.float32)
    d[:, :edge] = 1.0
    info = refocus.RenderInfo()
    out = render(img, d, 1.0, 40.0, info=info)
    assert info.max_coc == 40.0
    assert info.scale == lens.choose_scale(H, W, 40.0) and info.scale > 1
    assert info.working_size == (-(-W // info.scale), -(-H // info.scale))
    # in-focus pixels: exact (the blurred background lies behind them)
    np.testing.assert_allclose(out[:, :edge], img[:, :edge], atol=1e-5, rtol=0)
    # the blurred background keeps its mean brightness and lost its texture
    reg = (slice(60, H - 60), slice(edge + 100, W - 60))
    assert abs(out[reg].mean() / img[reg].mean() - 1.0) < 0.01
    assert out[reg].std() < 0.02 * img[reg].std()
    # ... also at the frame edges (edge-replicated borders, padding to whole blocks)
    for sl in ((slice(None), slice(W - 3, W)), (slice(H - 3, H), slice(edge + 100, W))):
        assert abs(out[sl].mean() / img[sl].mean() - 1.0) < 0.02


def test_choose_scale():
    R = lens.RADIUS_SLOTS
    assert lens.choose_scale(200, 300, float(R)) == 1
    assert lens.choose_scale(200, 300, R + 0.01) == 2
    assert lens.choose_scale(200, 300, 3.5 * R) == 4
    assert lens.choose_scale(900, 1200, 40.0) == max(2, math.ceil(40.0 / R))
    assert lens.choose_scale(4000, 6000, 1.0) == math.ceil(math.sqrt(24e6 / lens.PIXEL_BUDGET))
    assert lens.choose_scale(400, 800, 0.0) == 1            # exactly the pixel budget


@pytest.mark.parametrize("K", [6.0, 30.0, 70.0])
def test_strips_give_the_same_result_as_one_pass(rng, monkeypatch, K):
    H, W = 203, 157
    img = rng.random((H, W, 3)).astype(np.float32)
    d = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    d[50:120, 40:100] = 0.9
    info = refocus.RenderInfo()
    whole = render(img, d, 0.5, K, info=info)
    for rows in (7, 10, 33):
        monkeypatch.setattr(lens, "STRIP_PIXELS", W * rows)
        strips = render(img, d, 0.5, K)
        assert np.abs(strips - whole).max() < 1e-6, (info.scale, rows)


def _count_graph_runs(monkeypatch) -> list:
    """The names of the project's graphs, one per run, as the renderer runs them."""
    from refocus import runtime
    runs = []
    real = runtime.graph_session

    def spy(name, device="auto"):
        sess = real(name, device)

        class Counted:
            def run(self, outs, feeds, *options):
                runs.append(name)
                return sess.run(outs, feeds, *options)

            def run_with_iobinding(self, io, *options):
                runs.append(name)
                return sess.run_with_iobinding(io, *options)

            def __getattr__(self, a):
                return getattr(sess, a)
        return Counted()
    monkeypatch.setattr(runtime, "graph_session", spy)
    return runs


def test_strips_with_nothing_in_front_take_the_short_graph_with_the_same_result(rng, monkeypatch):
    """Focus on the background with a small object in front: the strips its blur does not reach
    run the 3-channel graph; the picture is the one-pass (full graph) picture."""
    H, W = 240, 120
    img = rng.random((H, W, 3)).astype(np.float32)
    d = np.tile(np.linspace(0.2, 0.4, H, dtype=np.float32)[:, None], (1, W))   # sloped background ...
    d[120:] = 0.4                                              # ... then in focus around the object
    d[160:180, 40:80] = 0.9                                    # the object in front: its blur covers
    whole = render(img, d, 0.4, 20.0)                      # one strip: the object is in it
    runs = _count_graph_runs(monkeypatch)
    monkeypatch.setattr(lens, "STRIP_PIXELS", W * 20)
    strips = render(img, d, 0.4, 20.0)
    ups = [r for r in runs if r.startswith("guided")]
    assert "guided_upsample_behind" in ups and "guided_upsample" in ups, ups
    assert ups.count("guided_upsample") < ups.count("guided_upsample_behind")
    assert np.abs(strips - whole).max() < 1e-6


def test_columns_nothing_in_front_reaches_take_the_short_graph_with_the_same_result(rng, monkeypatch):
    """A small object in front of the focus over part of the width: in its strip, the
    columns its blur cannot reach run the 3-channel graph (tiles left and right of it), and
    the picture is the one of the full graph over the whole strip."""
    H, W = 48, 320
    img = rng.random((H, W, 3)).astype(np.float32)
    # the background a little behind the focus (partly sharp: where the short and the full
    # formula would part if a tile's margin were too narrow), the object in front
    d = np.tile(np.linspace(0.17, 0.2, W, dtype=np.float32)[None, :], (H, 1))
    d[10:30, 150:180] = 0.9
    focus, K = 0.2, 50.0                                      # max CoC 35 px: working scale 1/3
    assert lens.choose_scale(H, W, K * 0.7) == 3
    runs = _count_graph_runs(monkeypatch)
    monkeypatch.setattr(lens, "COLUMN_TILE_MIN", 2.0)          # never split: the reference
    whole = render(img, d, focus, K)
    assert [r for r in runs if r.startswith("guided")] == ["guided_upsample"]
    runs.clear()
    monkeypatch.setattr(lens, "COLUMN_TILE_MIN", 0.125)
    tiled = render(img, d, focus, K)
    assert [r for r in runs if r.startswith("guided")] == \
        ["guided_upsample_behind", "guided_upsample", "guided_upsample_behind"]
    assert np.abs(tiled - whole).max() < 1e-5
    assert np.abs(tiled - img)[:, 150:180].max() > 0.05       # the object was blurred


# -- the trivial paths ---------------------------------------------------------------------

def test_no_blur_returns_the_input_clipped(rng):
    img = (rng.random((20, 30, 3)) * 1.5 - 0.2).astype(np.float32)
    d = rng.random((20, 30)).astype(np.float32)
    out = render(img, d, 0.5, 0.0)
    np.testing.assert_array_equal(out, np.clip(img, 0, 1))
    out = render(img, d, 0.5, 0.2)                        # max CoC below MIN_BLUR
    np.testing.assert_array_equal(out, np.clip(img, 0, 1))


def test_grey_image_is_blurred_like_its_rgb_version(rng):
    grey = rng.random((24, 32)).astype(np.float32)
    d = np.zeros((24, 32), np.float32)
    out = render(grey, d, 1.0, 4.0)
    assert out.shape == grey.shape
    rgb = render(np.repeat(grey[..., None], 3, axis=2), d, 1.0, 4.0)
    np.testing.assert_allclose(out, rgb[..., 0], atol=1e-6)
    out1 = render(grey[..., None], d, 1.0, 4.0)
    assert out1.shape == (24, 32, 1)


@pytest.mark.parametrize("shape", [(24, 32), (24, 32, 1)])
def test_grey_image_without_blur_is_returned(rng, shape):
    grey = rng.random(shape).astype(np.float32)
    out = render(grey, np.zeros((24, 32), np.float32), 0.0, 0.0)
    assert out.shape == shape
    np.testing.assert_array_equal(out, grey)


# -- cost follows the blur present: empty slots and zero kernel rings are skipped -----------

def test_skipping_empty_slots_and_zero_rings_does_not_change_the_render(monkeypatch, rng):
    """Empty slots get a 1x1 kernel and kernels lose their all-zero rings; the picture must be
    the one the full kernels of every slot give."""
    H, W = 48, 64
    img = rng.random((H, W, 3)).astype(np.float32)
    d = np.where(np.arange(W)[None, :] < W // 2, 0.2, 0.9) * np.ones((H, 1))
    d = d + np.linspace(0, 0.05, H)[:, None]                       # a few slots, most empty
    fast = render(img, d, 0.9, 20.0, aperture="polygon", blades=6, rotation=10.0)
    full_kernels = lens._kernels

    def untrimmed(R, shape, blades, rotation, radii=None, occupied=None):
        from refocus.onnx_models import kernel_input_name
        feeds = {}
        for i in range(2 * R + 1):
            if i != R:
                k = aperture.kernel(abs(radii[i]), shape, blades, rotation)[::-1, ::-1]
                feeds[kernel_input_name(i)] = np.ascontiguousarray(np.broadcast_to(k, (4, 1) + k.shape))
        return feeds

    monkeypatch.setattr(lens, "_kernels", untrimmed)
    slow = render(img, d, 0.9, 20.0, aperture="polygon", blades=6, rotation=10.0)
    np.testing.assert_allclose(fast, slow, atol=2e-6, rtol=0)
    feeds = full_kernels(lens.RADIUS_SLOTS, "circle", 6, 0.0, np.arange(25) - 12.0,
                         np.arange(25) % 2 == 0)
    assert feeds["kernel_01"].shape == (4, 1, 1, 1)                 # empty slot: 1x1
    assert feeds["kernel_00"].shape == (4, 1, 25, 25)               # r = 12: 27x27 less its zero ring


def test_banded_slicing_with_sparse_boost_equals_slicing_the_boosted_padded_image(rng):
    """split_slices works band by band on the unpadded photo and applies the highlight boost
    as it goes; the slots must be those of the whole boosted, edge-padded photo at once."""
    from refocus import highlights
    s, H, W = 3, 40, 52                                   # not multiples of s: padding
    img = (rng.random((H, W, 3)) * 0.3).astype(np.float32)
    img[5:7, 8:10] = 1.0                                  # small lights in a dark frame
    img[30:32, 40:42] = 1.0
    img[38:40, 1:3] = 1.0                                 # one in the last, padded band
    rho = np.where(np.arange(W)[None, :] < 20, -3.2, 1.7) * np.ones((H, 1))
    rho = (rho + rng.uniform(-0.4, 0.4, (H, W))).astype(np.float32)
    found = highlights.boost_factors(img, 6.0, rho)
    assert found is not None and found[0].size >= 12
    h, w = -(-H // s), -(-W // s)
    rho_p = np.pad(rho, ((0, h * s - H), (0, w * s - W)), mode="edge")
    boosted, _ = highlights.boost(img, 6.0, rho)
    whole = lens.split_slices(np.pad(boosted, ((0, h * s - H), (0, w * s - W), (0, 0)), mode="edge"),
                              rho_p, s, band_blocks=10 ** 6)
    banded = lens.split_slices(img, rho_p, s, boost=found, band_blocks=2)
    np.testing.assert_array_equal(banded, whole)
    assert banded[:, :3].max() > 1.5                      # the boost is in the slots


def test_the_short_upsampling_graph_is_used_only_when_nothing_is_in_front(monkeypatch, rng):
    """Focus on the nearest object: nothing in front, the 3-channel graph (equal to the full
    one there: test_graphs); focus far: the full graph, whose front layer is needed."""
    from refocus import runtime
    H, W = 60, 80
    img = rng.random((H, W, 3)).astype(np.float32)
    d = np.where((np.arange(W)[None, :] - 40) ** 2 + (np.arange(H)[:, None] - 30) ** 2 < 300, 0.9, 0.3)
    used = []
    real = runtime.graph_session
    monkeypatch.setattr(runtime, "graph_session",
                        lambda name, device="auto": used.append(name) or real(name, device))
    near = render(img, d, 0.9, 30.0)
    assert used[-1] == "guided_upsample_behind"
    np.testing.assert_array_equal(near[d > 0.5][:5], img[d > 0.5][:5])   # the sharp subject kept
    render(img, d, 0.3, 30.0)
    assert used[-1] == "guided_upsample"


def test_a_subject_a_hair_in_front_of_the_focus_is_in_focus_not_in_front(monkeypatch, rng):
    """A 16-bit map stores d = 0.75 as 0.7499962; focusing at 0.749996 puts the subject
    1e-5 px of CoC in front of the focal plane.  That is in focus: no slot in front gets
    anything (it used to get mattes of ~1e-6 next to the subject's outline, where the slope
    test blends, and the render ran the 10-channel upsampling), and the subject comes back
    unchanged."""
    from refocus import runtime
    H, W = 90, 120
    img = (rng.random((H, W, 3)) * 0.8).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    subject = (xx - 60) ** 2 + (yy - 45) ** 2 < 900
    ground = 0.08 + 0.3 * yy / H                              # a slope behind: blended slots
    d = np.where(subject, round(0.75 * 65535) / 65535, ground).astype(np.float32)
    focus, K = 0.749996, 40.0
    s = lens.choose_scale(H, W, K * 0.75)
    rho = np.clip(np.float32(K) * (d - np.float32(focus)) / s, -12, 12 - 1e-3)
    snapped, _ = lens.snap_to_slots(rho, s)
    slots = lens.split_slices(img, snapped, s)
    R = lens.RADIUS_SLOTS
    assert slots[R + 1:, 3].max() == 0.0                      # nothing in front of the focus
    assert slots[:R, 3].max() > 0.5 and slots[R, 3].max() == 1.0
    used = []
    real = runtime.graph_session
    monkeypatch.setattr(runtime, "graph_session",
                        lambda name, device="auto": used.append(name) or real(name, device))
    out = render(img, d, focus, K)
    assert used[-1] == "guided_upsample_behind"
    inner = (xx - 60) ** 2 + (yy - 45) ** 2 < 500
    np.testing.assert_array_equal(out[inner], img[inner])


@pytest.mark.parametrize("s", [1, 3, 4])
def test_slicing_equals_a_pixel_by_pixel_reference(rng, s):
    """Each pixel puts (I, 1, 1) into slot floor(rho) and (t I, t, 0) into the next (t = rho -
    floor(rho)); a slot cell is the mean over its s x s block.  Covers blocks all in one slot
    pair (the fast path), blocks across depth edges (the sparse mixed path), and bands with
    no blended pixel at all (flat: slot k + 1 left empty)."""
    R = lens.RADIUS_SLOTS
    h, w = 14, 11
    H, W = h * s, w * s
    img = rng.random((H, W, 3)).astype(np.float32)
    blocks = np.where(rng.random((h, w)) < 0.3, rng.integers(-R, R, (h, w)), 2)
    rho = np.kron(blocks, np.ones((s, s))).astype(np.float32)
    rho[: 4 * s] += rng.uniform(-0.7, 0.7, (4 * s, W)).astype(np.float32)     # edges and blends ...
    rho[-3 * s:, : 5 * s] = -3.0                                              # ... and a flat band
    rho = np.clip(rho, -R, R - 1e-3)
    ref = np.zeros((2 * R + 1, 5, h, w))
    k = np.floor(rho).astype(int) + R
    t = rho - np.floor(rho)
    for y in range(H):
        for x in range(W):
            ref[k[y, x], :3, y // s, x // s] += img[y, x]
            ref[k[y, x], 3:, y // s, x // s] += 1.0
            ref[k[y, x] + 1, :3, y // s, x // s] += t[y, x] * img[y, x]
            ref[k[y, x] + 1, 3, y // s, x // s] += t[y, x]
    ref /= s * s
    occupied = np.ones(2 * R + 1, bool)
    got = lens.split_slices(img, rho, s, band_blocks=3, occupied=occupied)
    np.testing.assert_allclose(got, ref, atol=2e-6, rtol=0)
    # the slots it says hold something: from the slots written, as all of them would say
    np.testing.assert_array_equal(occupied, ref[:, 3].reshape(2 * R + 1, -1).max(axis=1) > 0)
    assert 1 < occupied.sum() < 2 * R + 1
    assert (got[R - 3, 3, -3:, :5] == 1.0).all() and got[R - 2, 3, -3:, :5].max() == 0.0   # one slot only


def test_slicing_in_parallel_bands_equals_one_thread(rng, monkeypatch):
    """Slicing and slot rounding run in row bands on REFOCUS_THREADS threads; the slots must
    not depend on how many."""
    s, H, W = 3, 7 * 3 * 10 + 2, 61 * 3
    img = rng.random((H, W, 3)).astype(np.float32)
    rho = np.where(rng.random((H, W)) < 0.5, rng.uniform(-11.9, 11.9, (H, W)), 0.3).astype(np.float32)
    rho = np.pad(rho, ((0, -H % s), (0, -W % s)), mode="edge")
    got = {}
    for n in ("1", "4"):
        monkeypatch.setenv("REFOCUS_THREADS", n)
        snapped, radii = lens.snap_to_slots(rho, s)
        got[n] = (snapped, radii, lens.split_slices(img, snapped, s, band_blocks=7))
    for a, b in zip(got["1"], got["4"]):
        np.testing.assert_array_equal(a, b)


def test_clipped_lamp_colour_from_its_glow_where_red_is_still_clipped():
    # a warm lamp with a soft glow: next to the core red stays clipped while green and blue
    # are not; four star spikes reach past the rim.  Its colour comes from both, its
    # background from the dark sky beyond, not from the spikes.
    from refocus import highlights
    n = 240
    lamp = np.array([1.0, 0.6, 0.25])                        # hue (linear), 12x over the clip
    sky = np.array([0.01, 0.015, 0.03])
    yy, xx = np.mgrid[:n, :n] - n // 2
    rr = np.hypot(yy, xx)
    glow = 12.0 * np.exp(-np.maximum(rr - 1.5, 0.0) / 1.2)
    spikes = ((np.abs(yy) < 1) | (np.abs(xx) < 1)) & (rr < 7)
    glow = np.where(spikes, np.maximum(glow, 3.0 * np.exp(-rr / 6.0)), glow)
    img = np.minimum(glow[..., None] * lamp + sky, 1.0).astype(np.float32)
    ys, xs, f = highlights.highlight_mask(img, 6.0)
    c = (ys == n // 2) & (xs == n // 2)
    got = f[c][0] * img[n // 2, n // 2]                       # the core's raised radiance
    want = lamp / (lamp @ [0.2126, 0.7152, 0.0722])          # luminance 1 ...
    want = 6.0 * (1.0 + highlights.COLOUR_WEIGHT * (want - 1.0))   # ... shrunk half-way to white
    np.testing.assert_allclose(got / got[0], want / want[0], rtol=0.08)


@pytest.mark.parametrize("focus", [0.9, 0.3], ids=["near", "far"])
def test_in_place_render_is_the_same_render_written_into_the_photo(rng, focus):
    """in_place (what `refocus render` does for a flattened output): the same numbers, the
    result in the photo's own buffer, the map's buffer used for the CoC; without it the
    inputs are left alone.  A size that is no multiple of the working scale."""
    H, W = 61, 83
    img = rng.random((H, W, 3)).astype(np.float32)
    yy, xx = np.mgrid[:H, :W]
    d = np.where((xx - 40) ** 2 + (yy - 30) ** 2 < 300, 0.9, 0.3 + 0.2 * yy / H).astype(np.float32)
    img0, d0 = img.copy(), d.copy()
    ref = refocus.render_linear(img, d, focus, 40.0, device="cpu")
    np.testing.assert_array_equal(img, img0)
    np.testing.assert_array_equal(d, d0)
    info = refocus.RenderInfo()
    s = lens.choose_scale(H, W, 40.0 * 0.6)
    assert s > 1 and (H % s or W % s)                       # the padded path
    out = refocus.render_linear(img, d, focus, 40.0, device="cpu", in_place=True, info=info)
    assert out is img
    np.testing.assert_array_equal(out, ref)
    assert not np.array_equal(d, d0)                        # the map's buffer was reused
    assert info.disparity is None


@pytest.mark.parametrize("H, W, s", [(61, 83, 4), (96, 128, 4), (150, 147, 7), (69, 27, 3)])
def test_slicing_snaps_band_by_band_as_the_padded_snapped_map(rng, H, W, s):
    """The renderer never makes a padded or a snapped full-size CoC: split_slices snaps each
    band of the unpadded map with snap_plan's weights.  The slots must be those of the
    snapped, edge-padded map, bit for bit (sizes that are and are not whole blocks)."""
    R = lens.RADIUS_SLOTS
    img = rng.random((H, W, 3)).astype(np.float32)
    yy, xx = np.mgrid[:H, :W]
    rho = np.where((xx - W / 2) ** 2 + (yy - H / 2) ** 2 < H * W / 60, 2.0,
                   -1.5 + 1.0 * yy / H + 0.3 * xx / W).astype(np.float32)   # a disc over a slope
    rho_p = np.pad(rho, ((0, -H % s), (0, -W % s)), mode="edge")
    ref_rho, ref_radii = lens.snap_to_slots(rho_p, s)
    ref = lens.split_slices(img, ref_rho, s, band_blocks=2)
    weight, radii = lens.snap_plan(rho, s)
    got = lens.split_slices(img, rho, s, band_blocks=2, snap=weight)
    np.testing.assert_array_equal(radii, ref_radii)
    np.testing.assert_array_equal(got, ref)
    assert 0 < np.count_nonzero(weight) < weight.size          # blended and rounded blocks both


@pytest.mark.parametrize("s", [1, 3])
def test_snapped_coc_is_the_rounded_slot_plus_the_kept_share_of_its_fraction(rng, s):
    """snap_to_slots: rho' = r + w (rho - r) with r the nearest slot (within [-R, R - 1]), w
    its block's weight, and shares under MIN_SHARE dropped; a band whose blocks are all
    rounded (w = 0) takes a shortcut that must give the same numbers."""
    R, B = lens.RADIUS_SLOTS, lens.BAND_BLOCKS
    h, w = 2 * B, 30
    H, W = h * s, w * s
    yy, xx = np.mgrid[:H, :W]
    rho = (-3.0 + 6.0 * xx / W + 0.2 * yy / H).astype(np.float32)         # a slope: blends ...
    rho[: (B + 8) * s] = R - 1e-3                          # ... under a flat area, rounded into range
    weight, _ = lens.snap_plan(rho, s)
    assert weight[:B].max() == 0.0 and weight.max() > 0.5          # band 0 all rounded
    r = np.clip(np.rint(rho), -R, R - 1)
    frac = (rho - r) * np.kron(weight, np.ones((s, s), np.float32))
    frac[np.abs(frac) < lens.MIN_SHARE] = 0.0
    got, _ = lens.snap_to_slots(rho, s)
    np.testing.assert_array_equal(got, r + frac)
