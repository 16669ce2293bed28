"""The pipeline (refocus.pipeline): settings in, a refocused image with its maps and notes out."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refocus import params, presets
from refocus.errors import BadInputError
from refocus.pipeline import STAGES, refocus_file, refocus_image

from conftest import reference_convolution

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def scene(rng):
    img = rng.uniform(0.05, 0.6, (48, 64, 3)).astype(np.float32)
    d = np.full((48, 64), 0.2, np.float32)
    d[:, :32] = 0.8
    return img, d


def test_given_disparity_focus_and_blur(scene):
    img, d = scene
    stages = []
    res = refocus_image(img, {"focus": "disparity", "focus_disparity": 0.8, "blur": 10, "highlight_gain": 1},
                        disparity=d, device="cpu", progress=lambda s, f: stages.append((s, f)))
    assert res.K == 10 and res.focus.disparity == 0.8 and res.depth_source == "given"
    assert np.allclose(res.coc, 10 * (d - 0.8))
    assert res.linear.shape == img.shape and res.linear.dtype == np.float32
    assert [s for s, _ in stages if _ == 0.0] == list(STAGES) and stages[-1] == ("finish", 1.0)
    # the far half is blurred by a disc of radius 6 (interior, away from the depth edge)
    from refocus import aperture
    ref = reference_convolution(img, aperture.kernel(6.0))
    assert np.abs(res.linear[10:38, 44:56] - ref[10:38, 44:56]).max() < 0.02
    assert np.allclose(res.linear[:, :20], img[:, :20], atol=1e-4)
    assert res.notes[0] == "depth: given" and res.notes[1].startswith("focus: disparity 0.8")
    assert res.notes[2] == "blur: K = 10 px (given)"
    rec = json.loads(json.dumps(res.record()))
    assert rec["blur"] == 10 and rec["focus_disparity"] == 0.8 and rec["settings"]["focus"] == "disparity"
    assert set(rec["timings"]) == set(STAGES)
    bm = res.blur_mask
    assert bm.max() == pytest.approx(1.0) and bm[:, :32].max() == 0


def test_settings_object_and_defaults(scene):
    img, d = scene
    s = presets.get("miniature").resolve({"band_center": 0.5})
    res = refocus_image(img, s, disparity=d, device="cpu")
    assert res.settings is s and res.focus.band == (0.5, s.band_width)
    assert any(n == "finish: saturation x1.3" for n in res.notes)
    assert res.coc[24].__abs__().max() == 0 and abs(res.coc[0]).min() > 0     # band sharp, top blurred
    res = refocus_image(img, None, disparity=d, device="cpu")
    assert res.settings == params.resolve()


def test_notes_in_finishing_order(scene):
    img, d = scene
    res = refocus_image(img, {"focus": "disparity", "focus_disparity": 0.8, "texture": 0.5, "grain": 1,
                              "saturation": 1.2, "keep_border": True}, disparity=d, device="cpu")
    fin = [n.split(" ")[1] for n in res.notes if n.startswith("finish:")]
    assert fin == ["texture", "grain", "saturation"]
    assert "border: none found (keep_border)" in res.notes


@pytest.mark.parametrize("kw,words", [
    (dict(disparity=np.zeros((10, 10))), "disparity: shape (10, 10) does not match"),
    (dict(disparity=np.full((48, 64), np.nan)), "NaN"),
    (dict(subject_mask=np.ones((3, 3))), "subject mask: shape"),
])
def test_bad_inputs(scene, kw, words):
    img, d = scene
    kw.setdefault("disparity", d)
    with pytest.raises(BadInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        refocus_image(img, {}, device="cpu", **kw)
    with pytest.raises(BadInputError, match="expected"):
        refocus_image(np.zeros((2, 2, 2, 2)), {}, disparity=d, device="cpu")
    with pytest.raises(BadInputError, match="unknown parameter"):
        refocus_image(img, {"blurr": 3}, disparity=d, device="cpu")


def test_subject_mask_kept_sharp_and_focused(scene):
    img, d = scene
    m = np.zeros((48, 64), np.float32)
    m[10:30, 40:60] = 1                               # a subject in the far half
    res = refocus_image(img, {"focus": "subject", "blur": 12, "highlight_gain": 1}, disparity=d,
                        subject_mask=m, device="cpu")
    assert res.focus.disparity == pytest.approx(0.2) and np.all(res.coc[m == 1] == 0)
    assert np.abs(res.coc[:, :32]).min() == pytest.approx(7.2)


def test_refocus_file_with_a_preset_on_a_real_portrait():
    p = DATA / "portraits" / "astronaut.png"
    if not p.exists():
        pytest.skip("sample not available")
    s = presets.get("portrait").resolve({"aperture": "f/2"})
    res, photo = refocus_file(p, s, device="cpu")
    assert res.linear.shape == photo.linear.shape
    assert res.depth_source.startswith("fallback")
    assert res.focus.how.startswith("eyes at")
    assert any("needs the focal length and sensor size from EXIF" in n for n in res.notes)
    x, y, w, h = res.focus.faces[0]
    assert np.abs(res.coc[y:y + h, x:x + w]).mean() < 2.0               # the face is sharp
    assert np.abs(res.coc[:40, :40]).mean() > 4.0                       # the background is not


def test_xmp_faces_reach_focus_and_the_offline_depth():
    p = DATA / "historic" / "Curies_lab_c1904.jpg"
    if not p.exists():
        pytest.skip("sample not available")
    res, _ = refocus_file(p, presets.get("group").resolve({"depth": "fallback"}), device="cpu")
    assert "faces: 2 from the photo's XMP face regions" in res.notes
    assert "faces from the photo's metadata" in res.depth_source
    # Pierre Curie (profile, missed by the face detector) is part of the subject in the depth map
    H, W = res.disparity.shape
    pierre = res.disparity[int(0.2 * H):int(0.3 * H), int(0.66 * W):int(0.72 * W)]
    assert np.median(pierre) > 0.8
    # and the group look keeps both faces sharp
    assert res.focus.how.startswith("2 faces")
    for x, y, w, h in res.focus.faces:
        assert res.coc[y + h // 2, x + w // 2] == 0


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_grey_and_single_channel_images_through_every_step(channels, rng):
    g = (rng.random((60, 80)) * 0.5 + 0.2).astype(np.float32)
    img = g if channels is None else np.repeat(g[..., None], channels, axis=2)
    d = np.full((60, 80), 0.2, np.float32)
    d[:, :40] = 0.9
    res = refocus_image(img, {"focus": "disparity", "focus_disparity": 0.9, "grain": 1, "texture": 0.5,
                              "keep_border": True, "saturation": 1.2}, disparity=d, device="cpu")
    assert res.linear.shape == img.shape and res.linear.dtype == np.float32
    assert len([n for n in res.notes if n.startswith("finish:")]) == 3
    assert np.isfinite(res.linear).all()
    if channels == 3:
        assert np.array_equal(res.linear[..., 0], res.linear[..., 2])     # grey stays grey


def test_only_the_offline_default_map_skips_the_depth_edge_clean_up(scene, monkeypatch, tmp_path):
    """Given and estimated maps get their depth edges cleaned up; the offline default's soft
    edges are mattes made on purpose and are rendered as they are (pipeline and render_file
    follow the same rule, DepthResult.clean_edges)."""
    import cv2
    from refocus.depth import DepthResult, edges
    from refocus.render import render_file
    assert not DepthResult(np.zeros((2, 2), np.float32), "fallback").clean_edges
    assert all(DepthResult(np.zeros((2, 2), np.float32), s).clean_edges for s in ("embedded", "model", "file"))
    monkeypatch.setenv("REFOCUS_HOME", str(tmp_path / "home"))     # no depth model installed: auto = fallback
    calls = []
    real = edges.clean_depth_edges
    monkeypatch.setattr(edges, "clean_depth_edges", lambda d, img=None: calls.append(d.shape) or real(d, img))
    img, d = scene
    s = {"focus": "disparity", "focus_disparity": 0.8, "blur": 10}
    refocus_image(img, s, disparity=d, device="cpu")
    assert len(calls) == 1
    res = refocus_image(img, dict(s, depth="fallback"), device="cpu")
    assert res.depth_source.startswith("fallback") and len(calls) == 1
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), (img[..., ::-1] * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), (d * 65535).astype(np.uint16))
    render_file(photo, tmp_path / "a.png", depth=tmp_path / "d.png", focus_disparity=0.8, K=10.0)
    assert len(calls) == 2
    info = render_file(photo, tmp_path / "b.png", depth="auto", focus_disparity=0.8, K=10.0)
    assert info.depth_source.startswith("fallback") and len(calls) == 2
