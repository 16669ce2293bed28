"""``refocus batch`` end to end on a folder of real photos (RAW, JPEG, TIFF, PNG, a truncated
JPEG, a text file, nested folders, a name collision).  Outputs are read back with
independent readers: Pillow, tifffile, psd-tools, zipfile (OpenRaster), exiftool."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from refocus.cli import main

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ALL = "jpg,tif,png,ora,psd,depth"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"sample data not found at {DATA}")


@pytest.fixture(scope="module", autouse=True)
def _notices_stay_per_test_module():
    """The core prints some notices once per process; these in-process runs must not use up
    the ones other test modules expect to see."""
    from refocus import runtime
    from refocus.depth import sources
    saved = [(m, set(m._notified)) for m in (runtime, sources)]
    yield
    for m, s in saved:
        m._notified.clear()
        m._notified.update(s)


def _small(src: Path, dst: Path, size: int, **kw):
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        exif = im.info.get("exif")
        im = im.convert("RGB")
        im.thumbnail((size, size))
        if exif and dst.suffix.lower() in (".jpg", ".jpeg"):
            kw["exif"] = exif
        im.save(dst, **kw)


def build_folder(root: Path, *, raw: bool = True) -> dict:
    """The mixed folder; returns {relative input path: expected displayed (w, h)} of the photos."""
    root.mkdir(parents=True)
    shutil.copy(DATA / "exif" / "Canon_40D.jpg", root / "IMG_1.jpg")              # real camera EXIF
    expected = {"IMG_1.jpg": (100, 68)}
    if raw:
        shutil.copy(DATA / "raw" / "Canon_EOS_Kiss_X4_colorchart.dng", root / "IMG_1.dng")   # same stem
        expected["IMG_1.dng"] = None                       # size as LibRaw develops it
    _small(DATA / "portraits" / "coffee.png", root / "portraits" / "coffee.png", 160)
    expected["portraits/coffee.png"] = (160, 107)
    _small(DATA / "historic" / "Grace_Hopper_1984_USNavy.jpg", root / "portraits" / "hopper.jpg", 160,
           quality=90)
    expected["portraits/hopper.jpg"] = (137, 160)
    (root / "historic").mkdir()
    shutil.copy(DATA / "historic" / "Dudley_Leavitt_Utah.tiff", root / "historic" / "dudley.tiff")  # LZW RGBA
    expected["historic/dudley.tiff"] = (196, 257)
    data = (DATA / "historic" / "Curies_lab_c1904.jpg").read_bytes()
    (root / "historic" / "broken.jpg").write_bytes(data[: len(data) // 3])       # truncated JPEG
    (root / "notes.txt").write_text("shot list: not a photo\n")
    return expected


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _mtimes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    inp, out = tmp / "in", tmp / "out"
    expected = build_folder(inp)
    before = _snapshot(inp)
    res = CliRunner().invoke(main, ["batch", str(inp), "-o", str(out), "--recursive", "--format", ALL,
                                    "--jobs", "1", "--preset", "portrait", "--report", str(tmp / "report.json"),
                                    "--verbose"])
    return {"tmp": tmp, "in": inp, "out": out, "res": res, "expected": expected, "before": before,
            "mtimes": _mtimes(out)}


def _outputs(base: Path) -> dict:
    return {"jpg": base.with_name(base.name + ".jpg"), "tif": base.with_name(base.name + ".tif"),
            "png": base.with_name(base.name + ".png"), "ora": base.with_name(base.name + ".ora"),
            "psd": base.with_name(base.name + ".psd"), "depth": base.with_name(base.name + ".depth.png")}


# name rule: IMG_1.jpg and IMG_1.dng collide -> both keep their extension
BASES = {"IMG_1.jpg": "IMG_1.jpg", "IMG_1.dng": "IMG_1.dng", "portraits/coffee.png": "portraits/coffee",
         "portraits/hopper.jpg": "portraits/hopper", "historic/dudley.tiff": "historic/dudley"}


def test_exit_code_and_summary(first_run):
    res = first_run["res"]
    assert res.exit_code == 1, res.output              # one photo failed
    assert "5 done, 0 skipped (already done), 1 failed, 1 not images (skipped)" in res.output
    assert "historic/broken.jpg" in res.output and "truncated JPEG" in res.output
    assert "Traceback" not in res.output
    # --verbose: each photo's decisions
    assert "depth: " in res.output and "blur: K = " in res.output
    assert re.search(r"focus: (face|eyes?) ", res.output), res.output


def test_every_good_photo_has_every_output(first_run):
    out = first_run["out"]
    for rel, base in BASES.items():
        paths = _outputs(out / base)
        for fmt, p in paths.items():
            assert p.is_file(), f"{rel}: missing {fmt} output {p}"
        with Image.open(paths["jpg"]) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            size = im.size
        if first_run["expected"][rel] is not None:
            assert size == first_run["expected"][rel], rel
        import tifffile
        t = tifffile.imread(paths["tif"])
        assert t.dtype == np.uint16 and t.shape[:2] == (size[1], size[0])
        with Image.open(paths["png"]) as im:
            assert im.format == "PNG" and im.size == size
        with Image.open(paths["depth"]) as im:
            assert im.mode in ("I;16", "I;16B", "I") and im.size == size
            d = np.asarray(im)
            assert d.max() > d.min()                     # a real map, not a constant
        with zipfile.ZipFile(paths["ora"]) as z:
            assert z.namelist()[0] == "mimetype" and z.read("mimetype") == b"image/openraster"
            stack = z.read("stack.xml").decode()
            for name in ("refocused", "original", "disparity", "blur (CoC)"):
                assert f'name="{name}"' in stack
        from psd_tools import PSDImage
        psd = PSDImage.open(paths["psd"])
        assert psd.size == size
        layers = list(psd)                                # bottom to top
        assert [layer.name for layer in layers] == ["blur (CoC)", "disparity", "original", "refocused"]
        assert [layer.visible for layer in layers] == [False, False, False, True]


def test_folders_mirrored_and_nothing_else_written(first_run):
    out = first_run["out"]
    expected = set()
    for base in BASES.values():
        expected |= {p.relative_to(out).as_posix() for p in _outputs(out / base).values()}
    assert set(_mtimes(out)) == expected                  # no stray files, no temporaries, no broken outputs
    assert _snapshot(first_run["in"]) == first_run["before"]   # inputs untouched, nothing written beside them


def test_exif_kept(first_run):
    jpg = first_run["out"] / "IMG_1.jpg.jpg"
    with Image.open(jpg) as im:
        exif = im.getexif()
    assert exif.get(0x0110) == "Canon EOS 40D"            # Model
    if shutil.which("exiftool"):
        r = subprocess.run(["exiftool", "-j", "-Model", "-FocalLength", "-XMP-refocus:all", str(jpg)],
                           capture_output=True, text=True, check=True)
        tags = json.loads(r.stdout)[0]
        assert tags["Model"] == "Canon EOS 40D"
        assert str(tags["FocalLength"]).startswith("135")
        assert tags.get("Preset") == "portrait"


def test_report_json(first_run):
    rep = json.loads((first_run["tmp"] / "report.json").read_text())
    assert rep["refocus_batch_report"] == 1
    assert rep["summary"]["done"] == 5 and rep["summary"]["failed"] == 1 and rep["summary"]["not_images"] == 1
    assert rep["preset"] == "portrait" and rep["formats"] == ALL.split(",")
    by = {f["rel"]: f for f in rep["files"]}
    assert set(by) == set(BASES) | {"historic/broken.jpg", "notes.txt"}
    for rel in BASES:
        f = by[rel]
        assert f["status"] == "done" and f["error"] is None
        assert sorted(f["written"]) == sorted(f["outputs"]) and len(f["outputs"]) == 6
        assert f["depth_source"] and f["focus"] and f["blur"] > 0
        assert f["settings"]["focus"] == "face" and f["preset"] == "portrait"
        assert f["timings"]["total"] > 0
    assert by["historic/broken.jpg"]["status"] == "failed"
    assert "broken.jpg" in by["historic/broken.jpg"]["error"]
    assert by["notes.txt"]["status"] == "not-image"


def test_second_run_redoes_nothing(first_run):
    res = CliRunner().invoke(main, ["batch", str(first_run["in"]), "-o", str(first_run["out"]), "-r",
                                    "--format", ALL, "--jobs", "1", "--preset", "portrait"])
    assert res.exit_code == 1                             # the broken file is tried again, and fails again
    assert "0 done, 5 skipped (already done), 1 failed" in res.output
    assert _mtimes(first_run["out"]) == first_run["mtimes"]


def test_dry_run_lists_missing_outputs_and_writes_nothing(first_run):
    out = first_run["out"]
    res = CliRunner().invoke(main, ["batch", str(first_run["in"]), "-o", str(out), "-r", "--format", "jpg,webp"])
    assert res.exit_code == 2 and "unknown output format 'webp'" in res.output
    fresh = first_run["tmp"] / "fresh"
    res = CliRunner().invoke(main, ["batch", str(first_run["in"]), "-o", str(fresh), "-r", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert not fresh.exists()
    assert "render   portraits/coffee.png -> portraits/coffee.jpg" in res.output
    assert "ignore   notes.txt (not an image)" in res.output
    assert "6 to do, 0 already done, 1 not images" in res.output
    # on the finished folder: only what is missing (a new format) is listed
    res = CliRunner().invoke(main, ["batch", str(first_run["in"]), "-o", str(out), "-r", "-n",
                                    "--format", "jpg,psd,depth"])
    assert "skip     portraits/coffee.png (outputs already there)" in res.output
    res = CliRunner().invoke(main, ["batch", str(first_run["in"] / "portraits"), "-o", str(out / "portraits"),
                                    "-n", "--format", "jpg"])
    assert "skip     hopper.jpg" in res.output
    assert _mtimes(out) == first_run["mtimes"]


# -- a tiny folder for the runs that render again -------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(DATA / "exif" / "Nikon_D70.jpg", inp / "a.jpg")
    _small(DATA / "portraits" / "coffee.png", inp / "b.png", 96)
    return tmp_path


def test_overwrite_redoes(tiny):
    out = tiny / "out"
    args = ["batch", str(tiny / "in"), "-o", str(out), "-j", "1", "--format", "jpg,depth"]
    assert CliRunner().invoke(main, args).exit_code == 0
    for p in out.iterdir():
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))     # an old time: any rewrite shows
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "0 done, 2 skipped" in res.output
    assert all(t == 1_000_000_000 for t in _mtimes(out).values())
    res = CliRunner().invoke(main, args + ["--overwrite"])
    assert res.exit_code == 0 and "2 done, 0 skipped" in res.output
    assert len(_mtimes(out)) == 4 and all(t > 1_000_000_000 for t in _mtimes(out).values())


def test_partly_done_photo_gets_only_its_missing_outputs(tiny):
    out = tiny / "out"
    args = ["batch", str(tiny / "in"), "-o", str(out), "-j", "1", "--format", "jpg,depth"]
    assert CliRunner().invoke(main, args).exit_code == 0
    (out / "a.depth.png").unlink()
    stale = out / ".a.depth.png.x8Hq2.part"                # a temporary left by a killed run
    stale.write_bytes(b"half a file")
    for p in out.iterdir():
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "1 done, 1 skipped" in res.output
    m = _mtimes(out)
    assert set(m) == {"a.jpg", "a.depth.png", "b.jpg", "b.depth.png"}   # temporary removed
    assert m["a.jpg"] == 1_000_000_000 and m["a.depth.png"] > 1_000_000_000


def test_flags_win_over_the_preset(tiny):
    out = tiny / "out"
    rep = tiny / "r.csv"
    res = CliRunner().invoke(main, ["batch", str(tiny / "in" / "a.jpg"), "-o", str(out), "-j", "1",
                                    "--preset", "portrait", "--blur", "5", "--shape", "polygon",
                                    "--focus", "point", "--focus-point", "0.5,0.5", "--report", str(rep)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(rep.open()))
    assert len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["preset"] == "portrait"
    settings = json.loads(rows[0]["settings"])
    assert settings["blur"] == 5.0 and settings["shape"] == "polygon" and settings["focus"] == "point"
    from refocus import presets
    assert settings["strength"] == presets.get("portrait").settings["strength"]   # not given: the preset's
    assert float(rows[0]["blur"]) == 5.0                  # the K actually used
    assert rows[0]["focus"].startswith("point")
    assert rows[0]["outputs"] == str(out / "a.jpg") and rows[0]["error"] == ""


def test_a_focus_point_alone_wins_over_the_portrait_presets_face_focus(tiny):
    """--focus-point without --focus under a preset that focuses on faces is not ignored."""
    rep = tiny / "r.json"
    res = CliRunner().invoke(main, ["batch", str(tiny / "in" / "a.jpg"), "-o", str(tiny / "out"), "-j", "1",
                                    "--preset", "portrait", "--focus-point", "0.25,0.5", "--report", str(rep)])
    assert res.exit_code == 0, res.output
    f = json.loads(rep.read_text())["files"][0]
    assert f["settings"]["focus"] == "point" and f["focus"].startswith("point")


def test_preset_file(tiny):
    pf = tiny / "mine.json"
    pf.write_text(json.dumps({"refocus_preset": 1, "name": "mine", "description": "test",
                              "settings": {"strength": 3.0, "saturation": 1.2, "focus": "disparity",
                                           "focus_disparity": 0.4}}))
    rep = tiny / "r.json"
    res = CliRunner().invoke(main, ["batch", str(tiny / "in" / "b.png"), "-o", str(tiny / "out"), "-j", "1",
                                    "--preset-file", str(pf), "--strength", "1", "--report", str(rep)])
    assert res.exit_code == 0, res.output
    f = json.loads(rep.read_text())["files"][0]
    assert f["preset"] == "mine" and f["settings"]["strength"] == 1.0 and f["settings"]["saturation"] == 1.2
    assert f["focus_disparity"] == pytest.approx(0.4)


@pytest.mark.parametrize("extra, message", [
    (["--preset", "nosuch"], "unknown preset 'nosuch'; available: "),
    (["--aperture", "f/0"], "--aperture"),
    (["--focus-disparity", "2"], "--focus-disparity: 2.0 is out of range"),
    (["--report", "r.txt"], "the report is .json or .csv"),
    (["--preset", "portrait", "--preset-file", "x.json"], "give one of the two"),
])
def test_bad_arguments_exit_2_and_write_nothing(tiny, extra, message):
    out = tiny / "out"
    res = CliRunner().invoke(main, ["batch", str(tiny / "in"), "-o", str(out)] + extra)
    assert res.exit_code == 2, res.output
    assert f"refocus: error: " in res.output and message in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_outdir_may_not_be_the_input_folder(tiny):
    res = CliRunner().invoke(main, ["batch", str(tiny / "in"), "-o", str(tiny / "in")])
    assert res.exit_code == 2 and "is the input folder" in res.output
    assert sorted(p.name for p in (tiny / "in").iterdir()) == ["a.jpg", "b.png"]


def test_outdir_inside_the_input_tree_is_not_read_back(tiny):
    inp = tiny / "in"
    args = ["batch", str(inp), "-o", str(inp / "refocused"), "-r", "-j", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "2 done" in res.output
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "0 done, 2 skipped" in res.output     # its own outputs are not inputs


def test_python_api_and_progress_events(tiny):
    import refocus
    events = []
    rep = refocus.batch_run([tiny / "in"], tiny / "out", preset="macro", formats=("jpg", "depth"), jobs=1,
                            overrides={"saturation": 1.1}, progress=events.append)
    assert rep.done == 2 and rep.failed == 0 and rep.exit_code == 0
    assert (tiny / "out" / "a.depth.png").is_file()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("file-end") == 2
    stages = {e["stage"] for e in events if e["event"] == "stage"}
    assert {"read", "depth", "focus", "render", "write"} <= stages
    assert all(f["settings"]["saturation"] == 1.1 for f in rep.files)


def test_reporter_plain_lines_and_bar(tiny):
    import io

    from refocus.batch.progress import Reporter
    from refocus.batch.runner import run
    log = io.StringIO()
    run([tiny / "in"], tiny / "out", jobs=1, progress=Reporter(stream=log))
    text = log.getvalue()
    assert "refocus batch: 2 photos, 2 to do, 0 already done; 1 job" in text
    assert "[1/2] a.jpg: done in " in text and "[2/2] b.png: done in " in text and "-> b.jpg" in text
    bar = io.StringIO()
    run([tiny / "in"], tiny / "out2", jobs=1, progress=Reporter(stream=bar, bar=True))
    text = bar.getvalue()
    assert "2/2" in text and "photo" in text and "[1/2]" not in text      # a bar, not log lines


def test_quiet_prints_nothing_on_success(tiny):
    res = CliRunner().invoke(main, ["batch", str(tiny / "in"), "-o", str(tiny / "out"), "-j", "1", "--quiet"])
    assert res.exit_code == 0 and res.output == ""
    assert sorted(p.name for p in (tiny / "out").iterdir()) == ["a.jpg", "b.jpg"]


def test_import_refocus_stays_light():
    import sys
    code = ("import sys, refocus; assert callable(refocus.__getattr__); "
            "print(sorted(m for m in ('refocus.batch.runner', 'refocus.batch', 'numpy', 'tqdm') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_real_processes_with_two_workers_over_the_mixed_folder(tmp_path):
    """The command as users run it (a real process, a pool of 2 workers) over RAW, JPEG, TIFF,
    PNG, a truncated JPEG, a text file and nested folders; then a second run."""
    import sys
    inp, out, rep = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    build_folder(inp)
    before = _snapshot(inp)
    cmd = [sys.executable, "-m", "refocus.cli", "batch", str(inp), "-o", str(out), "-r", "--jobs", "2",
           "--format", "jpg,depth", "--preset", "portrait", "--report", str(rep)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    said = p.stdout + p.stderr                               # summary on stdout, progress on stderr
    assert p.returncode == 1, said                           # the truncated JPEG failed
    assert "5 done, 0 skipped (already done), 1 failed, 1 not images (skipped)" in said
    assert "historic/broken.jpg" in said and "truncated JPEG" in said and "Traceback" not in said
    report = json.loads(rep.read_text())
    by = {f["rel"]: f for f in report["files"]}
    assert report["jobs"] == 2 and by["historic/broken.jpg"]["status"] == "failed"
    pids = {by[rel]["pid"] for rel in BASES}
    assert len(pids) == 2 and os.getpid() not in pids       # both workers rendered photos
    for rel, base in BASES.items():
        assert by[rel]["status"] == "done", by[rel]
        paths = _outputs(out / base)
        with Image.open(paths["jpg"]) as im:
            assert im.format == "JPEG"
            size = im.size
        with Image.open(paths["depth"]) as im:
            assert im.size == size
    written = set(_mtimes(out))
    assert written == {q.relative_to(out).as_posix() for base in BASES.values()
                       for k, q in _outputs(out / base).items() if k in ("jpg", "depth")}
    assert _snapshot(inp) == before
    mtimes = _mtimes(out)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    said = p.stdout + p.stderr
    assert p.returncode == 1 and "0 done, 5 skipped (already done), 1 failed" in said, said
    assert _mtimes(out) == mtimes
