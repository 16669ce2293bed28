"""Reading photos: formats by content, bit depths, alpha, orientation, raw, HEIC, EXIF, colour.

References are independent of refocus' readers: Pillow/LittleCMS (ImageCms), OpenCV,
tifffile, rawpy's own gamma curve, and exiftool where installed.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import refocus
from refocus import color
from refocus.io import colour, read_photo, sniff

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
COLORD = Path("/usr/share/color/icc/colord")


def _data(rel):
    p = DATA / rel
    if not p.is_file():
        pytest.skip(f"shared sample {rel} not found in {DATA}")
    return p


def _profile(name):
    p = COLORD / name
    if not p.is_file():
        pytest.skip(f"ICC profile {p} not installed (Debian package colord-data)")
    return p.read_bytes()


# -- formats, chosen by content --------------------------------------------------------------

@pytest.fixture
def rgb8(rng):
    return (rng.random((24, 36, 3)) * 255).astype(np.uint8)


def test_png_named_jpg_is_read_by_content(tmp_path, rgb8):
    from PIL import Image
    p = tmp_path / "actually_png.jpg"
    Image.fromarray(rgb8).save(p, "PNG")
    assert sniff(p) == "png"
    photo = read_photo(p)
    assert photo.format == "PNG"
    np.testing.assert_array_equal(color.encode_srgb8(photo.linear), rgb8)


@pytest.mark.parametrize("mode", ["grey8", "grey16", "rgb8", "rgb16", "rgba8", "rgba16"])
def test_tiff_bit_depths_and_channels(tmp_path, rng, mode):
    import tifffile
    bits = 16 if mode.endswith("16") else 8
    dt = np.uint16 if bits == 16 else np.uint8
    top = np.iinfo(dt).max
    ch = {"grey": 1, "rgb": 3, "rgba": 4}[mode[:-len(str(bits))]]
    a = (rng.random((20, 30, ch)) * top).astype(dt)
    if ch == 1:
        a = a[..., 0]
    p = tmp_path / f"{mode}.tif"
    tifffile.imwrite(p, a, photometric="minisblack" if ch == 1 else "rgb",
                     extrasamples=(2,) if ch == 4 else None, compression="zlib")
    photo = read_photo(p)
    assert photo.bits == bits and photo.grey == (ch == 1) and photo.linear.shape == (20, 30, 3)
    enc = color.encode_srgb16(photo.linear) if bits == 16 else color.encode_srgb8(photo.linear)
    expect = a[..., :3] if ch > 1 else np.repeat(a[..., None], 3, axis=2)
    np.testing.assert_array_equal(enc, expect)
    if ch == 4:
        np.testing.assert_allclose(photo.alpha, a[..., 3] / top, atol=1e-6)
    else:
        assert photo.alpha is None


def test_png16_grey_and_rgba(tmp_path, rng):
    import cv2
    g = (rng.random((10, 12)) * 65535).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "g.png"), g)
    photo = read_photo(tmp_path / "g.png")
    assert photo.grey and photo.bits == 16
    np.testing.assert_array_equal(color.encode_srgb16(photo.linear[..., 0]), g)
    rgba = (rng.random((10, 12, 4)) * 255).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "a.png"), rgba[..., [2, 1, 0, 3]])
    photo = read_photo(tmp_path / "a.png")
    np.testing.assert_array_equal(color.encode_srgb8(photo.linear), rgba[..., :3])
    np.testing.assert_allclose(photo.alpha, rgba[..., 3] / 255, atol=1e-6)


def test_webp_lossless(tmp_path, rgb8):
    from PIL import Image
    p = tmp_path / "x.webp"
    Image.fromarray(rgb8).save(p, "WEBP", lossless=True)
    photo = read_photo(p)
    assert photo.format == "WEBP"
    np.testing.assert_array_equal(color.encode_srgb8(photo.linear), rgb8)


def test_heic_with_pillow_heif():
    pillow_heif = pytest.importorskip("pillow_heif")
    p = _data("embedded_depth/iphone_portrait_depth.heic")
    photo = read_photo(p)
    assert photo.format == "HEIF" and photo.linear.shape[2] == 3
    assert photo.camera.make == "Apple" and photo.camera.focal_length_35mm == 26
    assert "P3" in photo.space.name
    # against pillow-heif's own decode (independent of refocus' colour code: compare code values)
    heif = pillow_heif.open_heif(p, convert_hdr_to_8bit=True)
    ref = np.asarray(heif)
    assert ref.shape[:2] == photo.linear.shape[:2]
    np.testing.assert_array_equal(colour.encode(photo.linear[::97, ::97], photo.space, 8), ref[::97, ::97, :3])


# -- orientation -------------------------------------------------------------------------------

def test_orientation6_camera_jpeg_is_upright():
    """A Canon JPEG stored sideways (Orientation 6): read as displayed (portrait)."""
    from PIL import Image, ImageOps
    p = _data("exif/Canon_SX60HS_orientation6.jpg")
    photo = read_photo(p)
    assert photo.meta["orientation"] == 6 and photo.linear.shape == (2048, 1536, 3)
    with Image.open(p) as im:
        ref = np.asarray(ImageOps.exif_transpose(im))[::16, ::16].astype(int)
    assert np.abs(color.encode_srgb8(photo.linear)[::16, ::16].astype(int) - ref).mean() < 2


def test_orientation6_grey_scan_matches_the_upright_original():
    rot = read_photo(_data("exif/Curies_orientation6_faces.jpg"))
    upright = read_photo(_data("historic/Curies_lab_c1904.jpg"))
    assert rot.grey and rot.linear.shape == upright.linear.shape == (700, 840, 3)
    a = color.encode_srgb8(rot.linear)[..., 0].astype(float)
    b = color.encode_srgb8(upright.linear)[..., 1].astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    stored = np.rot90(a, k=1)                       # undo the orientation: the file's own layout
    assert stored.shape != b.shape[:2]


# -- raw -----------------------------------------------------------------------------------------

def test_raw_dng_is_linear_16_bit_with_camera_white_balance():
    rawpy = pytest.importorskip("rawpy")
    p = _data("raw/Canon_EOS_Kiss_X4_colorchart.dng")
    photo = read_photo(p)
    assert photo.format == "RAW" and photo.bits == 16 and photo.linear.shape == (1156, 1734, 3)
    assert photo.camera.make == "Canon" and photo.camera.model == "Canon EOS Kiss X4"
    # rawpy with its own sRGB curve gives what our linear data encodes to: no second gamma
    with rawpy.imread(str(p)) as raw:
        ref = raw.postprocess(gamma=(2.4, 12.92), no_auto_bright=True, output_bps=16, use_camera_wb=True,
                              output_color=rawpy.ColorSpace.sRGB, highlight_mode=rawpy.HighlightMode.Blend)
    ours = color.encode_srgb16(photo.linear).astype(float)
    assert np.abs(ours - ref).mean() < 0.01 * 65535
    # a linear image is much darker than its encoded version in the mid-tones
    assert photo.linear.mean() < 0.6 * (ref / 65535).mean()


def test_raw_kodak_kdc_decodes():
    pytest.importorskip("rawpy")
    photo = read_photo(_data("raw/RAW_KODAK_DC50.KDC"))
    assert photo.format == "RAW" and photo.linear.shape == (512, 768, 3)
    assert 0.01 < photo.linear.mean() < 0.9 and np.isfinite(photo.linear).all()
    assert photo.camera.make == "Eastman Kodak Company"


@pytest.mark.parametrize("name", ["raw/exiftool_Panasonic_stripped.rw2", "raw/exiftool_DNG_stripped.dng"])
def test_metadata_only_raws_open_without_crash(name):
    pytest.importorskip("rawpy")
    try:
        photo = read_photo(_data(name))
    except refocus.RefocusError as e:                     # a clear error is acceptable, a crash is not
        assert name.split("/")[-1] in str(e)
        return
    assert photo.linear.ndim == 3 and photo.camera.make in ("Panasonic", "Canon")


def _set_tiff_orientation(data: bytearray, value: int) -> bytearray:
    e = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack_from(e + "I", data, 4)[0]
    for i in range(struct.unpack_from(e + "H", data, ifd)[0]):
        pos = ifd + 2 + 12 * i
        if struct.unpack_from(e + "H", data, pos)[0] == 0x0112:
            struct.pack_into(e + "H", data, pos + 8, value)
            return data
    raise AssertionError("no Orientation tag")


def test_raw_orientation_is_applied(tmp_path):
    """The same DNG with Orientation 6: the decoded image is the upright one turned 90 deg CW."""
    pytest.importorskip("rawpy")
    src = _data("raw/Canon_EOS_Kiss_X4_colorchart.dng")
    rotated = tmp_path / "rot6.dng"
    rotated.write_bytes(_set_tiff_orientation(bytearray(src.read_bytes()), 6))
    a = read_photo(src).linear
    b = read_photo(rotated).linear
    assert b.shape == (a.shape[1], a.shape[0], 3)
    np.testing.assert_allclose(b, np.rot90(a, k=-1), atol=2 / 65535)


# -- EXIF -> CameraInfo, against exiftool ----------------------------------------------------------

CAMERA_JPEGS = ["exif/Canon_40D.jpg", "exif/Nikon_D70.jpg", "exif/Panasonic_DMC-FZ30.jpg", "exif/Kodak_CX7530.jpg",
                "exif/Nikon_COOLPIX_P6000_GPS_DSCN0010.jpg", "exif/Nikon_D300_lens_data.jpeg",
                "portraits/obama_official_portrait.jpg"]


def _exiftool_json(path):
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool not installed (Debian package libimage-exiftool-perl)")
    out = subprocess.run([exe, "-j", "-n", str(path)], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)[0]


@pytest.mark.parametrize("name", CAMERA_JPEGS)
def test_camera_info_matches_exiftool(name):
    p = _data(name)
    cam = read_photo(p).camera
    ref = _exiftool_json(p)
    assert cam.make == str(ref["Make"]).strip() and cam.model == str(ref["Model"]).strip()
    assert cam.focal_length_mm == pytest.approx(ref["FocalLength"], rel=1e-3)
    assert cam.f_number == pytest.approx(ref["FNumber"], rel=1e-3)
    assert cam.exposure_time_s == pytest.approx(ref["ExposureTime"], rel=1e-3)
    assert cam.iso == (ref.get("ISO") or None)
    assert cam.datetime_original.startswith(ref["DateTimeOriginal"][:19])
    if ref.get("FocalLengthIn35mmFormat"):
        assert cam.focal_length_35mm == pytest.approx(ref["FocalLengthIn35mmFormat"], rel=1e-3)
        assert cam.crop_factor == pytest.approx(ref["FocalLengthIn35mmFormat"] / ref["FocalLength"], rel=1e-3)
        assert cam.sensor_width_mm > cam.sensor_height_mm > 0
    if "LensModel" in ref:
        assert cam.lens and str(ref["LensModel"]) in cam.lens
    if "GPSLatitude" in ref:
        assert cam.gps_latitude == pytest.approx(ref["GPSLatitude"], abs=1e-6)
        assert cam.gps_longitude == pytest.approx(ref["GPSLongitude"], abs=1e-6)


def test_camera_info_from_raw_matches_exiftool():
    p = _data("raw/RAW_KODAK_DC50.KDC")
    pytest.importorskip("rawpy")
    cam = read_photo(p).camera
    ref = _exiftool_json(p)
    assert cam.make == ref["Make"] and cam.f_number == pytest.approx(ref["FNumber"], rel=1e-3)
    assert cam.subject_distance_m == pytest.approx(ref["SubjectDistance"], rel=1e-3)


# -- colour: ICC curves and primaries, against LittleCMS ---------------------------------------------

@pytest.mark.parametrize("profile", ["AdobeRGB1998.icc", "ProPhotoRGB.icc", "sRGB.icc"])
def test_profile_to_srgb_matches_littlecms(profile, rng):
    from PIL import Image, ImageCms
    icc = _profile(profile)
    space = colour.parse_icc(icc)
    assert space.note == "" and space.to_xyz is not None
    # smooth mid-gamut colours (LittleCMS clips out-of-gamut ones; we compare inside sRGB)
    a = (64 + rng.random((32, 32, 3)) * 128).astype(np.uint8)
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    srgb = ImageCms.createProfile("sRGB")
    ref = np.asarray(ImageCms.profileToProfile(Image.fromarray(a), src, srgb, renderingIntent=1,
                                               outputMode="RGB")).astype(float)
    lin = colour.decode(a, space)
    ours = color.encode_srgb8(colour.convert_linear(lin, space, colour.SRGB)).astype(float)
    inside = (ref > 2).all(axis=2) & (ref < 253).all(axis=2)
    assert inside.mean() > 0.5
    assert np.abs(ours - ref)[inside].max() <= 2.0


def test_curve_types():
    # Adobe RGB: gamma 563/256; ProPhoto: 1.8; sRGB profile tables recognised as the sRGB curve
    adobe = colour.parse_icc(_profile("AdobeRGB1998.icc"))
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(adobe.curves[0].to_linear(x), x ** (563 / 256), atol=2e-4)
    pro = colour.parse_icc(_profile("ProPhotoRGB.icc"))
    y = pro.curves[1].to_linear(x)
    assert abs(y[5] - 0.5 ** 1.8) < 0.01
    np.testing.assert_allclose(pro.curves[1].to_encoded(y), x, atol=1e-6)
    assert colour.parse_icc(_profile("sRGB.icc")).is_srgb


def test_display_p3_iphone_jpeg_against_littlecms():
    from PIL import Image, ImageCms
    p = _data("embedded_depth/iphone_portrait_depth.jpg")
    photo = read_photo(p)
    assert "P3" in photo.space.name and not photo.space.is_srgb
    with Image.open(p) as im:
        small = im.convert("RGB").resize((189, 252), Image.NEAREST)
        src = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
    ref = np.asarray(ImageCms.profileToProfile(small, src, ImageCms.createProfile("sRGB"), renderingIntent=1,
                                               outputMode="RGB")).astype(float)
    a = np.asarray(small)
    ours = color.encode_srgb8(colour.convert_linear(colour.decode(a, photo.space), photo.space)).astype(float)
    inside = (ref > 2).all(axis=2) & (ref < 253).all(axis=2)
    assert np.abs(ours - ref)[inside].mean() < 0.6 and np.abs(ours - ref)[inside].max() <= 3


def test_unparseable_profile_is_kept_and_pixels_treated_as_srgb(tmp_path, rgb8):
    from PIL import Image
    icc = b"opaque-bytes" * 30
    p = tmp_path / "odd.jpg"
    Image.fromarray(rgb8).save(p, "JPEG", icc_profile=icc, quality=100)
    photo = read_photo(p)
    assert photo.icc == icc and "profile not used" in photo.space.note
