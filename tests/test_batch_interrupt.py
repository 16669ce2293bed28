"""``refocus batch`` stopped mid-way (SIGINT = Ctrl-C, and SIGKILL) in a real subprocess: it
stops cleanly, leaves no temporary files and no worker behind, and the next run finishes the
job without redoing or duplicating anything."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
pytestmark = [pytest.mark.skipif(not DATA.is_dir(), reason=f"sample data not found at {DATA}"),
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

N = 6
SOURCES = ["portraits/coffee.png", "historic/Grace_Hopper_1984_USNavy.jpg", "portraits/rocket.jpg",
           "paintings/great_wave_hokusai.jpg"]


def _folder(root: Path) -> list[str]:
    root.mkdir(parents=True)
    names = []
    for i in range(N):
        with Image.open(DATA / SOURCES[i % len(SOURCES)]) as im:
            im = im.convert("RGB").rotate(7 * i)
            # the first two are small (a first output comes soon), the rest large enough that
            # the run is still going when the test acts on it, even on a fast machine
            im.thumbnail((160, 160) if i < 2 else (480, 480))
            name = f"p{i}.jpg"
            im.save(root / name, quality=90)
            names.append(name)
    return names


def _start(inp: Path, out: Path, jobs: int, mark: str, *extra) -> subprocess.Popen:
    env = dict(os.environ, REFOCUS_TEST_MARK=mark, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "refocus.cli", "batch", str(inp), "-o", str(out),
                             "--jobs", str(jobs), "--format", "jpg,depth", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal():
    """Ctrl-C and Ctrl-\\ at their defaults in the run, as a terminal starts it: a test run that
    was itself started in the background (``pytest &``) has them ignored, and a child would
    inherit that (a program must keep an ignored SIGINT ignored, so refocus does)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _wait_for_first_output(p: subprocess.Popen, out: Path, timeout: float = 90):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if out.is_dir() and any(out.glob("p*.depth.png")):
            assert p.poll() is None, "the run ended before the test could act on it"
            return
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    pytest.fail("no output appeared")


