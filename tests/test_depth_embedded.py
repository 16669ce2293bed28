"""Depth stored inside photos: real samples against independent decodes, synthetic files
with known values (GDepth, Dynamic Depth, Apple MPF), damaged metadata, plain photos."""
from __future__ import annotations

import base64
import hashlib
import io
import random
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refocus.depth.embedded import read_embedded_depth
from refocus.errors import BadInputError, UnsupportedFormatError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
EMB = DATA / "embedded_depth"


def sample(name):
    p = EMB / name
    if not p.exists():
        pytest.skip(f"sample {p} not present")
    return p


def corr(a, b):
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def shrink(d, w, h):
    import cv2
    return cv2.resize(d.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


# -- independent helpers (written for the tests; no refocus code) -------------------------

def naive_xmp_text(path) -> str:
    """All XMP (standard + extended payloads concatenated in file order) as text."""
    b = Path(path).read_bytes()
    out, i = [], 2
    while i + 4 < len(b) and b[i] == 0xFF and b[i + 1] not in (0xDA, 0xD9):
        n = struct.unpack(">H", b[i + 2:i + 4])[0]
        p = b[i + 4:i + 2 + n]
        if p.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
            out.append(p[29:])
        elif p.startswith(b"http://ns.adobe.com/xmp/extension/\x00"):
            out.append(p[35 + 40:])
        i += 2 + n
    return b"".join(out).decode("utf-8", "replace")


def naive_b64_field(text, name):
    m = re.search(name + r'(?:="|>)([^"<]+)', text)
    assert m, name
    return base64.b64decode(m.group(1).replace("&#xA;", "").replace("\n", "").replace(" ", ""))


def jpeg_bytes(rgb):
    bio = io.BytesIO()
    Image.fromarray(rgb).save(bio, "JPEG", quality=95)
    return bio.getvalue()


def png16(a):
    import cv2
    ok, buf = cv2.imencode(".png", a.astype(np.uint16))
    assert ok
    return buf.tobytes()


def seg(marker, payload):
    assert len(payload) + 2 <= 0xFFFF
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def insert_after_soi(jpeg, *segments):
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


RDF_OPEN = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">')
RDF_CLOSE = "</rdf:RDF></x:xmpmeta>"


def xmp_std(attrs: dict, ns: dict, body: str = "") -> bytes:
    decl = " ".join(f'xmlns:{k}="{v}"' for k, v in ns.items())
    at = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return (RDF_OPEN + f'<rdf:Description rdf:about="" {decl} {at}>{body}</rdf:Description>' + RDF_CLOSE).encode()


GDEPTH_NS = {"GDepth": "http://ns.google.com/photos/1.0/depthmap/", "GImage": "http://ns.google.com/photos/1.0/image/",
             "xmpNote": "http://ns.adobe.com/xmp/note/", "GFocus": "http://ns.google.com/photos/1.0/focus/"}


def gdepth_file(path, *, dn16, fmt, near, far, rgb, chunk=700, shuffle=True, exif=None,
                depth_data=None, original=None, drop_chunk=False, focal=None):
    """A JPEG carrying GDepth in standard + extended XMP, the extended part split into chunks."""
    data = depth_data if depth_data is not None else base64.b64encode(png16(dn16)).decode()
    ext_attrs = {"GDepth:Data": data}
    if original is not None:
        ext_attrs["GImage:Data"] = base64.b64encode(original).decode()
    ext = xmp_std(ext_attrs, {"GDepth": GDEPTH_NS["GDepth"], "GImage": GDEPTH_NS["GImage"]})
    guid = hashlib.md5(ext).hexdigest().upper()
    attrs = {"GDepth:Format": fmt, "GDepth:Near": repr(near), "GDepth:Far": repr(far), "GDepth:Mime": "image/png",
             "xmpNote:HasExtendedXMP": guid}
    if original is not None:
        attrs["GImage:Mime"] = "image/jpeg"
    if focal is not None:
        attrs["GFocus:FocalDistance"] = repr(focal)
    segs = [seg(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp_std(attrs, GDEPTH_NS))]
    chunks = []
    for off in range(0, len(ext), chunk):
        chunks.append(seg(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + guid.encode()
                          + struct.pack(">II", len(ext), off) + ext[off:off + chunk]))
    assert len(chunks) >= 3
    if shuffle:
        random.Random(7).shuffle(chunks)
    if drop_chunk:
        chunks = chunks[:-1]
    if exif is not None:
        segs.insert(0, seg(0xE1, exif))
    Path(path).write_bytes(insert_after_soi(jpeg_bytes(rgb), *segs, *chunks))
    return path


@pytest.fixture
def dn_map():
    """16-bit normalised depth: a quarter at dn = 0, a quarter at dn = 1, a ramp between."""
    h, w = 48, 64
    dn = np.zeros((h, w))
    dn[:, 48:] = 1.0
    dn[:, 16:48] = np.linspace(0.0, 1.0, 32)[None, :] * np.linspace(0.2, 1.0, h)[:, None]
    return np.round(dn * 65535).astype(np.uint16)


@pytest.fixture
def rgb48(rng):
    return (rng.random((48, 64, 3)) * 255).astype(np.uint8)


# -- synthetic GDepth: exact values -------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["RangeLinear", "RangeInverse"])
def test_gdepth_exact_values_from_chunked_extended_xmp(tmp_path, dn_map, rgb48, fmt):
    near, far = 0.5, 7.0
    p = gdepth_file(tmp_path / "g.jpg", dn16=dn_map, fmt=fmt, near=near, far=far, rgb=rgb48, chunk=600)
    emb = read_embedded_depth(p)
    assert emb is not None and emb.kind.startswith(f"GDepth {fmt} (XMP)")
    assert (emb.near, emb.far) == (near, far)
    dn = dn_map / 65535.0
    # the spec's decoding, written out independently
    z = near + dn * (far - near) if fmt == "RangeLinear" else far * near / (far - dn * (far - near))
    expected = (1 / z - 1 / far) / (1 / near - 1 / far)      # dn = 0 -> near -> 1, dn = 1 -> far -> 0
    assert emb.disparity.shape == (48, 64) and emb.disparity.dtype == np.float32
    np.testing.assert_allclose(emb.disparity, expected, atol=2e-6)
    assert emb.disparity[:, :16].min() == 1.0 and emb.disparity[:, 48:].max() == 0.0
    assert emb.original is None and emb.original_bytes is None


def test_gdepth_range_inverse_is_linear_in_dn(tmp_path, dn_map, rgb48):
    p = gdepth_file(tmp_path / "g.jpg", dn16=dn_map, fmt="RangeInverse", near=1.0, far=100.0, rgb=rgb48)
    emb = read_embedded_depth(p)
    np.testing.assert_allclose(emb.disparity, 1.0 - dn_map / 65535.0, atol=2e-6)


def test_gdepth_original_and_focus(tmp_path, dn_map, rgb48, rng):
    orig_rgb = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    orig = jpeg_bytes(orig_rgb)
    p = gdepth_file(tmp_path / "g.jpg", dn16=dn_map, fmt="RangeInverse", near=1.0, far=5.0, rgb=rgb48,
                    original=orig, focal=2.0)
    emb = read_embedded_depth(p)
    assert emb.original_bytes == orig
    from refocus.color import srgb_to_linear
    ref = srgb_to_linear(np.asarray(Image.open(io.BytesIO(orig)).convert("RGB")) / 255.0)
    assert emb.original.shape == (48, 64, 3) and emb.original.dtype == np.float32
    assert np.abs(emb.original - ref).max() < 0.02              # two JPEG decoders agree
    # focal plane at 2 m of [1 m, 5 m]: (1/2 - 1/5) / (1/1 - 1/5)
    assert emb.focus_disparity == pytest.approx((0.5 - 0.2) / 0.8, abs=1e-6)


def test_gdepth_follows_exif_orientation(tmp_path, dn_map, rgb48):
    ex = Image.Exif()
    ex[0x0112] = 6                                           # stored pixels are shown turned 90 deg CW
    p = gdepth_file(tmp_path / "g.jpg", dn16=dn_map, fmt="RangeLinear", near=1.0, far=3.0, rgb=rgb48,
                    exif=ex.tobytes())
    emb = read_embedded_depth(p)
    from refocus.imageio import read_photo
    assert emb.disparity.shape == read_photo(p).linear.shape[:2] == (64, 48)
    # stored left columns (near, d = 1) end up at the top after a clockwise turn
    assert emb.disparity[:16].min() == 1.0 and emb.disparity[48:].max() == 0.0
    stored = read_embedded_depth(gdepth_file(tmp_path / "h.jpg", dn16=dn_map, fmt="RangeLinear", near=1.0,
                                             far=3.0, rgb=rgb48)).disparity
    np.testing.assert_array_equal(emb.disparity, np.rot90(stored, k=-1))


def test_gdepth_stretched_to_photo_size(tmp_path, dn_map, rng):
    rgb = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    p = gdepth_file(tmp_path / "g.jpg", dn16=dn_map, fmt="RangeLinear", near=1.0, far=3.0, rgb=rgb)
    emb = read_embedded_depth(p)
    assert emb.disparity.shape == (96, 128) and emb.map_size == (64, 48)
    assert emb.disparity[:, :30].min() == pytest.approx(1.0) and emb.disparity[:, 98:].max() == pytest.approx(0.0)


# -- damaged metadata ------------------------------------------------------------------------

def test_bad_base64_is_bad_input(tmp_path, dn_map, rgb48):
    good = base64.b64encode(png16(dn_map)).decode()
    p = gdepth_file(tmp_path / "bad.jpg", dn16=dn_map, fmt="RangeLinear", near=1.0, far=3.0, rgb=rgb48,
                    depth_data=good[:300] + "*%!" + good[300:])
    with pytest.raises(BadInputError, match=r"bad\.jpg.*GDepth:Data.*base64"):
        read_embedded_depth(p)


def test_depth_data_not_an_image_is_bad_input(tmp_path, dn_map, rgb48):
    p = gdepth_file(tmp_path / "bad.jpg", dn16=dn_map, fmt="RangeLinear", near=1.0, far=3.0, rgb=rgb48,
                    depth_data=base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 4000).decode())
    with pytest.raises(BadInputError, match=r"bad\.jpg.*cannot be decoded"):
        read_embedded_depth(p)


