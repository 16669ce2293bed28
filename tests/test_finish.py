"""Finishing (refocus.finish): grain, texture, borders, saturation -- measured, not eyeballed."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from refocus import finish, params
from refocus.color import linear_to_srgb, srgb_to_linear

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def S(**kw):
    return params.resolve(kw)


def hp_std(srgb_grey, sigma=1.5):
    """Std of the high-pass residual (independent of refocus.finish: plain OpenCV)."""
    g = np.asarray(srgb_grey, np.float64)
    return float((g - cv2.GaussianBlur(g, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)).std())


def grey_s(lin):
    a = np.asarray(lin, np.float64)
    if a.ndim == 3:
        a = a @ [0.2126, 0.7152, 0.0722]
    return linear_to_srgb(np.clip(a, 0, 1))


@pytest.fixture(scope="module")
def grainy():
    """A monochrome 'film' frame: a smooth ramp (sRGB 0.2..0.8) with correlated grain whose
    strength grows with brightness (std 0.015..0.035 in sRGB units)."""
    rng = np.random.default_rng(7)
    H, W = 240, 360
    base = np.tile(np.linspace(0.2, 0.8, H, dtype=np.float32)[:, None], (1, W))
    n = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 0.8)
    n /= n.std()
    s = base + n * (0.015 + (base - 0.2) / 0.6 * 0.02)
    lin = srgb_to_linear(np.clip(s, 0, 1)).astype(np.float32)
    return np.repeat(lin[..., None], 3, axis=2), base


def blurred_right_half(img, radius=12):
    """What the lens does to the right half: a disc blur (plain OpenCV), CoC 0 on the left."""
    H, W = img.shape[:2]
    k = np.zeros((2 * radius + 1,) * 2, np.float32)
    cv2.circle(k, (radius, radius), radius, 1.0, -1)
    out = img.copy()
    out[:, W // 2:] = cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)[:, W // 2:]
    coc = np.zeros((H, W), np.float32)
    coc[:, W // 2:] = -radius
    return out, coc


def test_blur_weight():
    r = np.array([0, 0.3, 1 / math.sqrt(math.pi), 1, 2, 10, -10], np.float32)
    w = finish.blur_weight(r)
    assert w[0] == 0 and w[1] == 0 and w[2] == pytest.approx(0, abs=1e-3)
    assert w[3] == pytest.approx(math.sqrt(1 - 1 / math.pi), rel=1e-5)
    assert w[5] == w[6] == pytest.approx(math.sqrt(1 - 1 / (100 * math.pi)), rel=1e-5)
    assert np.all(np.diff(w[:6]) >= 0)


def test_grain_model_measures_the_grain(grainy):
    img, base = grainy
    m = finish.estimate_grain(img)
    # grain std grows from ~0.015 (dark) to ~0.035 (bright); the high-pass keeps part of it
    dark, bright = m.std_at(0.3), m.std_at(0.7)
    assert bright > 1.5 * dark
    top = grey_s(img)[10:110, 10:-10]
    assert m.std_at(float(top.mean())) == pytest.approx(hp_std(top), rel=0.2)
    assert 0.2 < m.rho < 0.8          # correlated grain (blurred white noise), not white


def test_grain_matches_in_blurred_area_and_leaves_focus_alone(grainy):
    img, base = grainy
    out, coc = blurred_right_half(img)
    res = finish.apply(out, img, coc, S(grain=1.0), notes=(notes := []))
    H, W = img.shape[:2]
    right = np.s_[20:H - 20, W // 2 + 20:W - 20]
    g0, g_blur, g1 = grey_s(img), grey_s(out), grey_s(res)
    assert hp_std(g_blur[right]) < 0.2 * hp_std(g0[right])        # the blur removed the grain ...
    for rows in (np.s_[20:H // 2], np.s_[H // 2:H - 20]):          # ... and it is back, dark and bright
        sl = (rows, right[1])
        assert hp_std(g1[sl]) == pytest.approx(hp_std(g0[sl]), rel=0.25)
    # correlation of neighbouring grain pixels matches too
    def lag1(g):
        r = g - cv2.GaussianBlur(g, (0, 0), 1.5)
        return np.corrcoef(r[:, :-1].ravel(), r[:, 1:].ravel())[0, 1]
    assert lag1(g1[right]) == pytest.approx(lag1(g0[right]), abs=0.15)
    assert np.array_equal(res[:, : W // 2], out[:, : W // 2])      # in focus: untouched
    assert np.array_equal(res[..., 0], res[..., 1]) and np.array_equal(res[..., 1], res[..., 2])
    assert any(n.startswith("finish: grain x1") and "monochrome" in n for n in notes)
    assert np.array_equal(finish.apply(out, img, coc, S(grain=0.0)), out)   # grain 0: nothing added


def test_grain_is_deterministic_and_scales(grainy):
    img, _ = grainy
    out, coc = blurred_right_half(img)
    a = finish.apply(out, img, coc, S(grain=1.0))
    b = finish.apply(out, img, coc, S(grain=1.0))
    half = finish.apply(out, img, coc, S(grain=0.5))
    assert np.array_equal(a, b)
    W = img.shape[1]
    d1 = grey_s(a)[:, W // 2 + 20:] - grey_s(out)[:, W // 2 + 20:]
    d5 = grey_s(half)[:, W // 2 + 20:] - grey_s(out)[:, W // 2 + 20:]
    assert d5.std() == pytest.approx(0.5 * d1.std(), rel=0.05)


def test_grain_on_a_flat_free_image_is_skipped():
    rng = np.random.default_rng(0)
    img = rng.random((40, 40, 3)).astype(np.float32) * 0 + 1.0                # all white: clipped
    notes = []
    out = finish.apply(img * 0.5, img, np.full((40, 40), 10, np.float32), S(grain=1), notes=notes)
    assert np.array_equal(out, img * 0.5) and "grain not added" in notes[0]


@pytest.fixture(scope="module")
def canvas():
    """A 'painting': two flat colour fields with a hard vertical edge, on a fine canvas weave."""
    rng = np.random.default_rng(3)
    H, W = 240, 360
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    s = np.where(x < 0.75 * W, 0.35, 0.7).astype(np.float32)             # hard edge at x = 270
    weave = 0.02 * np.sin(2 * np.pi * x / 3.1) * np.sin(2 * np.pi * y / 2.9)
    weave += 0.01 * cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 0.7)
    rgb = np.stack([s + weave, s * 0.8 + weave, s * 0.6 + weave], axis=2)
    return srgb_to_linear(np.clip(rgb, 0, 1)).astype(np.float32)


def test_texture_comes_back_by_the_fraction(canvas):
    out, coc = blurred_right_half(canvas)
    H, W = canvas.shape[:2]
    flat = np.s_[20:H - 20, W // 2 + 20:int(0.75 * W) - 25]        # blurred, away from the edge
    notes = []
    res = finish.apply(out, canvas, coc, S(texture=0.6), notes=notes)
    e0, eb, e1 = (hp_std(grey_s(a)[flat], 1.0) for a in (canvas, out, res))
    assert eb < 0.15 * e0
    assert e1 == pytest.approx(0.6 * e0 * float(finish.blur_weight(12.0)), rel=0.25)
    assert np.array_equal(res[:, : W // 2], out[:, : W // 2])      # in focus: untouched
    assert "finish: texture x0.6" in notes[0]


def test_texture_does_not_bring_back_large_edges(canvas):
    out, coc = blurred_right_half(canvas)
    res = finish.apply(out, canvas, coc, S(texture=1.0))
    H = canvas.shape[0]

    def edge_slope(a):
        g = cv2.GaussianBlur(grey_s(a), (0, 0), 1.0)[20:H - 20, 250:290]     # across the hard edge
        return float(np.abs(np.diff(g, axis=1)).mean(axis=0).max())
    assert edge_slope(canvas) > 5 * edge_slope(out)                  # the lens blurred the edge
    assert edge_slope(res) < 1.3 * edge_slope(out)                   # texture does not re-sharpen it


def framed(content, mount=12, line=3):
    """Content inside a white mount with a black frame line outside (scanner-style)."""
    H, W = content.shape[:2]
    t = mount + line
    out = np.ones((H + 2 * t, W + 2 * t, 3), np.float32) * 0.9
    out[:line], out[-line:], out[:, :line], out[:, -line:] = 0.01, 0.01, 0.01, 0.01
    out[t:t + H, t:t + W] = content
    return out


def test_detect_border_on_a_framed_image(grainy):
    img, _ = grainy
    m, widths = finish.detect_border(framed(img))
    assert all(14 <= w <= 16 for w in widths), widths
    H, W = m.shape
    assert m[:14].all() and m[:, -14:].all() and not m[20:H - 20, 20:W - 20].any()
    # one side only (a scan cropped on three sides)
    one = framed(img)[15:, 15:-15]
    _, widths = finish.detect_border(one)
    assert widths[0] == 0 and widths[2] == 0 and widths[3] == 0 and 14 <= widths[1] <= 16


def test_no_border_on_sky_or_plain_content(grainy):
    img, _ = grainy
    assert finish.detect_border(img)[0] is None
    sky = np.tile(np.linspace(0.8, 0.3, 200, dtype=np.float32)[:, None, None], (1, 300, 3))
    sky[120:, 100:180] = 0.02                                        # a tower against a clear sky
    assert finish.detect_border(sky)[0] is None


@pytest.mark.parametrize("rel,expect", [("paintings/great_wave_hokusai.jpg", (2, 6)),
                                        ("historic/Curies_lab_c1904.jpg", None),
                                        ("historic/Grace_Hopper_1984_USNavy.jpg", None)])
def test_detect_border_on_real_scans(rel, expect):
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"sample {rel} not available")
    from refocus.io import read_photo
    m, widths = finish.detect_border(read_photo(p).linear)
    if expect is None:
        assert m is None, widths
    else:                                 # the print's light paper margin along the top
        assert expect[0] <= widths[0] <= expect[1] and widths[1:] == (0, 0, 0)


def test_border_restored_through_the_pipeline(grainy):
    from refocus.pipeline import refocus_image
    img, _ = grainy
    f = framed(img)
    H, W = f.shape[:2]
    d = np.full((H, W), 0.2, np.float32)
    d[:, : W // 2] = 0.9
    res = refocus_image(f, {"keep_border": True, "focus": "disparity", "focus_disparity": 0.9, "blur": 30,
                            "highlight_gain": 1.0}, disparity=d, device="cpu")
    t = 15
    ring = np.ones((H, W), bool)
    ring[t:H - t, t:W - t] = False
    assert np.array_equal(res.linear[ring], f[ring])
    assert np.all(res.coc[ring] == 0)
    assert any(n.startswith("border: kept sharp (top 15 px") for n in res.notes)
    assert "finish: border restored from the original" in res.notes
    res2 = refocus_image(f, {"keep_border": False, "focus": "disparity", "focus_disparity": 0.9, "blur": 30,
                             "highlight_gain": 1.0}, disparity=d, device="cpu")
    assert not np.array_equal(res2.linear[ring], f[ring])             # without it, the frame blurs


def test_saturation():
    rng = np.random.default_rng(0)
    img = rng.uniform(0.2, 0.6, (16, 16, 3)).astype(np.float32)
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    grey = finish.saturate(img, 0.0)
    assert np.allclose(grey, np.repeat(y[..., None], 3, 2), atol=1e-6)
    assert np.allclose(finish.saturate(img, 1.0), img, atol=1e-6)
    s = finish.saturate(img, 1.4)
    inside = np.all((y[..., None] + 1.4 * (img - y[..., None]) >= 0) & (y[..., None] + 1.4 * (img - y[..., None]) <= 1), axis=2)
    assert np.allclose((s @ [0.2126, 0.7152, 0.0722])[inside], y[inside], atol=1e-5)     # luminance kept
    assert np.allclose((s - y[..., None])[inside], 1.4 * (img - y[..., None])[inside], atol=1e-5)
    g2 = np.full((4, 4), 0.3, np.float32)
    assert finish.saturate(g2, 2.0) is g2
    notes = []
    finish.apply(img, img, np.zeros((16, 16), np.float32), S(saturation=1.3), notes=notes)
    assert notes == ["finish: saturation x1.3"]


def test_detect_a_distinct_textured_frame(canvas):
    """A painting in a gilded, textured frame: no uniform band, but a straight inner edge
    on all four sides."""
    rng = np.random.default_rng(5)
    H, W = canvas.shape[:2]
    f = 20
    out = np.empty((H + 2 * f, W + 2 * f, 3), np.float32)
    gold = 0.8 + 0.25 * cv2.GaussianBlur(rng.standard_normal(out.shape[:2]).astype(np.float32), (0, 0), 2.0)
    out[...] = srgb_to_linear(np.clip(np.stack([gold, gold * 0.85, gold * 0.4], 2), 0, 1))
    out[f:f + H, f:f + W] = canvas * 0.5                        # darker than the frame
    m, widths = finish.detect_border(out)
    assert all(f - 1 <= w <= f + 2 for w in widths), widths
    # the painting without its frame: nothing found
    assert finish.detect_border(canvas * 0.5)[0] is None


def test_detect_an_oval_mount(grainy):
    """An old portrait in an oval window of a light card mount: not straight bands, but
    paper of one colour around the picture, connected to the edges."""
    img, _ = grainy
    H, W = img.shape[:2]
    yy, xx = np.mgrid[0:H, 0:W]
    oval = ((xx - W / 2) / (0.46 * W)) ** 2 + ((yy - H / 2) / (0.47 * H)) ** 2 <= 1
    card = np.where(oval[..., None], img, np.float32(0.8))
    m, widths = finish.detect_border(card)
    assert m is not None
    assert np.all(m[~oval] == 1)                                   # all of the card
    inner = cv2.erode(oval.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert not m[inner].any()                                      # none of the picture
    assert "mount or paper around the picture" in finish.border_text(widths, m)


def test_mount_of_a_real_historic_scan():
    p = DATA / "historic" / "Dudley_Leavitt_Utah.tiff"
    if not p.exists():
        pytest.skip("sample not available")
    from refocus.errors import UnsupportedFormatError
    from refocus.io import read_photo
    try:
        lin = read_photo(p).linear
    except UnsupportedFormatError as e:                    # LZW TIFF needs imagecodecs
        pytest.skip(str(e))
    m, widths = finish.detect_border(lin)
    H, W = lin.shape[:2]
    assert m is not None and 0.05 < m.mean() < 0.25                # the arched white mount
    assert m[:5, :5].all() and m[:5, -5:].all() and m[H // 2, -3:].all()   # top corners, right side
    assert not m[int(0.3 * H):int(0.9 * H), int(0.2 * W):int(0.8 * W)].any()   # not the man
