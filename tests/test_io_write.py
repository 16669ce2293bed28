"""Writing: metadata survives (checked with exiftool and Pillow), colour profiles round trip,
GDepth and disparity maps read back by independent readers, outputs never clobbered."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import refocus
from refocus import color
from refocus.io import colour, read_photo
from refocus.io.write import write_disparity_png, write_gdepth_jpeg, write_result
from refocus.io.xmp import read_record

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RECORD = {"preset": "portrait", "focus_disparity": 0.42, "blur": 18.5, "depth_source": "depth.png"}


def _data(rel):
    p = DATA / rel
    if not p.is_file():
        pytest.skip(f"shared sample {rel} not found in {DATA}")
    return p


def exiftool(*args):
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool not installed (Debian package libimage-exiftool-perl)")
    out = subprocess.run([exe, *map(str, args)], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def exif_json(path):
    return json.loads(exiftool("-j", "-n", "-G1", path))[0]


# fields photographers care about, as exiftool names them (group-qualified)
FIELDS = ["IFD0:Make", "IFD0:Model", "ExifIFD:FNumber", "ExifIFD:ExposureTime", "ExifIFD:ISO",
          "ExifIFD:FocalLength", "ExifIFD:FocalLengthIn35mmFormat", "ExifIFD:DateTimeOriginal",
          "ExifIFD:LensModel", "GPS:GPSLatitude", "GPS:GPSLongitude", "ExifIFD:SubjectDistance"]


@pytest.mark.parametrize("name", ["exif/Nikon_D300_lens_data.jpeg", "exif/Nikon_COOLPIX_P6000_GPS_DSCN0010.jpg",
                                  "exif/Canon_40D.jpg", "portraits/obama_official_portrait.jpg",
                                  "exif/Canon_SX60HS_orientation6.jpg"])
@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_exif_fields_survive_into_outputs(tmp_path, name, ext):
    src = _data(name)
    photo = read_photo(src)
    crop = photo.linear[:300, :256]                  # a crop keeps the test fast; metadata is the point
    out = write_result(tmp_path / f"out{ext}", crop, photo=photo, xmp_record=RECORD)
    a, b = exif_json(src), exif_json(out)
    kept = [f for f in FIELDS if f in a]
    assert len(kept) >= 6
    for f in kept:
        assert b.get(f) == a[f], f
    # pixels are upright: orientation normal, thumbnail of the unprocessed picture dropped
    assert b.get("IFD0:Orientation", 1) == 1
    assert "IFD1:ThumbnailImage" not in b and "IFD1:ThumbnailLength" not in b
    h, w = crop.shape[:2]
    if "ExifIFD:ExifImageWidth" in a and a["ExifIFD:ExifImageWidth"]:
        assert (b["ExifIFD:ExifImageWidth"], b["ExifIFD:ExifImageHeight"]) == (w, h)
    # the XMP record says what refocus did
    assert b["XMP-refocus:Version"] == refocus.__version__
    assert b["XMP-refocus:Preset"] == "portrait" and b["XMP-refocus:Blur"] == 18.5
    assert b["XMP-refocus:FocusDisparity"] == 0.42 and b["XMP-refocus:DepthSource"] == "depth.png"
    assert b["XMP-xmp:CreatorTool"].startswith("refocus")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_maker_notes_are_kept(tmp_path, ext):
    src = _data("exif/Nikon_D300_lens_data.jpeg")
    photo = read_photo(src)
    out = write_result(tmp_path / f"out{ext}", photo.linear, photo=photo)
    a, b = exif_json(src), exif_json(out)
    for f in ("Nikon:Lens", "Nikon:LensType", "Nikon:ShutterCount", "Composite:LensID"):
        assert f in a and b.get(f) == a[f], f


def test_source_xmp_is_carried_but_pixel_regions_dropped(tmp_path):
    src = _data("exif/Curies_orientation6_faces.jpg")
    photo = read_photo(src)
    out = write_result(tmp_path / "out.jpg", photo.linear, photo=photo, xmp_record=RECORD)
    a, b = exif_json(src), exif_json(out)
    assert any(k.startswith("XMP-mwg-rs:") for k in a)               # face regions in the source ...
    assert not any(k.startswith("XMP-mwg-rs:") for k in b)           # ... refer to the old pixels: dropped
    assert b["XMP-refocus:Preset"] == "portrait"
    with open(out, "rb") as f:
        from PIL import Image
        with Image.open(f) as im:
            assert read_record(im.info["xmp"])["Blur"] == "18.5"


@pytest.mark.parametrize("name", ["portraits/obama_official_portrait.jpg", "embedded_depth/iphone_portrait_depth.jpg",
                                  "portraits/rocket.jpg"])
@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_icc_profile_survives(tmp_path, name, ext):
    import tifffile
    from PIL import Image
    src = _data(name)
    photo = read_photo(src)
    assert photo.icc
    out = write_result(tmp_path / f"out{ext}", photo.linear[:200, :200], photo=photo)
    if ext == ".tif":
        with tifffile.TiffFile(out) as tf:
            assert tf.pages[0].tags["InterColorProfile"].value == photo.icc
    else:
        with Image.open(out) as im:
            assert im.info["icc_profile"] == photo.icc


def test_adobe_rgb_round_trip_is_exact_and_to_srgb_converts(tmp_path, rng):
    from PIL import Image, ImageCms
    p = Path("/usr/share/color/icc/colord/AdobeRGB1998.icc")
    if not p.is_file():
        pytest.skip("colord-data ICC profiles not installed")
    icc = p.read_bytes()
    a = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    a16 = (rng.random((30, 40, 3)) * 65535).astype(np.uint16)
    src = tmp_path / "adobe.png"
    Image.fromarray(a).save(src, icc_profile=icc)
    photo = read_photo(src)
    assert "Adobe RGB" in photo.space.name
    out = write_result(tmp_path / "same.png", photo.linear, photo=photo)       # zero blur: same code values
    with Image.open(out) as im:
        assert im.info["icc_profile"] == icc
        np.testing.assert_array_equal(np.asarray(im), a)
    # 16-bit TIFF in Adobe RGB: exact too
    import tifffile
    tifffile.imwrite(tmp_path / "adobe16.tif", a16, photometric="rgb", iccprofile=icc)
    photo16 = read_photo(tmp_path / "adobe16.tif")
    out16 = write_result(tmp_path / "same16.tif", photo16.linear, photo=photo16)
    back = tifffile.imread(out16)
    assert np.abs(back.astype(int) - a16.astype(int)).max() <= 1
    # converted to sRGB on request: LittleCMS agrees, and the file says sRGB
    out2 = write_result(tmp_path / "srgb.png", photo.linear, photo=photo, to_srgb=True)
    ref = np.asarray(ImageCms.profileToProfile(Image.fromarray(a), ImageCms.ImageCmsProfile(str(p)),
                                               ImageCms.createProfile("sRGB"), renderingIntent=1)).astype(int)
    with Image.open(out2) as im:
        got = np.asarray(im).astype(int)
        assert "sRGB" in colour.profile_description(im.info["icc_profile"])
    inside = (ref > 2).all(axis=2) & (ref < 253).all(axis=2)
    assert np.abs(got - ref)[inside].max() <= 2


def test_gdepth_jpeg_read_back_by_exiftool(tmp_path, rng):
    import cv2
    src = _data("exif/Nikon_COOLPIX_P6000_GPS_DSCN0010.jpg")
    photo = read_photo(src)
    h, w = photo.linear.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    d = ((xx / w) * 0.7 + (yy / h) * 0.3).astype(np.float32)
    out = write_gdepth_jpeg(tmp_path / "gd.jpg", photo.linear * 0.9, d, photo=photo, original=photo.linear,
                            near=1.5, far=12.0, xmp_record=RECORD)
    info = exif_json(out)
    assert info["XMP-GDepth:Format"] == "RangeInverse"
    assert info["XMP-GDepth:Near"] == 1.5 and info["XMP-GDepth:Far"] == 12
    assert info["XMP-GDepth:Mime"] == "image/png" and info["XMP-GImage:ImageMimeType"] == "image/jpeg"
    assert info["IFD0:Model"] == "COOLPIX P6000"
    png = exiftool("-b", "-XMP-GDepth:DepthImage", out)
    depth = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert depth.shape == (h, w)
    np.testing.assert_array_equal(depth, np.round((1 - d) * 255).astype(np.uint8))   # near = dark
    jpg = exiftool("-b", "-XMP-GImage:ImageData", out)
    orig = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(orig.astype(int) - color.encode_srgb8(photo.linear).astype(int)).mean() < 4   # JPEG q95


def test_disparity_png_is_16_bit(tmp_path, rng):
    import cv2
    d = rng.random((33, 47)).astype(np.float32)
    out = write_disparity_png(tmp_path / "d.png", d)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (33, 47)
    np.testing.assert_array_equal(back, np.round(d * 65535).astype(np.uint16))
    np.testing.assert_allclose(refocus.imageio.read_depth(out), d, atol=1e-5)


# -- never clobber ------------------------------------------------------------------------------

def test_existing_output_is_kept_unless_overwrite(tmp_path, rng):
    from PIL import Image
    src = tmp_path / "in.png"
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(src)
    photo = read_photo(src)
    out = tmp_path / "out.jpg"
    out.write_bytes(b"precious")
    with pytest.raises(refocus.OutputError, match=r"out\.jpg.*already exists.*overwrite"):
        write_result(out, photo.linear, photo=photo)
    assert out.read_bytes() == b"precious"
    write_result(out, photo.linear, photo=photo, overwrite=True)
    assert out.read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(refocus.OutputError, match="input"):
        write_result(src, photo.linear, photo=photo, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.jpg"]


def test_unwritable_output_folder(tmp_path, rng):
    from PIL import Image
    src = tmp_path / "in.png"
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(src)
    photo = read_photo(src)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked if not os.access(locked, os.W_OK) else Path("/proc")   # root ignores modes
        with pytest.raises(refocus.OutputError, match=str(target)):
            write_result(target / "out.jpg", photo.linear, photo=photo)
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)