def test_missing_extended_chunk_is_bad_input(tmp_path, dn_map, rgb48):
    p = gdepth_file(tmp_path / "cut.jpg", dn16=dn_map, fmt="RangeLinear", near=1.0, far=3.0, rgb=rgb48,
                    shuffle=False, drop_chunk=True)
    with pytest.raises(BadInputError, match=r"cut\.jpg.*extended XMP.*incomplete"):
        read_embedded_depth(p)


def test_invalid_range_is_bad_input(tmp_path, dn_map, rgb48):
    p = gdepth_file(tmp_path / "r.jpg", dn16=dn_map, fmt="RangeInverse", near=0.0, far=3.0, rgb=rgb48)
    with pytest.raises(BadInputError, match=r"r\.jpg.*Near=0.0.*Far=3.0"):
        read_embedded_depth(p)


def test_plain_files_have_no_depth(tmp_path, rgb48):
    p = tmp_path / "plain.jpg"
    p.write_bytes(jpeg_bytes(rgb48))
    assert read_embedded_depth(p) is None
    q = tmp_path / "plain.png"
    Image.fromarray(rgb48).save(q)
    assert read_embedded_depth(q) is None
    # XMP without depth (face regions), EXIF orientation: still no depth
    for name in ("exif/Curies_orientation6_faces.jpg", "exif/Canon_40D.jpg", "portraits/obama_official_portrait.jpg"):
        if (DATA / name).exists():
            assert read_embedded_depth(DATA / name) is None
    with pytest.raises(BadInputError, match="not found"):
        read_embedded_depth(tmp_path / "missing.jpg")


