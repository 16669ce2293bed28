"""refocus.batch.discover: which files are photos (by content), how outputs are named."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refocus.batch import discover
from refocus.errors import BadInputError


def _jpg(path, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path, quality=90)
    return path


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path, format="PNG")
    return path


def _names(sources, outdir):
    return {s.rel.as_posix(): {f: p.relative_to(outdir).as_posix() for f, p in s.outputs.items()}
            for s in sources if s.is_photo}


def test_photos_found_by_content_not_extension(tmp_path):
    _jpg(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "jpeg_named.dat").write_bytes((tmp_path / "in" / "a.jpg").read_bytes())
    _png(tmp_path / "in" / "png_as.txt")
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    (tmp_path / "in" / "fake.jpg").write_text("text in a .jpg")          # a photo by name: reading will say why not
    (tmp_path / "in" / ".hidden.jpg").write_bytes((tmp_path / "in" / "a.jpg").read_bytes())
    src = discover.find_sources([tmp_path / "in"])
    by = {s.rel.as_posix(): s for s in src}
    assert set(by) == {"a.jpg", "jpeg_named.dat", "png_as.txt", "notes.txt", "fake.jpg"}
    assert by["jpeg_named.dat"].is_photo and by["jpeg_named.dat"].kind == "jpeg"
    assert by["png_as.txt"].is_photo and by["png_as.txt"].kind == "png"
    assert not by["notes.txt"].is_photo
    assert by["fake.jpg"].is_photo and by["fake.jpg"].kind == "unknown"


def test_recursive_mirrors_folders_and_excludes_outdir(tmp_path):
    root = tmp_path / "in"
    _jpg(root / "a.jpg")
    _jpg(root / "trip" / "day1" / "b.jpg")
    _jpg(root / "out" / "a.jpg")                         # outputs of an earlier run inside the input tree
    flat = discover.find_sources([root], exclude=root / "out")
    assert [s.rel.as_posix() for s in flat] == ["a.jpg"]
    deep = discover.find_sources([root], recursive=True, exclude=root / "out")
    assert [s.rel.as_posix() for s in deep] == ["a.jpg", "trip/day1/b.jpg"]
    discover.assign_outputs(deep, root / "out", ("jpg", "depth"))
    assert _names(deep, root / "out") == {
        "a.jpg": {"jpg": "a.jpg", "depth": "a.depth.png"},
        "trip/day1/b.jpg": {"jpg": "trip/day1/b.jpg", "depth": "trip/day1/b.depth.png"}}


def test_name_collisions_keep_the_source_extension(tmp_path):
    root = tmp_path / "in"
    _jpg(root / "IMG_1.JPG")
    _png(root / "IMG_1.png")
    _jpg(root / "IMG_2.jpg")
    _jpg(root / "x.depth.jpg")          # its .png output would be the depth map of x.jpg
    _jpg(root / "x.jpg")
    out = tmp_path / "out"
    src = discover.find_sources([root])
    discover.assign_outputs(src, out, ("jpg", "png", "depth"))
    names = _names(src, out)
    assert names["IMG_1.JPG"]["jpg"] == "IMG_1.jpg.jpg"
    assert names["IMG_1.png"]["jpg"] == "IMG_1.png.jpg"
    assert names["IMG_2.jpg"] == {"jpg": "IMG_2.jpg", "png": "IMG_2.png", "depth": "IMG_2.depth.png"}
    assert names["x.depth.jpg"]["png"] != names["x.jpg"]["depth"]
    every = [p.lower() for n in names.values() for p in n.values()]
    assert len(every) == len(set(every))                  # no two outputs share a path (ignoring case)


def test_same_name_from_two_inputs_is_numbered(tmp_path):
    _jpg(tmp_path / "a" / "p.jpg")
    _jpg(tmp_path / "b" / "p.jpg")
    out = tmp_path / "out"
    src = discover.find_sources([tmp_path / "a", tmp_path / "b", tmp_path / "a" / "p.jpg"])
    assert len(src) == 2                                  # the file named twice is taken once
    discover.assign_outputs(src, out, ("jpg",))
    got = {s.path.parent.name: s.outputs["jpg"].name for s in src}
    assert got == {"a": "p.jpg", "b": "p-2.jpg"}


def test_output_never_is_an_input(tmp_path):
    root = tmp_path / "in"
    _jpg(root / "a.jpg")
    _jpg(root / "sub" / "a.jpg")
    # outdir = the parent folder of "sub": sub/a.jpg's output would be in/a.jpg, an input
    src = discover.find_sources([root / "sub", root / "a.jpg"])
    discover.assign_outputs(src, root, ("jpg",))
    inputs = {str(s.path) for s in src}
    outs = {str(p) for s in src for p in s.outputs.values()}
    assert not inputs & outs


def test_globs(tmp_path):
    _jpg(tmp_path / "in" / "2024" / "x" / "IMG_1.jpg")
    _jpg(tmp_path / "in" / "2024" / "y" / "IMG_2.jpg")
    (tmp_path / "in" / "2024" / "y" / "IMG_3.txt").write_text("no")
    src = discover.find_sources([str(tmp_path / "in" / "2024" / "*" / "IMG_*.jpg")])
    assert [s.rel.as_posix() for s in src] == ["x/IMG_1.jpg", "y/IMG_2.jpg"]
    with pytest.raises(BadInputError, match="matches no file"):
        discover.find_sources([str(tmp_path / "in" / "*.nef")])
    with pytest.raises(BadInputError, match="no such file or folder"):
        discover.find_sources([tmp_path / "missing"])


@pytest.mark.parametrize("value, expected", [("jpg", ("jpg",)), ("JPEG,tiff", ("jpg", "tif")),
                                             ("psd, ora ,depth,psd", ("psd", "ora", "depth")),
                                             (["jpg,png", "tif"], ("jpg", "png", "tif"))])
def test_parse_formats(value, expected):
    assert discover.parse_formats(value) == expected


def test_parse_formats_refuses_unknown():
    with pytest.raises(BadInputError, match=r"--format: unknown output format 'gif'.*jpg, tif, png, ora, psd, depth"):
        discover.parse_formats("jpg,gif")


def test_part_files_only_match_that_output(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    for n in (".a.jpg.k2j3.part", ".a.jpg.zz.part", ".ab.jpg.k.part", "a.jpg.part", ".a.jpg.k.tmp"):
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in discover.part_files(tmp_path / "a.jpg")] == [".a.jpg.k2j3.part", ".a.jpg.zz.part"]


def test_heic_is_found_by_content(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    im = Image.fromarray(np.full((16, 16, 3), 90, np.uint8))
    try:
        pillow_heif.from_pillow(im).save(tmp_path / "phone_photo.bin", quality=80)
    except Exception as e:                                 # a libheif build without an encoder
        pytest.skip(f"cannot write HEIC here: {e}")
    (src,) = discover.find_sources([tmp_path])
    assert src.is_photo and src.kind == "heif"


@pytest.mark.parametrize("cores, avail_gb, mp, todo, expected", [
    (8, 64, 12, 100, 8),          # cores limit
    (8, 6, 12, 100, 2),           # memory limit: 6 GB / 2.5 GB
    (8, 6, 24, 100, 1),           # 24 MP photos need twice the memory
    (8, 64, 12, 3, 3),            # no more workers than photos to do
    (2, 1, 12, 10, 1),            # never fewer than one
])
def test_default_jobs(monkeypatch, cores, avail_gb, mp, todo, expected):
    from refocus.batch import runner
    monkeypatch.setattr(runner.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(runner, "available_memory", lambda: int(avail_gb * 1e9))
    assert runner.default_jobs(todo, mp) == expected


def test_available_memory_is_plausible():
    from refocus.batch import runner
    m = runner.available_memory()
    if m is None:
        pytest.skip("no /proc/meminfo and no psutil")
    assert 50e6 < m < 1e14
