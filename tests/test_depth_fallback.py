"""The offline default depth (no weights): faces end up near, the background recedes, real
depth ranks loosely agree, and nothing crashes on paintings, monochrome or odd images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refocus.color import decode_srgb
from refocus.depth.guided_filter import guided_filter, guided_upsample
from refocus.depth.fallback import estimate_fallback
from refocus.errors import BadInputError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_linear(rel):
    p = DATA / rel
    if not p.exists():
        pytest.skip(f"sample {p} not present")
    im = Image.open(p)
    im = im.convert("L") if im.mode in ("L", "I;16", "1") else im.convert("RGB")
    return decode_srgb(np.asarray(im))          # grey stays 2-D: exercises the grey path


def check_map(d, shape):
    assert d.shape == shape and d.dtype == np.float32
    assert np.isfinite(d).all() and d.min() >= 0.0 and d.max() <= 1.0


# hand-checked face rectangles (x0, y0, x1, y1) as fractions of the width and height
FACES = {
    "portraits/obama_official_portrait.jpg": (0.44, 0.13, 0.64, 0.31),
    "portraits/astronaut.png": (0.35, 0.15, 0.48, 0.32),
    "portraits/camera.png": (0.40, 0.16, 0.52, 0.31),              # greyscale, face half behind a camera
    "historic/Grace_Hopper_1984_USNavy.jpg": (0.32, 0.22, 0.60, 0.48),
}


@pytest.mark.parametrize("rel", sorted(FACES))
def test_face_is_in_the_near_region(rel):
    img = load_linear(rel)
    d, how = estimate_fallback(img)
    H, W = img.shape[:2]
    check_map(d, (H, W))
    assert how.startswith("offline default:")
    x0, y0, x1, y1 = FACES[rel]
    face = float(d[int(y0 * H):int(y1 * H), int(x0 * W):int(x1 * W)].mean())
    k = max(2, min(H, W) // 20)
    corners = float(np.mean([d[:k, :k].mean(), d[:k, -k:].mean(), d[-k:, :k].mean(), d[-k:, -k:].mean()]))
    assert face > 0.7, (how, face)
    assert face > corners + 0.3, (how, face, corners)
    # the background above the subject's head is far
    assert float(d[:k, :k].mean()) < 0.3 and float(d[:k, -k:].mean()) < 0.3


def test_motorcycle_rank_correlation_with_middlebury_ground_truth():
    from scipy.stats import spearmanr
    img = load_linear("portraits/motorcycle_left.png")
    gt_p = DATA / "portraits/motorcycle_disp.npz"
    if not gt_p.exists():
        pytest.skip("ground truth not present")
    gt = np.load(gt_p)["arr_0"]
    d, how = estimate_fallback(img)
    check_map(d, gt.shape)
    known = np.isfinite(gt)                                   # +inf = unknown
    rho = spearmanr(d[known], gt[known]).statistic
    print(f"motorcycle: Spearman {rho:.3f} ({how})")
    assert rho > 0.45                                         # measured 0.67 when written


@pytest.mark.parametrize("rel", ["paintings/starry_night.jpg", "paintings/the_scream.jpg",
                                 "paintings/shipwreck_turner.jpg", "paintings/great_wave_hokusai.jpg",
                                 "historic/Curies_lab_c1904.jpg"])
def test_paintings_and_monochrome_never_crash(rel):
    img = load_linear(rel)
    d, how = estimate_fallback(img)
    check_map(d, img.shape[:2])
    assert how.startswith("offline default:") and "\n" not in how
    H = d.shape[0]
    assert d[-H // 10:].mean() > d[:H // 10].mean()          # the ground is nearer than the sky


@pytest.mark.parametrize("shape", [(16, 16, 3), (1, 1, 3), (3, 500, 3), (2000, 3, 3), (40, 4000), (9, 7, 4),
                                   (64, 48, 1)])
def test_tiny_and_extreme_shapes(shape, rng):
    img = rng.random(shape).astype(np.float32)
    d, how = estimate_fallback(img)
    check_map(d, shape[:2])


@pytest.mark.parametrize("value", [0.0, 1.0, 0.18])
def test_flat_frames(value):
    d, how = estimate_fallback(np.full((120, 160, 3), value, np.float32))
    check_map(d, (120, 160))
    assert "no subject" in how or "no clear subject" in how
    # nothing to find: pure scene prior, receding towards the top, within the background range
    assert d.max() <= 0.55 and d[-5:].mean() > d[:5].mean() + 0.2


def test_integer_input_and_values_out_of_range(rng):
    img8 = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    check_map(estimate_fallback(img8)[0], (60, 80))
    hdr = rng.random((60, 80, 3)).astype(np.float32) * 3 - 0.5
    check_map(estimate_fallback(hdr)[0], (60, 80))


def test_subject_mask_replaces_detection():
    h, w = 200, 300
    yy, xx = np.mgrid[0:h, 0:w]
    disc = ((yy - 110) ** 2 + (xx - 150) ** 2) < 50 ** 2
    img = np.full((h, w, 3), 0.3, np.float32)
    img[disc] = (0.8, 0.2, 0.1)                              # an object with a clear edge
    d, how = estimate_fallback(img, subject_mask=disc.astype(np.float32))
    check_map(d, (h, w))
    assert "given mask" in how
    inner = ((yy - 110) ** 2 + (xx - 150) ** 2) < 40 ** 2
    outer = ((yy - 110) ** 2 + (xx - 150) ** 2) > 60 ** 2
    assert d[inner].min() > 0.8 and d[outer].max() < 0.55
    # the edge follows the photo's edge: a sharp step across the disc border
    row = d[110]
    assert row[150 - 53] < 0.5 < 0.8 < row[150 - 47]


def test_bad_inputs_are_named():
    with pytest.raises(BadInputError, match="linear_rgb"):
        estimate_fallback(np.zeros((10, 10, 2), np.float32))
    img = np.zeros((10, 10, 3), np.float32)
    img[3, 3, 1] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        estimate_fallback(img)
    with pytest.raises(BadInputError, match=r"subject_mask.*\(10, 10\)"):
        estimate_fallback(np.zeros((10, 10, 3), np.float32), subject_mask=np.ones((5, 5)))


# -- the guided filter against a direct implementation ------------------------------------------

def naive_guided(I, p, r, eps):
    """He et al. 2010, Algorithm 1, with explicit windows (reflected borders, as cv2.BORDER_REFLECT)."""
    I = I.astype(np.float64)
    p = p.astype(np.float64)
    H, W = p.shape
    pad = lambda a: np.pad(a, r, mode="symmetric")           # noqa: E731  (abcba -> cba|abc|cba)
    Ip, pp = pad(I), pad(p)

    def mean(a):
        out = np.zeros((H, W))
        for y in range(H):
            for x in range(W):
                out[y, x] = a[y:y + 2 * r + 1, x:x + 2 * r + 1].mean()
        return out
    mI, mp = mean(Ip), mean(pp)
    a = (mean(Ip * pp) - mI * mp) / (mean(Ip * Ip) - mI * mI + eps)
    b = mp - a * mI
    return mean(pad(a)) * I + mean(pad(b))


def test_guided_filter_matches_direct_implementation(rng):
    I = rng.random((17, 23)).astype(np.float32)
    p = (rng.random((17, 23)) > 0.5).astype(np.float32)
    ours = guided_filter(I, p, 2, 1e-2)
    np.testing.assert_allclose(ours, naive_guided(I, p, 2, 1e-2), atol=1e-4)


def test_guided_upsample_restores_the_guides_edge():
    big = np.zeros((64, 96), np.float32)
    big[:, 48:] = 1.0                                         # photo edge at column 48
    import cv2
    small_guide = cv2.resize(big, (24, 16), interpolation=cv2.INTER_AREA)
    coarse = (small_guide > 0.5).astype(np.float32)           # a coarse map with the same edge
    up = guided_upsample(coarse, small_guide, big, 2, 1e-4)
    assert np.abs(up[:, :48]).max() < 0.1 and up[:, 48:].min() > 0.9
    plain = cv2.resize(coarse, (96, 64), interpolation=cv2.INTER_LINEAR)
    assert plain[:, 47].min() > 0.3 and plain[:, 48].max() < 0.7  # plain resizing leaves a ramp


def test_colour_guide_separates_equal_luminance_colours():
    img = np.zeros((40, 60, 3), np.float32)
    img[:, :30] = (0.6, 0.1, 0.1)
    img[:, 30:] = (0.1, 0.3, 0.35)                           # similar brightness, other hue
    p = np.zeros((40, 60), np.float32)
    p[:, 30:] = 1
    p += np.float32(0.2) * (np.arange(60) % 2)[None, :]       # noise to smooth away
    q = guided_filter(img, p, 4, 1e-3)
    assert abs(q[:, 28] - q[:, 27]).max() < 0.05 and q[:, 31].min() - q[:, 28].max() > 0.8