# -- synthetic Dynamic Depth: items appended after the primary --------------------------------

DD_NS = {"Device": "http://ns.google.com/photos/dd/1.0/device/",
         "Container": "http://ns.google.com/photos/dd/1.0/container/",
         "Item": "http://ns.google.com/photos/dd/1.0/item/",
         "Camera": "http://ns.google.com/photos/dd/1.0/camera/",
         "DepthMap": "http://ns.google.com/photos/dd/1.0/depthmap/",
         "Image": "http://ns.google.com/photos/dd/1.0/image/"}


def dd_file(path, rgb, depth_png, original, near, far, padding=0):
    items = [("image/jpeg", 0, "primary_image"), ("image/png", len(depth_png), "android/depthmap"),
             ("image/jpeg", len(original), "android/original_image")]
    li = "".join(f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="{m}" Item:Length="{n}" '
                 f'Item:Padding="{padding if k else 0}" Item:DataURI="{u}"/></rdf:li>'
                 for k, (m, n, u) in enumerate(items))
    body = (f"<Device:Container><Container:Directory><rdf:Seq>{li}</rdf:Seq></Container:Directory></Device:Container>"
            '<Device:Cameras><rdf:Seq><rdf:li rdf:parseType="Resource"><Device:Camera rdf:parseType="Resource">'
            f'<Camera:DepthMap DepthMap:Format="RangeInverse" DepthMap:Near="{near}" DepthMap:Far="{far}" '
            'DepthMap:Units="Meters" DepthMap:DepthURI="android/depthmap" DepthMap:MeasureType="OpticalAxis"/>'
            '<Camera:Image Image:ItemSemantic="Original" Image:ItemURI="android/original_image"/>'
            "</Device:Camera></rdf:li></rdf:Seq></Device:Cameras>")
    xmp = xmp_std({}, DD_NS, body)
    primary = insert_after_soi(jpeg_bytes(rgb), seg(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp))
    pad = b"\x00" * padding
    Path(path).write_bytes(primary + depth_png + pad + original + pad)
    return path