def _signal_masks(pid: int) -> str:
    """The SigBlk/SigIgn/SigCgt lines of /proc/PID/status (SIGINT is bit 1): says why a signal had no effect."""
    try:
        return " ".join(l for l in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if l.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError as e:
        return str(e)


def _marked_processes(mark: str) -> list[int]:
    """Processes (still alive) whose environment carries `mark`: the run and its workers."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            env = Path(f"/proc/{d}/environ").read_bytes()
            state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"REFOCUS_TEST_MARK={mark}".encode() in env and state != "Z":
            found.append(int(d))
    return found


def _outputs(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


def _expected(names) -> set:
    return {n[:-4] + ".jpg" for n in names} | {n[:-4] + ".depth.png" for n in names}


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path):
    names = _folder(tmp_path / "in")
    out, mark = tmp_path / "out", uuid.uuid4().hex
    p = _start(tmp_path / "in", out, 2, mark, "--report", str(tmp_path / "r.json"))
    _wait_for_first_output(p, out)
    masks = _signal_masks(p.pid)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, f"{stderr}\nrun's signal masks when SIGINT was sent: {masks}"
    assert "Traceback" not in stderr + stdout and "KeyboardInterrupt" not in stderr
    assert "interrupted" in stderr and "run again to resume" in stderr
    time.sleep(0.5)
    assert _marked_processes(mark) == []                 # workers stopped
    first = _outputs(out)
    assert not [n for n in first if n.startswith(".")]    # no temporary files
    assert first and set(first) < _expected(names)        # some photos done, not all
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["interrupted"] is True
    done = {Path(f["source"]).name for f in rep["files"] if f["status"] == "done"}
    assert {s for f in rep["files"] if f["status"] == "done" for s in map(lambda p: Path(p).name, f["written"])} \
        <= set(first)
    assert rep["summary"]["interrupted"] + rep["summary"]["pending"] == N - len(done)

    r = subprocess.run([sys.executable, "-m", "refocus.cli", "batch", str(tmp_path / "in"), "-o", str(out),
                        "--jobs", "1", "--format", "jpg,depth"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{N - len(done)} done" in r.stderr or f"{N - len(done)} done" in r.stdout
    second = _outputs(out)
    assert set(second) == _expected(names)                # everything, once, no temporaries
    for n in set(first):                                  # what was finished was not redone ...
        if Path(n).stem.split(".")[0] + ".jpg" in done:
            assert second[n] == first[n], n


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_killed_run_leaves_nothing_half_written(tmp_path):
    names = _folder(tmp_path / "in")
    out, mark = tmp_path / "out", uuid.uuid4().hex
    p = _start(tmp_path / "in", out, 1, mark)
    _wait_for_first_output(p, out)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    time.sleep(0.5)
    assert _marked_processes(mark) == []
    first = {n: t for n, t in _outputs(out).items() if not n.startswith(".")}
    assert first and set(first) < _expected(names)
    for n in first:                                       # what is there is complete
        with Image.open(out / n) as im:
            im.load()
    (out / f".p{N - 1}.jpg.k3Jd9x.part").write_bytes(b"\xff\xd8half")     # as a kill during a write leaves it
    r = subprocess.run([sys.executable, "-m", "refocus.cli", "batch", str(tmp_path / "in"), "-o", str(out),
                        "--jobs", "1", "--format", "jpg,depth", "--quiet"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    second = _outputs(out)
    assert set(second) == _expected(names)                # no temporaries, no duplicates
    for n, t in first.items():
        stem = n.split(".")[0]
        if {stem + ".jpg", stem + ".depth.png"} <= set(first):
            assert second[n] == t, n                      # a finished photo is not redone


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_worker_that_dies_fails_its_photo_and_the_run_goes_on(tmp_path):
    names = _folder(tmp_path / "in")
    out, mark = tmp_path / "out", uuid.uuid4().hex
    p = _start(tmp_path / "in", out, 2, mark, "--report", str(tmp_path / "r.json"))
    _wait_for_first_output(p, out)
    workers = [pid for pid in _marked_processes(mark)
               if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)                  # as the kernel's OOM killer would
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr
    assert "the worker process ended unexpectedly (exit code -9)" in stderr and "Traceback" not in stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"]["failed"] == 1 and rep["summary"]["done"] == N - 1
    pids = {f["pid"] for f in rep["files"] if f["status"] == "done"}
    assert len(pids) <= 3 < N - 1                         # workers are reused: 2, and 1 replacement
    assert not [n for n in os.listdir(out) if n.startswith(".")]
    assert _marked_processes(mark) == []


def test_a_photo_finished_while_the_run_stops_is_reported_done(tmp_path):
    """Between Ctrl-C and the end of the run a worker may still complete a photo (its outputs
    are renamed into place atomically).  The report must then say done, as the next run will
    see it; a photo with an output missing, or whose outputs predate the run (--overwrite),
    stays interrupted."""
    from refocus.batch import runner
    old = tmp_path / "old.jpg"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    since = time.time()
    a_jpg, a_png, b_jpg = tmp_path / "a.jpg", tmp_path / "a.depth.png", tmp_path / "b.jpg"
    for p in (a_jpg, a_png, b_jpg):
        p.write_bytes(b"x")
    rep = runner.BatchReport(outdir=str(tmp_path), formats=("jpg", "depth"), preset=None, settings={}, jobs=2)
    for name, to_write in (("a", [a_jpg, a_png]), ("b", [b_jpg, tmp_path / "b.depth.png"]), ("c", [old])):
        rep.files.append({"source": name, "status": "interrupted", "to_write": [str(p) for p in to_write],
                          "written": [], "notes": []})
    runner._finished_while_stopping(rep, since)
    assert [f["status"] for f in rep.files] == ["done", "interrupted", "interrupted"]
    assert rep.files[0]["written"] == [str(a_jpg), str(a_png)]
    assert rep.done == 1 and "stopping" in rep.files[0]["notes"][-1]
