"""Layered outputs read back by independent readers: psd-tools (PSD), zipfile + OpenCV (ORA),
tifffile (layered TIFF); the `refocus render` CLI writing them; bad inputs for the I/O."""
from __future__ import annotations

import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import refocus
from refocus import color
from refocus.cli import main
from refocus.io import read_photo
from refocus.io.layers import Layer, result_layers, write_layers
from conftest import write_png8

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
NAMES = ["refocused", "original", "disparity", "blur (CoC)", "subject mask"]


@pytest.fixture
def stack(tmp_path, rng):
    """A small photo and a 5-layer stack with known values."""
    from PIL import Image
    img = (rng.random((20, 28, 3)) * 255).astype(np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    photo = read_photo(src)
    yy, xx = np.mgrid[:20, :28]
    d = (xx / 27).astype(np.float32)
    coc = 8 * (d - 0.25)
    mask = (yy > 9).astype(np.float32)
    layers = result_layers(photo.linear * 0.5, photo.linear, d, coc, subject_mask=mask)
    return photo, layers, img, d, np.abs(coc) / np.abs(coc).max(), mask


def _expected(layers, bits):
    """Code values each layer should hold (sRGB-encoded colour, plain maps)."""
    top = 65535 if bits == 16 else 255
    out = []
    for layer in layers:
        if layer.kind == "colour":
            out.append(color.encode_srgb16(layer.data) if bits == 16 else color.encode_srgb8(layer.data))
        else:
            out.append(np.round(np.clip(layer.data, 0, 1) * top).astype(np.uint16 if bits == 16 else np.uint8))
    return out


@pytest.mark.parametrize("bits", [8, 16])
def test_psd_layers_read_by_psd_tools(tmp_path, stack, bits):
    psd_tools = pytest.importorskip("psd_tools")
    photo, layers, *_ = stack
    out = write_layers(tmp_path / "s.psd", layers, photo=photo, bits=bits)
    psd = psd_tools.PSDImage.open(out)
    assert psd.depth == bits and psd.size == (28, 20)
    got = list(psd)[::-1]                                   # psd-tools lists bottom to top
    assert [l.name for l in got] == NAMES
    assert [l.visible for l in got] == [True, False, False, False, False]
    top = 65535 if bits == 16 else 255
    for layer, want, psl in zip(layers, _expected(layers, bits), got):
        assert psl.size == (28, 20)
        a = np.round(psl.numpy()[..., :3] * top).astype(int)
        w = want if want.ndim == 3 else np.repeat(want[..., None], 3, axis=2)
        assert np.abs(a - w).max() <= (1 if bits == 16 else 0), layer.name
    comp = np.round(psd.numpy()[..., :3] * top).astype(int)
    assert np.abs(comp - _expected(layers, bits)[0]).max() <= 1


@pytest.mark.parametrize("bits", [8, 16])
def test_ora_stack_read_back_from_the_zip(tmp_path, stack, bits):
    import cv2
    photo, layers, *_ = stack
    out = write_layers(tmp_path / "s.ora", layers, photo=photo, bits=bits)
    with zipfile.ZipFile(out) as z:
        first = z.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert z.read("mimetype") == b"image/openraster"
        with open(out, "rb") as f:                          # readable at a fixed offset, per the spec
            assert f.read(38 + 16)[38:] == b"image/openraster"
        root = ET.fromstring(z.read("stack.xml"))
        assert (root.get("w"), root.get("h")) == ("28", "20")
        entries = root.find("stack").findall("layer")
        assert [e.get("name") for e in entries] == NAMES
        assert [e.get("visibility") for e in entries] == ["visible"] + ["hidden"] * 4
        for e, want in zip(entries, _expected(layers, bits)):
            png = cv2.imdecode(np.frombuffer(z.read(e.get("src")), np.uint8), cv2.IMREAD_UNCHANGED)
            assert png.dtype == (np.uint16 if bits == 16 else np.uint8)
            png = png[..., ::-1] if png.ndim == 3 else png
            np.testing.assert_array_equal(png, want)
        assert "mergedimage.png" in z.namelist()
        thumb = cv2.imdecode(np.frombuffer(z.read("Thumbnails/thumbnail.png"), np.uint8), cv2.IMREAD_UNCHANGED)
        assert max(thumb.shape[:2]) <= 256


def test_layered_tiff_pages_named(tmp_path, stack):
    import tifffile
    photo, layers, *_ = stack
    out = write_layers(tmp_path / "s.tif", layers, photo=photo, bits=16)
    want = dict(zip(NAMES, _expected(layers, 16)))
    with tifffile.TiffFile(out) as tf:
        names = [p.tags["PageName"].value for p in tf.pages]
        assert names[0] == "refocused" and sorted(names) == sorted(NAMES)
        for p, name in zip(tf.pages, names):
            a = p.asarray()
            assert a.dtype == np.uint16
            w = want[name]
            np.testing.assert_array_equal(a, w if w.ndim == 3 else np.repeat(w[..., None], 3, axis=2))


def test_layer_validation(tmp_path, stack):
    photo, layers, *_ = stack
    with pytest.raises(refocus.BadInputError, match="differs"):
        write_layers(tmp_path / "x.psd", layers + [Layer("small", np.zeros((3, 3)), "data")], photo=photo)
    with pytest.raises(refocus.BadInputError, match="unknown output type"):
        write_layers(tmp_path / "x.xcf", layers, photo=photo)
    assert not list(tmp_path.glob("x.*"))


# -- refocus render writes every format ------------------------------------------------------------

def _render(inp, out, depth, *extra):
    r = CliRunner().invoke(main, ["render", str(inp), "-o", str(out), "--depth", str(depth), "--focus-disparity",
                                  "0.5", "--blur", "4", "--device", "cpu", *map(str, extra)])
    return r


def test_cli_render_all_outputs(tmp_path, photo_files):
    import tifffile
    psd_tools = pytest.importorskip("psd_tools")
    inp, depth = photo_files["png"], photo_files["depth"]
    for name, extra in [("o.jpg", []), ("o.png", []), ("o.tif", []), ("l.tif", ["--layers"]), ("l.ora", []),
                        ("l.psd", []), ("g.jpg", ["--gdepth"])]:
        r = _render(inp, tmp_path / name, depth, *extra)
        assert r.exit_code == 0, (name, r.output)
    with tifffile.TiffFile(tmp_path / "o.tif") as tf:
        assert len(tf.pages) == 1
    with tifffile.TiffFile(tmp_path / "l.tif") as tf:
        assert [p.tags["PageName"].value for p in tf.pages] == ["refocused", "disparity", "blur (CoC)", "original"]
    assert [l.name for l in psd_tools.PSDImage.open(tmp_path / "l.psd")][::-1] == NAMES[:4]
    with zipfile.ZipFile(tmp_path / "l.ora") as z:
        assert len(ET.fromstring(z.read("stack.xml")).find("stack")) == 4
    # the CoC layer is |K (d - focus)| / max: the depth ramp 0..1 with focus 0.5 -> V shape
    with tifffile.TiffFile(tmp_path / "l.tif") as tf:
        cocl = tf.pages[2].asarray()[..., 0].astype(float) / 65535
    d = photo_files_depth = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1)) / 255.0
    np.testing.assert_allclose(cocl, np.abs(d - 0.5) / np.abs(d - 0.5).max(), atol=2e-5)
    del photo_files_depth