def test_dynamic_depth_appended_items(tmp_path, dn_map, rgb48, rng):
    orig = jpeg_bytes((rng.random((48, 64, 3)) * 255).astype(np.uint8))
    for padding in (0, 5):
        p = dd_file(tmp_path / f"dd{padding}.jpg", rgb48, png16(dn_map), orig, 0.3, 2.0, padding=padding)
        emb = read_embedded_depth(p)
        assert emb.kind.startswith("Dynamic Depth RangeInverse"), emb.kind
        np.testing.assert_allclose(emb.disparity, 1.0 - dn_map / 65535.0, atol=2e-6)
        assert emb.original_bytes == orig and emb.original.shape == (48, 64, 3)
        assert (emb.near, emb.far, emb.units) == (0.3, 2.0, "Meters")


def test_dynamic_depth_item_beyond_file_is_bad_input(tmp_path, dn_map, rgb48, rng):
    orig = jpeg_bytes(rgb48)
    p = dd_file(tmp_path / "dd.jpg", rgb48, png16(dn_map), orig, 0.3, 2.0)
    b = p.read_bytes()
    p.write_bytes(b[:len(b) - len(orig) - 100])             # cut into the depth item
    with pytest.raises(BadInputError, match=r"dd\.jpg"):
        read_embedded_depth(p)


# -- synthetic Apple MPF (depth in metres), written with an independent MPF writer ------------

