"""Photo I/O: exact round trips, output formats and bit depths, sRGB, EXIF orientation."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from refocus import color, imageio
from refocus.cli import main
from conftest import write_png8

EXIF_DIR = Path("/work/shared/data/exif/orientation")


def _cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _blur0(inp, out, depth, *extra):
    return _cli("render", inp, "-o", out, "--depth", depth, "--focus-disparity", "0.5", "--blur", "0",
                "--device", "cpu", *extra)


def _read_unchanged(path):
    import cv2
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert a is not None, path
    return a[..., ::-1] if a.ndim == 3 else a


@pytest.fixture
def smooth_rgb(rng):
    """A smooth 8-bit photo-like image (JPEG friendly)."""
    h, w = 48, 64
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([xx * 4, yy * 5, 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], axis=-1)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img


# -- exact round trips through the CLI -----------------------------------------------------

def test_blur_0_png_round_trip_is_exact(photo_files, tmp_path):
    out = tmp_path / "out.png"
    _blur0(photo_files["png"], out, photo_files["depth"])
    back = _read_unchanged(out)
    assert back.dtype == np.uint8 and back.shape == (40, 60, 3)
    np.testing.assert_array_equal(back, photo_files["pixels"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_png_16_bit_output(photo_files, tmp_path):
    out = tmp_path / "out16.png"
    _blur0(photo_files["png"], out, photo_files["depth"], "--bits", "16")
    back = _read_unchanged(out)
    assert back.dtype == np.uint16 and back.shape == (40, 60, 3)
    expect = photo_files["pixels"].astype(np.int64) * 257
    assert np.abs(back.astype(np.int64) - expect).max() <= 1


def test_png_16_bit_input_round_trip_is_exact(rng, tmp_path, photo_files):
    import cv2
    img16 = (rng.random((40, 60, 3)) * 65535).astype(np.uint16)
    inp = tmp_path / "in16.png"
    assert cv2.imwrite(str(inp), img16[..., ::-1])
    out = tmp_path / "out.png"
    _blur0(inp, out, photo_files["depth"])              # 16-bit in -> 16-bit PNG out by default
    back = _read_unchanged(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img16)


def test_tiff_output_is_16_bit(photo_files, tmp_path):
    import tifffile
    out = tmp_path / "out.tif"
    _blur0(photo_files["png"], out, photo_files["depth"])
    back = tifffile.imread(out)
    assert back.dtype == np.uint16 and back.shape == (40, 60, 3)
    expect = photo_files["pixels"].astype(np.int64) * 257
    assert np.abs(back.astype(np.int64) - expect).max() <= 1


def test_jpeg_output(smooth_rgb, tmp_path, photo_files):
    from PIL import Image
    inp = tmp_path / "in.png"
    write_png8(inp, smooth_rgb)
    depth = tmp_path / "depth.png"
    write_png8(depth, np.zeros(smooth_rgb.shape[:2], np.uint8))
    out = tmp_path / "out.jpg"
    _blur0(inp, out, depth, "--quality", "95")
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (64, 48)
        back = np.asarray(im).astype(int)
    assert np.abs(back - smooth_rgb.astype(int)).mean() < 3.0
    # lower quality: smaller file, still the same picture
    out2 = tmp_path / "out_q30.jpg"
    _blur0(inp, out2, depth, "--quality", "30")
    assert out2.stat().st_size < out.stat().st_size
    with Image.open(out2) as im:
        assert np.abs(np.asarray(im).astype(int) - smooth_rgb.astype(int)).mean() < 12.0


def test_grey_png_stays_grey(rng, tmp_path, photo_files):
    grey = (rng.random((40, 60)) * 255).astype(np.uint8)
    inp = tmp_path / "grey.png"
    write_png8(inp, grey)
    photo = imageio.read_photo(inp)
    assert photo.grey and photo.linear.shape == (40, 60, 3)
    out = tmp_path / "grey_out.png"
    _blur0(inp, out, photo_files["depth"])
    back = _read_unchanged(out)
    assert back.ndim == 2
    np.testing.assert_array_equal(back, grey)


def test_icc_profile_is_carried_to_the_output(smooth_rgb, tmp_path, photo_files):
    from PIL import Image
    icc = b"not-a-real-profile-but-opaque-bytes" * 40
    inp = tmp_path / "icc.jpg"
    Image.fromarray(smooth_rgb).save(inp, "JPEG", quality=95, icc_profile=icc)
    depth = tmp_path / "depth.png"
    write_png8(depth, np.zeros(smooth_rgb.shape[:2], np.uint8))
    for ext in (".jpg", ".png", ".tif"):
        out = tmp_path / f"icc_out{ext}"
        _blur0(inp, out, depth)
        if ext == ".tif":
            import tifffile
            with tifffile.TiffFile(out) as tf:
                assert tf.pages[0].tags["InterColorProfile"].value == icc
        else:
            with Image.open(out) as im:
                assert im.info.get("icc_profile") == icc, ext


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_output_file_mode_follows_umask(photo_files, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out.png"
        _blur0(photo_files["png"], out, photo_files["depth"])
        reference = tmp_path / "reference.txt"
        reference.write_text("x")
    finally:
        os.umask(old)
    assert reference.stat().st_mode & 0o777 == 0o644
    assert out.stat().st_mode & 0o777 == 0o644


# -- sRGB ------------------------------------------------------------------------------------

def test_srgb8_round_trip_is_exact():
    v = np.arange(256, dtype=np.uint8)
    lin = color.decode_srgb(v)
    assert lin.dtype == np.float32
    assert (np.diff(lin) > 0).all() and lin[0] == 0.0 and lin[-1] == 1.0
    np.testing.assert_array_equal(color.encode_srgb8(lin), v)
    # the same in an image-shaped array, all channels
    img = np.stack([v, v[::-1], np.roll(v, 77)], axis=-1).reshape(16, 16, 3)
    np.testing.assert_array_equal(color.encode_srgb8(color.decode_srgb(img)), img)


def test_srgb8_encoding_of_a_large_image_in_bands_and_with_a_bad_value():
    """Large images are encoded in row bands on several threads, each band checked for
    values that are not finite first: the bands give the one-pass result, and a NaN or an
    infinity anywhere falls back to the clipping path for the whole image."""
    rng = np.random.default_rng(5)
    v = rng.integers(0, 256, (700, 600, 3), dtype=np.uint8)     # over 2**20 values: threads
    lin = color.decode_srgb(v)
    np.testing.assert_array_equal(color.encode_srgb8(lin), v)
    bad = lin.copy()
    bad[699, 599, 2], bad[3, 3, 0] = np.nan, np.inf
    out = color.encode_srgb8(bad)
    assert out[3, 3, 0] == 255 and out[699, 599, 2] == 0       # +inf: white; NaN: black
    keep = np.ones(v.shape, bool)
    keep[699, 599, 2] = keep[3, 3, 0] = False
    np.testing.assert_array_equal(out[keep], v[keep])


def test_srgb16_round_trip_is_exact():
    v = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(color.encode_srgb16(color.decode_srgb(v)), v)


def test_srgb_formula_values():
    # IEC 61966-2-1 reference points
    assert color.srgb_to_linear(0.5) == pytest.approx(0.21404114, rel=1e-6)
    assert color.srgb_to_linear(0.04045) == pytest.approx(0.04045 / 12.92)
    assert color.linear_to_srgb(0.0031308) == pytest.approx(0.0031308 * 12.92)
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(color.linear_to_srgb(color.srgb_to_linear(x)), x, atol=1e-12)
    # encoding clips out-of-range linear values
    np.testing.assert_array_equal(color.encode_srgb8(np.array([-0.5, 0.0, 1.0, 7.0], np.float32)),
                                  [0, 0, 255, 255])
    # 8-bit encoding rounds to the nearest sRGB code (the 16-bit linear table it goes through
    # is finer than 0.05 code: test 0.1 code away from the rounding boundaries)
    k = np.arange(255)
    np.testing.assert_array_equal(color.encode_srgb8(color.srgb_to_linear((k + 0.4) / 255)), k)
    np.testing.assert_array_equal(color.encode_srgb8(color.srgb_to_linear((k + 0.6) / 255)), k + 1)


def test_srgb8_image_encoding_matches_the_formula_in_every_layout(rng):
    """Images (float32, 2-D or with channels) take a one-pass path; it must give the formula's
    nearest code for every channel, clip out-of-range values, and treat inf / NaN like the
    plain path (inf is bright, not black)."""
    ref = lambda a: np.round(color.linear_to_srgb(np.clip(a, 0, 1)) * 255).astype(np.uint8)
    for shape in [(37, 53), (37, 53, 3), (20, 30, 4)]:
        a = (rng.random(shape) * 1.4 - 0.2).astype(np.float32)
        got = color.encode_srgb8(a)
        assert got.shape == shape and got.dtype == np.uint8
        exact = ref(a.astype(np.float64))
        assert np.abs(got.astype(int) - exact).max() <= 1
        # away from rounding boundaries (0.1 code) it is the exact nearest code
        codes = color.linear_to_srgb(np.clip(a, 0, 1).astype(np.float64)) * 255
        clear = np.abs(codes - np.floor(codes) - 0.5) > 0.1
        np.testing.assert_array_equal(got[clear], exact[clear])
    img = np.full((4, 5, 3), 0.5, np.float32)
    img[0, 0] = [np.inf, -np.inf, 2.0]
    got = color.encode_srgb8(img)
    np.testing.assert_array_equal(got[0, 0], [255, 0, 255])
    assert (got[1:] == ref(np.float64(0.5))).all()
    assert (color.encode_srgb8(img[:, ::2]) == color.encode_srgb8(np.ascontiguousarray(img[:, ::2]))).all()


# -- EXIF orientation --------------------------------------------------------------------------

def _small8(linear):
    import cv2
    return cv2.resize(color.encode_srgb8(linear), (180, 120), interpolation=cv2.INTER_AREA).astype(np.float64)


@pytest.fixture(scope="module")
def landscapes():
    if not all((EXIF_DIR / f"Landscape_{i}.jpg").is_file() for i in range(1, 9)):
        pytest.skip(f"shared EXIF orientation images not found in {EXIF_DIR}")
    return {i: imageio.read_photo(EXIF_DIR / f"Landscape_{i}.jpg") for i in range(1, 9)}


def test_exif_orientation_is_applied(landscapes):
    ref = _small8(landscapes[1].linear)
    for i, photo in landscapes.items():
        assert photo.meta["orientation"] == i
        assert photo.linear.shape == (1200, 1800, 3), i
        assert np.abs(_small8(photo.linear) - ref).mean() < 12, i


def test_exif_orientation_test_is_sensitive(landscapes):
    """Ignoring the orientation would fail the test above (the images are not symmetric)."""
    ref = _small8(landscapes[1].linear)
    for i in (2, 3, 4):
        stored = imageio.apply_orientation(landscapes[i].linear, i)    # applying it twice undoes 2-4
        assert np.abs(_small8(stored) - ref).mean() > 12, i


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow(rng, orientation):
    from PIL import Image, ImageOps
    a = (rng.random((5, 7, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expect = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(imageio.apply_orientation(a, orientation), expect)


def test_rotated_jpeg_is_written_upright(landscapes, tmp_path):
    from PIL import Image
    inp = EXIF_DIR / "Landscape_6.jpg"
    depth = tmp_path / "depth.png"
    write_png8(depth, np.zeros((12, 18), np.uint8))            # same aspect as the upright photo
    out = tmp_path / "upright.jpg"
    _blur0(inp, out, depth)
    with Image.open(out) as im:
        assert im.size == (1800, 1200)
        assert im.getexif().get(0x0112, 1) == 1               # orientation reset, EXIF kept
        assert len(im.getexif()) > 1
    photo = imageio.read_photo(out)
    assert photo.linear.shape == (1200, 1800, 3)
    assert np.abs(_small8(photo.linear) - _small8(landscapes[1].linear)).mean() < 12


# -- depth maps --------------------------------------------------------------------------------

def test_read_depth_formats(tmp_path, rng):
    import cv2
    import tifffile
    d = rng.random((30, 45)).astype(np.float32)
    d16 = np.round(d * 65535).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "d16.png"), d16)
    tifffile.imwrite(tmp_path / "dfloat.tif", d)
    np.save(tmp_path / "d.npy", d)
    write_png8(tmp_path / "d8.png", np.round(d * 255).astype(np.uint8))
    np.testing.assert_allclose(imageio.read_depth(tmp_path / "d16.png"), d, atol=1e-5)
    np.testing.assert_array_equal(imageio.read_depth(tmp_path / "dfloat.tif"), d)
    np.testing.assert_array_equal(imageio.read_depth(tmp_path / "d.npy"), d)
    np.testing.assert_allclose(imageio.read_depth(tmp_path / "d8.png"), d, atol=0.5 / 255 + 1e-6)
    for name in ("d16.png", "dfloat.tif", "d.npy", "d8.png"):
        assert imageio.read_depth(tmp_path / name).dtype == np.float32


def test_read_depth_kind_depth_is_inverted(tmp_path):
    depth = np.array([[1.0, 2.0, 4.0]], np.float32)          # metres: larger = farther
    np.save(tmp_path / "z.npy", depth)
    disp = imageio.read_depth(tmp_path / "z.npy", kind="depth")
    # disparity ~ 1/depth, normalised to [0, 1]: 1, 0.5, 0.25 -> 1, 1/3, 0
    np.testing.assert_allclose(disp, [[1.0, 1 / 3, 0.0]], atol=1e-6)


def test_read_depth_resizes_same_aspect_and_refuses_other_aspect(tmp_path):
    import refocus
    np.save(tmp_path / "half.npy", np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(20, 30))
    assert imageio.read_depth(tmp_path / "half.npy", shape=(40, 60)).shape == (40, 60)
    with pytest.raises(refocus.BadInputError, match="aspect"):
        imageio.read_depth(tmp_path / "half.npy", shape=(40, 40))
