"""Focus selection, blur strength (virtual aperture) and the effective disparity."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from refocus import focus as F
from refocus import params
from refocus.errors import BadInputError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def S(**kw):
    return params.resolve(kw)


@pytest.fixture
def steps():
    """Disparity map of four vertical strips 0.2 / 0.4 / 0.6 / 0.8 on a 100x200 grey image."""
    d = np.repeat(np.repeat(np.array([0.2, 0.4, 0.6, 0.8], np.float32)[None], 100, 0), 50, 1)
    img = np.full((100, 200, 3), 0.18, np.float32)
    return img, d


# -- modes ---------------------------------------------------------------------------------

def test_point_in_pixels_and_fractions(steps):
    img, d = steps
    f = F.choose_focus(img, d, S(focus="point", focus_point="160,50"))
    assert f.disparity == pytest.approx(0.8) and f.point == (160, 50)
    f = F.choose_focus(img, d, S(focus="point", focus_point="0.3,0.5"))       # x = 0.3*199 = 59.7
    assert f.disparity == pytest.approx(0.4) and f.point[0] == pytest.approx(59.7)
    f = F.choose_focus(img, d, S(focus="auto", focus_point="10,10"))          # auto uses a given point
    assert f.disparity == pytest.approx(0.2)


def test_point_errors(steps):
    img, d = steps
    with pytest.raises(BadInputError, match="--focus point needs --focus-point"):
        F.choose_focus(img, d, S(focus="point"))
    with pytest.raises(BadInputError, match=r"--focus-point.*outside the 200x100 image"):
        F.choose_focus(img, d, S(focus="point", focus_point="250,10"))


def test_disparity_mode(steps):
    img, d = steps
    f = F.choose_focus(img, d, S(focus="disparity", focus_disparity=0.37))
    assert f.disparity == 0.37 and "given" in f.how
    with pytest.raises(BadInputError, match="--focus disparity needs --focus-disparity"):
        F.choose_focus(img, d, S(focus="disparity"))


def test_subject_mask_median(steps):
    img, d = steps
    m = np.zeros((100, 200), np.float32)
    m[:, 40:140] = 1          # columns 40-49 (0.2), 50-99 (0.4), 100-139 (0.6)
    f = F.choose_focus(img, d, S(focus="subject"), subject_mask=m)
    assert f.disparity == pytest.approx(float(np.median(d[:, 40:140])))
    assert f.point[0] == pytest.approx(89.5)
    with pytest.raises(BadInputError, match="subject mask: it is empty"):
        F.choose_focus(img, d, S(focus="subject"), subject_mask=np.zeros((100, 200)))
    with pytest.raises(BadInputError, match="does not match"):
        F.choose_focus(img, d, S(focus="subject"), subject_mask=np.ones((10, 20)))


def test_auto_without_faces_or_subject_takes_the_centre(steps):
    img, d = steps
    f = F.choose_focus(img, d, S(focus="auto"))
    assert "centre" in f.how and f.faces == []
    assert 0.4 <= f.disparity <= 0.6 and f.point == (99.5, 49.5)


def test_band_mode_sets_a_band(steps):
    img, d = steps
    f = F.choose_focus(img, d, S(focus="band", focus_point="100,25", band_width=0.2))
    assert f.band == (pytest.approx(25 / 99), 0.2)
    f = F.choose_focus(img, d, S(focus="band", band_center=0.7, band_width=0.1))
    assert f.band is not None and f.band[0] == pytest.approx(0.7) and f.band[1] == 0.1


# -- auto focus on real portraits ----------------------------------------------------------

def _photo(rel):
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"sample {rel} not available")
    from refocus.io import read_photo
    return read_photo(p)


@pytest.mark.parametrize("rel", ["portraits/astronaut.png", "portraits/obama_official_portrait.jpg"])
def test_auto_focus_lands_in_the_face(rel):
    ph = _photo(rel)
    H, W = ph.linear.shape[:2]
    d = np.tile(np.linspace(0, 1, H, dtype=np.float32)[:, None], (1, W))   # any map; check the point
    f = F.choose_focus(ph.linear, d, S(focus="auto"))
    assert f.faces, "no face found"
    x, y, w, h = f.faces[0]
    px, py = f.point
    assert x <= px <= x + w and y <= py <= y + h
    assert y + 0.2 * h <= py <= y + 0.6 * h          # eye level, not the chin or the hair
    assert f.disparity == pytest.approx(py / (H - 1), abs=0.12 * h / H + 0.02)


# -- blur strength -------------------------------------------------------------------------

def cam(f_mm=50.0, sensor=36.0, dist=None, **kw):
    return SimpleNamespace(focal_length_mm=f_mm, sensor_width_mm=sensor, sensor_height_mm=sensor * 2 / 3,
                           subject_distance_m=dist, focal_length_35mm=f_mm * 36 / sensor,
                           crop_source="FocalLengthIn35mmFilm", model=None, lens=None, **kw)


def thin_lens_radius_px(f_mm, N, z_f_m, z_m, sensor_mm, width_px):
    """Independent thin-lens blur: CoC diameter c = f^2/(N (z_f - f)) * |1 - z_f/z| on the sensor."""
    f, zf, z = f_mm, z_f_m * 1000, z_m * 1000
    c = f * f / (N * (zf - f)) * abs(1 - zf / z)
    return c / 2 / sensor_mm * width_px


@pytest.mark.parametrize("f_mm,N,zf,sensor", [(50, 1.8, 2.0, 36.0), (85, 1.4, 3.0, 36.0), (35, 4, 1.2, 23.5)])
def test_virtual_aperture_matches_thin_lens(f_mm, N, zf, sensor):
    W, H = 6000, 4000
    d_f = 0.5
    focus = F.Focus(d_f, "test")
    K, how = F.blur_strength(S(aperture=f"f/{N}"), (H, W), focus, cam(f_mm, sensor, dist=zf))
    for z in (0.6 * zf, 0.9 * zf, 1.5 * zf, 10 * zf):
        d = d_f * zf / z                                  # disparity ~ 1/z, d_f at the focus distance
        assert K * abs(d - d_f) == pytest.approx(thin_lens_radius_px(f_mm, N, zf, z, sensor, W), rel=1e-6)
    assert f"f/{N:g}" in how and f"{f_mm:g} mm" in how and "EXIF subject distance" in how


def test_virtual_aperture_in_portrait_orientation():
    """CameraInfo gives the sensor's long side; a portrait-orientation photo has the same
    blur in pixels as the same shot held landscape."""
    focus = F.Focus(0.5, "test")
    Kl, _ = F.blur_strength(S(aperture=2), (4000, 6000), focus, cam(50, 36.0, dist=2.0))
    Kp, _ = F.blur_strength(S(aperture=2), (6000, 4000), focus, cam(50, 36.0, dist=2.0))
    assert Kp == pytest.approx(Kl)
    assert Kl * 0.25 == pytest.approx(thin_lens_radius_px(50, 2, 2.0, 4.0, 36.0, 6000), rel=1e-6)


def test_K_scales_like_one_over_N():
    focus = F.Focus(0.5, "test")
    Ks = [F.blur_strength(S(aperture=N), (4000, 6000), focus, cam(dist=2.0))[0] for N in (1.4, 2.8, 5.6)]
    assert Ks[0] / Ks[1] == pytest.approx(2.0) and Ks[1] / Ks[2] == pytest.approx(2.0)


def test_missing_exif_falls_back_to_relative_strength_and_says_so():
    focus = F.Focus(0.5, "test")
    K, how = F.blur_strength(S(aperture="f/1.8", strength=2.0), (1000, 1500), focus, None)
    assert K == pytest.approx(30.0)
    assert "lacks" in how and "relative strength" in how
    K2, _ = F.blur_strength(S(aperture="f/1.8", strength=2.0), (1000, 1500), focus,
                            SimpleNamespace(focal_length_mm=None, sensor_width_mm=None))
    assert K2 == K


def test_blur_pixels_win_then_strength():
    focus = F.Focus(0.5, "test")
    assert F.blur_strength(S(blur=12, aperture=2), (100, 200), focus, cam(dist=2))[0] == 12.0
    K, how = F.blur_strength(S(strength=5), (100, 200), focus, None)
    assert K == pytest.approx(10.0) and "5% of the long side" in how


# -- effective disparity -------------------------------------------------------------------

def test_focus_range_dead_zone():
    d = np.linspace(0, 1, 101, dtype=np.float32)[None].repeat(3, 0)
    eff, d_f = F.effective_disparity(d, F.Focus(0.5, "t"), S(focus_range=0.2))
    assert d_f == 0.5
    inside = np.abs(d - 0.5) <= 0.1 + 1e-6
    assert np.allclose(eff[inside], 0.5)
    out = ~inside
    # outside the zone the CoC is that of the original shifted by the half-width (continuous)
    assert np.allclose(np.abs(eff[out] - 0.5), np.abs(d[out] - 0.5) - 0.1, atol=1e-6)


def test_mask_keeps_area_sharp():
    rng = np.random.default_rng(1)
    d = rng.random((40, 60)).astype(np.float32)
    m = np.zeros((40, 60), np.float32)
    m[10:30, 20:40] = 1
    m[10:30, 40] = 0.5
    eff, d_f = F.effective_disparity(d, F.Focus(0.3, "t"), S(), subject_mask=m)
    coc = 20 * (eff - d_f)
    assert np.all(coc[m == 1] == 0)
    assert np.allclose(eff[m == 0], d[m == 0], rtol=0, atol=1e-6)
    assert np.allclose(eff[:, 40][10:30] - d_f, 0.5 * (d[:, 40][10:30] - d_f), atol=1e-6)


def test_band_is_sharp_and_blur_grows_away_from_it():
    H, W = 200, 50
    d = np.zeros((H, W), np.float32)
    f = F.Focus(0.5, "t", band=(0.4, 0.2))
    eff, d_f = F.effective_disparity(d, f, S())
    y = np.arange(H) / (H - 1)
    col = np.abs(eff[:, 0] - d_f)
    assert np.all(col[np.abs(y - 0.4) <= 0.1 - 1e-3] == 0)
    outside = np.abs(y - 0.4) > 0.1 + 1e-3
    assert np.all(col[outside] > 0)
    above = col[: int(0.3 * (H - 1))]
    assert np.all(np.diff(above) <= 1e-7)                  # grows towards the top edge
    below = col[int(0.5 * (H - 1)) + 2:]
    assert np.all(np.diff(below) >= -1e-7)                 # and towards the bottom edge


# -- eyes, groups, edges -------------------------------------------------------------------

def test_eyes_found_on_a_frontal_portrait():
    ph = _photo("portraits/astronaut.png")
    faces = F.detect_faces(ph.linear)
    eyes = F._eyes(ph.linear, faces[0])
    assert len(eyes) == 2
    x, y, w, h = faces[0]
    (ax, ay, aw, ah), (bx, by, bw, bh) = sorted(eyes)
    assert ax + aw / 2 < x + w / 2 < bx + bw / 2               # one on each side of the face's middle
    for ey, eh in ((ay, ah), (by, bh)):
        assert y + 0.2 * h < ey + eh / 2 < y + 0.55 * h
    f = F.choose_focus(ph.linear, np.full(ph.linear.shape[:2], 0.5, np.float32), S(focus="face"))
    assert f.how.startswith("eyes at")


def test_group_keeps_every_face_in_the_sharp_zone():
    ph = _photo("portraits/astronaut.png")
    img = np.concatenate([ph.linear, ph.linear[:, ::-1]], axis=1)          # two people, 1024x512
    H, W = img.shape[:2]
    d = np.full((H, W), 0.1, np.float32)
    d[:, :W // 2] = 0.62
    d[:, W // 2:] = 0.88
    s = S(focus="face", focus_range=0.05)
    f = F.choose_focus(img, d, s)
    assert len(f.faces) == 2 and "2 faces" in f.how
    assert f.disparity == pytest.approx(0.75, abs=1e-6) and f.range >= 0.26
    eff, d_f = F.effective_disparity(d, f, s)
    for x, y, w, h in f.faces:
        assert np.all(eff[y:y + h, x:x + w] == d_f)                        # CoC 0 on both faces
    assert np.all(eff[d == 0.1] < d_f)                                      # background still blurred
    one = F.choose_focus(img, d, S(focus="face"))                           # no range: the main face only
    assert one.range is None and one.disparity in (pytest.approx(0.62), pytest.approx(0.88))


def test_nearest_strong_edge():
    img = np.full((240, 320, 3), 0.2, np.float32)
    d = np.full((240, 320), 0.1, np.float32)
    img[40:120, 30:110] = 0.9          # far square
    d[40:120, 30:110] = 0.3
    img[120:200, 200:280] = 0.01       # near square
    d[110:210, 190:290] = 0.85
    f = F.choose_focus(img, d, S(focus="edge"))
    assert f.disparity == pytest.approx(0.85) and "nearest strong edge" in f.how
    x, y = f.point
    assert 190 <= x <= 290 and 110 <= y <= 210
    f = F.choose_focus(np.full((50, 60), 0.3, np.float32), np.zeros((50, 60), np.float32), S(focus="edge"))
    assert "no strong edge" in f.how


# -- sanity of the EXIF sensor size ----------------------------------------------------------

def test_implausible_sensor_from_a_resized_file_falls_back():
    ph = _photo("portraits/obama_official_portrait.jpg")
    H, W = ph.linear.shape[:2]
    assert ph.camera.sensor_width_mm < 8            # the EXIF estimate this file gives (wrong: full frame)
    f = F.choose_focus(ph.linear, np.full((H, W), 0.8, np.float32), S(focus="face"))
    K, how = F.blur_strength(S(aperture="f/1.8", strength=2.0), (H, W), f, ph.camera)
    assert K == pytest.approx(0.02 * max(H, W))
    assert "implausible" in how and "relative strength" in how


@pytest.mark.parametrize("sensor,W,model,trusted", [
    (6.17, 2048, "Canon PowerShot SX60 HS", True),        # compact, in-camera small JPEG: 3 um pixels
    (6.17, -2048, "Canon PowerShot SX60 HS", True),       # the same held upright (orientation 6)
    (7.1, 910, "Canon EOS 5D Mark III", False),           # big pixels on a tiny sensor
    (9.0, 4000, "NIKON D750", False),                     # a DSLR cannot have a 9 mm sensor
    (23.5, 6000, "NIKON D7500", True),
])
def test_check_sensor(sensor, W, model, trusted):
    c = SimpleNamespace(sensor_width_mm=sensor, crop_source="FocalPlaneXResolution", make=None, model=model)
    shape = (W * 2 // 3, W) if W > 0 else (-W, -W * 3 // 4)     # W < 0: portrait orientation
    sw, how = F.check_sensor(c, shape)
    assert (sw == sensor) if trusted else (sw is None and "implausible" in how)
    c.crop_source = "FocalLengthIn35mmFilm"           # the camera's own 35 mm figure is trusted
    assert F.check_sensor(c, shape)[0] == sensor


def test_focus_distance_from_face_size():
    H, W = 4000, 6000
    face = (2700, 1000, 1200, 1200)                   # 1200 px of 4000 -> 7.2 mm of a 24 mm sensor
    focus = F.Focus(0.6, "t", faces=[face])
    K, how = F.blur_strength(S(aperture="f/2"), (H, W), focus, cam(85, 36.0))
    zf = F.FACE_HEIGHT_M * 85 / (1200 / 4000 * 24)
    assert "face size" in how and f"{zf:.2f} m" in how
    z = 2 * zf
    assert K * abs(0.6 * zf / z - 0.6) == pytest.approx(thin_lens_radius_px(85, 2, zf, z, 36.0, W), rel=1e-6)
    tiny = F.Focus(0.6, "t", faces=[(10, 10, 4, 4)])  # a 4 px "face" would put the subject 100s of m away
    K, how = F.blur_strength(S(aperture="f/2"), (H, W), tiny, cam(85, 36.0))
    assert "implausible" in how and f"{F.DEFAULT_DISTANCE_M:.2f} m" in how


# -- faces from XMP (MWG regions) ------------------------------------------------------------

@pytest.mark.parametrize("rel", ["historic/Curies_lab_c1904.jpg", "exif/Curies_orientation6_faces.jpg"])
def test_faces_from_xmp_follow_the_orientation(rel):
    ph = _photo(rel)
    H, W = ph.linear.shape[:2]
    assert (H, W) == (700, 840)                     # both display upright
    boxes = F.faces_from_xmp(ph.xmp, (H, W), ph.camera.orientation)
    assert len(boxes) == 2
    # Marie Curie (the frontal face the detector also finds) and Pierre Curie (profile, right)
    det = F.detect_faces(ph.linear)[0]
    marie = min(boxes, key=lambda b: abs(b[0] - det[0]))
    pierre = max(boxes, key=lambda b: b[0])
    cx, cy = det[0] + det[2] / 2, det[1] + det[3] / 2
    assert marie[0] <= cx <= marie[0] + marie[2] and marie[1] <= cy <= marie[1] + marie[3]
    assert pierre[0] > W / 2 and pierre[1] < H / 3
    # stored as XMP centre fractions of the stored image: Pierre (0.6875, 0.239) when upright
    assert pierre[0] + pierre[2] / 2 == pytest.approx(0.6875 * W, abs=2)
    assert pierre[1] + pierre[3] / 2 == pytest.approx(0.239286 * H, abs=2)


def test_faces_from_xmp_absent_or_broken():
    assert F.faces_from_xmp(None, (10, 10)) == []
    assert F.faces_from_xmp(b"<x:xmpmeta><broken", (10, 10)) == []
    assert F.faces_from_xmp(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>", (10, 10)) == []