def mpf_file(path, rgb, aux_jpeg):
    """Primary JPEG with an MPF APP2 index whose second entry is `aux_jpeg` appended after it."""
    jpeg = jpeg_bytes(rgb)
    # MPF: 'MPF\0' + big-endian TIFF header + IFD (3 entries) + 2 MP entries
    n_entries = 3
    ifd_size = 2 + 12 * n_entries + 4
    entries_at = 8 + ifd_size
    payload_len = 4 + entries_at + 32
    tiff_at = 2 + 4 + 4                                       # SOI, marker+length, 'MPF\0'
    primary_len = len(jpeg) + 4 + payload_len
    ifd = struct.pack(">H", n_entries)
    ifd += struct.pack(">HHI4s", 0xB000, 7, 4, b"0100")
    ifd += struct.pack(">HHII", 0xB001, 4, 1, 2)
    ifd += struct.pack(">HHII", 0xB002, 7, 32, entries_at) + struct.pack(">I", 0)
    ent = struct.pack(">IIIHH", 0x030000, primary_len, 0, 0, 0)
    ent += struct.pack(">IIIHH", 0, len(aux_jpeg), primary_len - tiff_at, 0, 0)
    payload = b"MPF\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + ent
    assert len(payload) == payload_len
    primary = insert_after_soi(jpeg, seg(0xE2, payload))
    assert len(primary) == primary_len
    Path(path).write_bytes(primary + aux_jpeg)
    return path


def apple_aux(grey, kind, fmin, fmax):
    body = (f"<apdi:AuxiliaryImageType>{kind}</apdi:AuxiliaryImageType><apdi:FloatMinValue>{fmin}</apdi:FloatMinValue>"
            f"<apdi:FloatMaxValue>{fmax}</apdi:FloatMaxValue><apdi:IntMinValue>0</apdi:IntMinValue>"
            "<apdi:IntMaxValue>255</apdi:IntMaxValue>")
    xmp = xmp_std({}, {"apdi": "http://ns.apple.com/pixeldatainfo/1.0/",
                       "depthData": "http://ns.apple.com/depthData/1.0/"}, body)
    bio = io.BytesIO()
    Image.fromarray(grey).save(bio, "JPEG", quality=100)
    return insert_after_soi(bio.getvalue(), seg(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp))


def test_apple_mpf_depth_in_metres(tmp_path, rgb48):
    grey = np.zeros((24, 32), np.uint8)
    grey[:, 16:] = 255                                      # left half at 0.5 m, right half at 4 m
    p = mpf_file(tmp_path / "a.jpg", rgb48, apple_aux(grey, "depth", 0.5, 4.0))
    emb = read_embedded_depth(p)
    assert emb.kind.startswith("Apple MPF depth"), emb.kind
    assert emb.disparity.shape == (48, 64)
    assert emb.disparity[:, :28].min() > 0.98 and emb.disparity[:, 36:].max() < 0.02
    assert (emb.near, emb.far) == (0.5, 4.0)


def test_apple_mpf_disparity_vs_depth_direction(tmp_path, rgb48):
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))
    dis = read_embedded_depth(mpf_file(tmp_path / "dis.jpg", rgb48, apple_aux(grey, "disparity", 0.5, 2.0)))
    dep = read_embedded_depth(mpf_file(tmp_path / "dep.jpg", rgb48, apple_aux(grey, "depth", 0.5, 2.0)))
    assert dis.disparity[:, -1].mean() > 0.95 and dis.disparity[:, 0].mean() < 0.05   # bright = near
    assert dep.disparity[:, -1].mean() < 0.05 and dep.disparity[:, 0].mean() > 0.95   # bright = far


def test_mpo_without_depth_metadata_is_none(tmp_path, rgb48):
    aux = jpeg_bytes(rgb48[:24, :32].copy())                 # e.g. a stereo pair's second view
    assert read_embedded_depth(mpf_file(tmp_path / "s.jpg", rgb48, aux)) is None


# -- real samples ------------------------------------------------------------------------------