def test_cli_depth_out_and_overwrite(tmp_path, photo_files):
    import cv2
    inp, depth = photo_files["png"], photo_files["depth"]
    out, dout = tmp_path / "o.png", tmp_path / "d.png"
    assert _render(inp, out, depth, "--depth-out", dout).exit_code == 0
    d = cv2.imread(str(dout), cv2.IMREAD_UNCHANGED)
    assert d.dtype == np.uint16
    np.testing.assert_array_equal(d, np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1)).astype(np.uint16) * 257)
    before = out.read_bytes()
    r = _render(inp, out, depth, "--blur", "9")
    assert r.exit_code == 2 and "already exists" in r.stderr and "--overwrite" in r.stderr
    assert out.read_bytes() == before
    assert _render(inp, out, depth, "--blur", "9", "--overwrite").exit_code == 0
    assert out.read_bytes() != before
    assert _render(inp, tmp_path / "x.png", depth, "--layers").exit_code == 2
    assert not (tmp_path / "x.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# -- bad input ------------------------------------------------------------------------------------

def test_truncated_raw_gives_one_clear_error(tmp_path):
    pytest.importorskip("rawpy")
    src = DATA / "raw" / "Canon_EOS_Kiss_X4_colorchart.dng"
    if not src.is_file():
        pytest.skip("shared raw sample not found")
    data = src.read_bytes()
    for frac in (0.5, 0.95):
        p = tmp_path / f"cut{int(frac * 100)}.dng"
        p.write_bytes(data[:int(len(data) * frac)])
        with pytest.raises(refocus.UnsupportedFormatError, match=rf"{p.name}.*truncated"):
            read_photo(p)
    p = tmp_path / "header_only.nef"
    p.write_bytes(data[:300])
    with pytest.raises(refocus.RefocusError, match="header_only.nef"):
        read_photo(p)


@pytest.mark.parametrize("kind", ["png", "tif", "webp"])
def test_truncated_files(tmp_path, rng, kind):
    from PIL import Image
    img = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    full = tmp_path / f"full.{kind}"
    Image.fromarray(img).save(full, {"tif": "TIFF", "png": "PNG", "webp": "WEBP"}[kind])
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    with pytest.raises(refocus.UnsupportedFormatError, match=f"cut.{kind}"):
        read_photo(cut)


def test_pixel_limit(tmp_path, monkeypatch, photo_files):
    with pytest.raises(refocus.BadInputError, match=r"in\.png.*60x40.*limit.*REFOCUS_MAX_PIXELS"):
        read_photo(photo_files["png"], max_pixels=1000)
    monkeypatch.setenv("REFOCUS_MAX_PIXELS", "2000")
    r = _render(photo_files["png"], tmp_path / "o.jpg", photo_files["depth"])
    assert r.exit_code == 2 and "in.png" in r.stderr and "limit" in r.stderr and "Traceback" not in r.output
    monkeypatch.setenv("REFOCUS_MAX_PIXELS", "2400")
    assert read_photo(photo_files["png"]).linear.shape == (40, 60, 3)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    """A PNG header claiming 100000 x 100000 pixels is refused from its header alone."""
    import struct
    import zlib
    def chunk(k, b):
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(refocus.BadInputError, match="bomb.png.*100000x100000"):
        read_photo(bomb)


def test_cli_photo_info(tmp_path):
    src = DATA / "exif" / "Nikon_D70.jpg"
    if not src.is_file():
        pytest.skip("shared sample not found")
    r = CliRunner().invoke(main, ["photo-info", str(src)])
    assert r.exit_code == 0, r.output
    assert "NIKON D70" in r.output and "100 mm (150 mm in 35 mm terms" in r.output and "f/9" in r.output
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    r = CliRunner().invoke(main, ["photo-info", str(bad)])
    assert r.exit_code == 2 and r.stderr.startswith("refocus: error: ") and "notes.jpg" in r.stderr
    assert "raw" not in r.stderr.split("supported")[0]          # not misreported as a damaged raw