def test_sample_gcam_lens_blur(tmp_path):
    p = sample("gcam_lensblur_gdepth.jpg")
    emb = read_embedded_depth(p)
    assert emb.kind.startswith("GDepth RangeInverse (XMP)")
    from refocus.imageio import read_photo
    photo = read_photo(p)
    assert emb.disparity.shape == photo.linear.shape[:2] == (1024, 576)
    # independent decode of the depth PNG: RangeInverse disparity falls linearly with dn
    dn = np.asarray(Image.open(io.BytesIO(naive_b64_field(naive_xmp_text(p), "GDepth:Data"))).convert("L"),
                    np.float64) / 255
    assert dn.shape == emb.disparity.shape
    inner = (emb.disparity > 0.01) & (emb.disparity < 0.99)
    assert corr(emb.disparity[inner], dn[inner]) < -0.999
    order = np.argsort(dn.ravel(), kind="stable")
    assert np.all(np.diff(emb.disparity.ravel()[order]) <= 1e-5)       # monotone non-increasing in dn
    # the plant in the middle is nearer than the wall at the top
    H, W = emb.disparity.shape
    assert emb.disparity[H // 3:H // 2, W // 4:3 * W // 4].mean() > emb.disparity[:H // 8].mean() + 0.4
    # the unblurred original: same frame, sharper than the lens-blurred primary
    assert emb.original.shape == photo.linear.shape
    assert emb.original_bytes[:3] == b"\xff\xd8\xff"

    def sharp(img):
        g = img.mean(axis=2)
        return float(np.abs(np.diff(g[:H // 8], axis=1)).mean())   # the blurred wall at the top
    assert sharp(emb.original) > 1.3 * sharp(photo.linear)
    assert 0 <= emb.focus_disparity <= 1


def test_sample_xdm():
    p = sample("xdm_realsense.jpg")
    emb = read_embedded_depth(p)
    assert emb.kind.startswith("XDM RangeLinear")
    assert emb.disparity.shape == (2254, 2965)
    z = np.asarray(Image.open(io.BytesIO(naive_b64_field(naive_xmp_text(p), "Depthmap:Data"))), np.float64)
    assert z.shape == (352, 472) and emb.map_size == (472, 352)
    small = shrink(emb.disparity, 472, 352)
    from scipy.stats import spearmanr
    assert spearmanr(small.ravel(), (1 / z).ravel()).statistic > 0.98
    H, W = emb.disparity.shape
    # the bar stools on the right are near, the far end of the room on the left is far
    assert emb.disparity[H // 3:2 * H // 3, 5 * W // 6:].mean() > emb.disparity[H // 3:2 * H // 3, :W // 6].mean() + 0.5


def test_sample_iphone_portrait_jpeg():
    p = sample("iphone_portrait_depth.jpg")
    emb = read_embedded_depth(p)
    assert emb.kind.startswith("Apple MPF disparity")
    assert emb.disparity.shape == (4032, 3024)
    im = Image.open(p)
    im.seek(1)                                                # Pillow's own MPO reader: the depth image
    ref = np.asarray(im.convert("L"), np.float64)
    assert ref.shape == (768, 576)
    small = shrink(emb.disparity, 576, 768)
    assert corr(small, ref) > 0.995
    assert corr(small, ref[::-1]) < 0.5                       # and not upside down
    H, W = emb.disparity.shape
    assert emb.disparity[H // 2:2 * H // 3, 2 * W // 5:3 * W // 5].mean() > 0.7   # the vase
    assert emb.disparity[:H // 6, W // 3:].mean() < 0.2                           # the wall behind


def test_sample_iphone_heic_against_reference_png():
    pytest.importorskip("pillow_heif")
    p = sample("iphone_portrait_depth.heic")
    ref_p = sample("iphone_portrait_depth.heic.depth.png")
    emb = read_embedded_depth(p)
    assert emb.kind.startswith("Apple HEIC disparity")
    assert emb.disparity.shape == (3024, 4032)
    ref = np.asarray(Image.open(ref_p), np.float64)
    assert ref.shape == (576, 768)
    small = shrink(emb.disparity, 768, 576)
    assert corr(small, ref) > 0.995
    assert corr(small, ref[::-1, ::-1]) < 0.5


def test_heic_without_pillow_heif_says_what_to_install(monkeypatch):
    p = sample("iphone_portrait_depth.heic")
    monkeypatch.setitem(sys.modules, "pillow_heif", None)     # import pillow_heif -> ImportError
    with pytest.raises(UnsupportedFormatError, match=r"refocus\[heic\]") as ei:
        read_embedded_depth(p)
    assert str(p) in str(ei.value)
    assert isinstance(ei.value, OSError)
