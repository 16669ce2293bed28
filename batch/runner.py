"""The batch runner: plan (what to do with each file), run (in this process or in a pool of
worker processes), stop cleanly on Ctrl-C, and report.

Resume rule: a photo is *done* when every output it should have exists; it is then skipped
(``skip_existing``, the default).  Outputs are each written atomically (temporary name in
the destination folder, then a rename), so an output that exists is complete.  A photo
whose outputs are only partly there (a run stopped between two of its files) is rendered
again and only the missing outputs are written; the ones there are kept.  ``overwrite``
renders every photo and replaces its outputs.  Temporary files left by a run that was
killed (``.<output name>.<random>.part``) are removed when the next run starts.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__
from ..errors import BadInputError, OutputError, RefocusError
from . import discover

REPORT_VERSION = 1
BYTES_PER_WORKER_12MP = 2.5e9


# -- the report -------------------------------------------------------------------------------

@dataclass
class BatchReport:
    """What a batch did: one record per file found (``files``), and the totals.

    ``status`` of a file: ``done``, ``skipped`` (its outputs were already there),
    ``failed`` (``error`` says why), ``not-image`` (skipped: not a photo), and after an
    interruption ``interrupted`` (was being processed) or ``pending`` (not started); with
    ``dry_run``: ``planned``.
    """
    outdir: str
    formats: tuple
    preset: str | None
    settings: dict
    jobs: int
    files: list = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    dry_run: bool = False
    removed_partials: int = 0
    started: str = ""
    folders_not_searched: int = 0        # sub-folders left out (no --recursive)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f["status"] == status)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def not_images(self) -> int:
        return self.count("not-image")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def exit_code(self) -> int:
        """0: all photos done or skipped; 1: some failed; 130: interrupted."""
        return 130 if self.interrupted else (1 if self.failed else 0)

    def summary(self) -> str:
        parts = [f"{self.done} done", f"{self.skipped} skipped (already done)", f"{self.failed} failed"]
        if self.not_images:
            parts.append(f"{self.not_images} not images (skipped)")
        if self.interrupted:
            left = self.count("interrupted") + self.count("pending")
            parts.append(f"{left} left to do (interrupted; run again to resume)")
        if self.dry_run:
            parts = [f"{self.count('planned')} to do", f"{self.skipped} already done",
                     f"{self.not_images} not images"]
        return ", ".join(parts) + f" in {self.seconds:.1f} s"

    def as_dict(self) -> dict:
        return {"refocus_batch_report": REPORT_VERSION, "refocus_version": __version__,
                "started": self.started, "seconds": round(self.seconds, 3), "outdir": self.outdir,
                "formats": list(self.formats), "preset": self.preset, "settings": self.settings,
                "jobs": self.jobs, "dry_run": self.dry_run, "interrupted": self.interrupted,
                "summary": {"done": self.done, "skipped": self.skipped, "failed": self.failed,
                            "not_images": self.not_images, "interrupted": self.count("interrupted"),
                            "pending": self.count("pending"), "planned": self.count("planned"),
                            "removed_partials": self.removed_partials,
                            "folders_not_searched": self.folders_not_searched},
                "files": self.files}

    CSV_FIELDS = ("source", "status", "outputs", "written", "depth_source", "focus", "focus_disparity",
                  "blur", "preset", "settings", "seconds", "timings", "notes", "error")

    def to_csv(self) -> str:
        import csv
        bio = io.StringIO()
        w = csv.DictWriter(bio, fieldnames=self.CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for f in self.files:
            row = dict(f)
            row["outputs"] = ";".join(f.get("outputs") or [])
            row["written"] = ";".join(f.get("written") or [])
            row["notes"] = " | ".join(f.get("notes") or [])
            for k in ("settings", "timings"):
                row[k] = json.dumps(f[k], sort_keys=True) if f.get(k) is not None else ""
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in self.CSV_FIELDS})
        return bio.getvalue()

    def write(self, path) -> Path:
        """Write the report as JSON (``.json``) or CSV (``.csv``), atomically."""
        from ..imageio import atomic_write
        path = Path(path)
        ext = check_report_path(path, self.outdir)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(self.as_dict(), indent=2) + "\n") if ext == ".json" else self.to_csv()
        atomic_write(path, data.encode("utf-8"))
        return path


class BatchInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C): workers are stopped, temporary files removed; the
    partial :class:`BatchReport` is in ``.report``."""

    def __init__(self, report: BatchReport):
        super().__init__("batch interrupted")
        self.report = report


def check_report_path(path, outdir=None) -> str:
    """The report's extension (.json or .csv); its folder must exist or lie in `outdir`."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".json", ".csv"):
        raise BadInputError(f"--report {path}: the report is .json or .csv, not {ext or '(no extension)'}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() and not (outdir is not None and discover._inside(folder.resolve(), Path(outdir).resolve())):
        raise OutputError(f"--report {path}: folder {folder} does not exist")
    return ext


# -- jobs -------------------------------------------------------------------------------------

def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo, psutil if installed), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def _largest_megapixels(photos, sample: int = 50) -> float:
    """Largest size among (up to `sample`) photos, from their headers; raw files count 24 MP."""
    from PIL import Image
    mp = 12.0
    for s in photos[:sample]:
        if s.kind == "raw":
            mp = max(mp, 24.0)
            continue
        try:
            with Image.open(s.path) as im:
                mp = max(mp, im.size[0] * im.size[1] / 1e6)
        except Exception:
            continue
    return mp


def default_jobs(n_todo: int, megapixels: float = 12.0) -> int:
    """Worker processes: one per core, as many as memory allows (~2.5 GB per 12 MP photo)."""
    cores = os.cpu_count() or 1
    avail = available_memory()
    per = BYTES_PER_WORKER_12MP * max(1.0, megapixels / 12.0)
    by_mem = int(avail // per) if avail else cores
    return max(1, min(cores, by_mem, max(1, n_todo)))


# -- events -----------------------------------------------------------------------------------

def _emit(progress, event: str, **kw):
    if progress is not None:
        progress({"event": event, **kw})


class _NoticeWriter(io.TextIOBase):
    """sys.stderr while photos are processed in this process: lines become notice events."""

    def __init__(self, progress):
        self._progress = progress
        self._buf = ""

    def write(self, s):
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                _emit(self._progress, "notice", text=line)
        return len(s)


# -- the run ----------------------------------------------------------------------------------

def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run(inputs, outdir, *, preset=None, preset_file=None, formats=("jpg",), overrides: dict | None = None,
        recursive: bool = False, jobs: int | None = None, overwrite: bool = False, dry_run: bool = False,
        report=None, quality: int = 95, device: str = "auto", progress=None) -> BatchReport:
    """Refocus every photo in `inputs` (files, folders, globs) into `outdir`.

    Parameters
    ----------
    preset, preset_file : a preset name (built-in or user) or a preset .json file; look
        parameters in `overrides` (``{"aperture": "f/1.8", "focus": "point", ...}``, names of
        :data:`refocus.params.PARAMS`) win over the preset's.
    formats : any of ``jpg`` ``tif`` ``png`` ``ora`` ``psd`` ``depth`` (or ``"jpg,psd"``).
    recursive : also take photos in sub-folders (the structure is mirrored under `outdir`).
    jobs : worker processes; None = from the cores and the memory; 1 = in this process.
        With jobs > 1 on macOS/Windows, call ``run`` under ``if __name__ == "__main__":``.
    overwrite : render everything again and replace outputs (default: skip photos whose
        outputs all exist, write the missing outputs of the others).
    dry_run : plan only; nothing is written (no folder, no report).
    report : path of a ``.json`` or ``.csv`` report to write (also after an interruption).
    progress : callable receiving event dicts: ``start`` (total, todo, jobs), ``file-start``
        (index, source), ``stage`` (index, source, stage, fraction), ``file-end`` (index,
        record), ``notice`` (text), ``stopping`` (busy: workers being stopped after Ctrl-C),
        ``end`` (report).

    Returns a :class:`BatchReport`; a bad photo is a ``failed`` record, not an exception.
    Raises :class:`~refocus.errors.RefocusError` for bad arguments (before any work), and
    :class:`BatchInterrupted` (a KeyboardInterrupt carrying the report) on Ctrl-C.
    """
    from .. import params, presets
    t_start = time.perf_counter()
    wall_start = time.time()
    started = _now()
    formats = discover.parse_formats(formats)
    if preset is not None and preset_file is not None:
        raise BadInputError("--preset and --preset-file: give one of the two")
    if not (1 <= int(quality) <= 100):
        raise BadInputError(f"--quality: {quality} is out of range (1..100)")
    chosen = presets.get(preset_file if preset_file is not None else preset) \
        if (preset or preset_file) else None
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = chosen.resolve(overrides) if chosen else params.resolve(overrides)
    settings_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.as_dict().items()}
    if jobs is not None and int(jobs) < 1:
        raise BadInputError(f"--jobs: {jobs} is not a number of processes (1 or more)")
    if not inputs:
        raise BadInputError("no input given: name photos, folders or patterns")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"-o {outdir}: exists and is not a folder")
    out_abs = outdir.resolve()
    if report is not None:
        check_report_path(report, out_abs)
    for item in inputs:
        p = Path(str(item))
        if p.is_dir() and p.resolve() == out_abs:
            raise BadInputError(f"-o {outdir}: is the input folder {item}; outputs would mix with the "
                                f"photos. Use another folder, e.g. -o {Path(str(item)) / 'refocused'}")
    skipped_folders: list = []
    sources = discover.find_sources(inputs, recursive=recursive, exclude=out_abs, skipped_folders=skipped_folders)
    discover.assign_outputs(sources, out_abs, formats)

    rep = BatchReport(outdir=str(out_abs), formats=formats, preset=chosen.name if chosen else None,
                      settings=settings_dict, jobs=1, dry_run=dry_run, started=started,
                      folders_not_searched=len(skipped_folders))
    todo = []                  # (index, task)
    for s in sources:
        rec = {"source": str(s.path), "rel": s.display, "status": None, "outputs": [], "written": [],
               "depth_source": None, "focus": None, "focus_disparity": None, "blur": None,
               "preset": rep.preset, "settings": None, "notes": [], "timings": None, "seconds": None,
               "error": None, "pid": None}
        rep.files.append(rec)
        if not s.is_photo:
            rec["status"] = "not-image"
            continue
        rec["outputs"] = [str(p) for p in s.outputs.values()]
        missing = [f for f, p in s.outputs.items() if overwrite or not p.exists()]
        if not missing:
            rec["status"] = "skipped"
            continue
        rec["status"] = "planned" if dry_run else "pending"
        rec["to_write"] = [str(s.outputs[f]) for f in missing]
        todo.append((len(rep.files) - 1, {
            "index": len(rep.files) - 1, "source": str(s.path), "outputs": {f: str(p) for f, p in s.outputs.items()},
            "write": missing, "settings": settings_dict, "preset": rep.preset, "quality": int(quality),
            "device": device, "overwrite": bool(overwrite)}))

    n_jobs = int(jobs) if jobs is not None else default_jobs(
        len(todo), _largest_megapixels([s for s in sources if s.is_photo and s.outputs]) if todo else 12.0)
    n_jobs = max(1, min(n_jobs, max(1, len(todo))))
    rep.jobs = n_jobs
    _emit(progress, "start", total=sum(1 for s in sources if s.is_photo), todo=len(todo), jobs=n_jobs,
          not_images=rep.not_images, skipped=rep.skipped, dry_run=dry_run, report=rep)
    if dry_run:
        rep.seconds = time.perf_counter() - t_start
        _emit(progress, "end", report=rep)
        return rep

    out_abs.mkdir(parents=True, exist_ok=True)
    for _, task in todo:                                # leftovers of a killed run
        for p in task["outputs"].values():
            rep.removed_partials += _remove_partials(Path(p))

    try:
        if n_jobs == 1:
            _run_here(todo, rep, progress)
        else:
            _run_pool(todo, rep, progress, n_jobs)
    except KeyboardInterrupt:
        with _sigint_ignored():
            rep.interrupted = True
            for _, task in todo:
                for p in task["outputs"].values():
                    _remove_partials(Path(p))
            _finished_while_stopping(rep, wall_start)
            rep.seconds = time.perf_counter() - t_start
            if report is not None:
                with contextlib.suppress(RefocusError, OSError):
                    rep.write(report)
            _emit(progress, "end", report=rep)
        raise BatchInterrupted(rep) from None
    rep.seconds = time.perf_counter() - t_start
    if report is not None:
        rep.write(report)
    _emit(progress, "end", report=rep)
    return rep


@contextlib.contextmanager
def _sigint_ignored():
    """While cleaning up after Ctrl-C, a second Ctrl-C must not cut the cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _finished_while_stopping(rep: BatchReport, since: float) -> None:
    """A worker may complete a photo between Ctrl-C and the end of the run; when all its
    outputs were written by this run (each atomically, so complete), the report says done,
    as the next run will."""
    def written_now(p):
        with contextlib.suppress(OSError):
            return Path(p).stat().st_mtime >= since
        return False

    for f in rep.files:
        if f["status"] in ("interrupted", "pending") and f.get("to_write") \
                and all(written_now(p) for p in f["to_write"]):
            f["status"] = "done"
            f["written"] = list(f["to_write"])
            f["notes"] = list(f.get("notes") or []) + ["finished while the run was stopping"]


def _remove_partials(output: Path) -> int:
    n = 0
    for tmp in discover.part_files(output):
        with contextlib.suppress(OSError):
            tmp.unlink()
            n += 1
    return n


def _finish(rep: BatchReport, idx: int, rec: dict | None, error: str | None, seconds: float, progress,
            detail: str | None = None):
    f = rep.files[idx]
    f["seconds"] = round(seconds, 3)
    if error is None:
        f["status"] = "done"
        for k in ("depth_source", "focus", "focus_disparity", "blur", "settings", "notes", "timings",
                  "written", "pid"):
            f[k] = rec.get(k)
    else:
        f["status"] = "failed"
        f["error"] = error
        if detail:
            f["traceback"] = detail
    _emit(progress, "file-end", index=idx, record=f)


def _run_here(todo, rep: BatchReport, progress):
    from ..errors import RefocusError as _RE
    from .worker import process
    writer = _NoticeWriter(progress)
    for idx, task in todo:
        src = rep.files[idx]["rel"]
        _emit(progress, "file-start", index=idx, source=src)
        rep.files[idx]["status"] = "interrupted"          # until it ends one way or the other
        t0 = time.perf_counter()

        def stage(name, fraction, _idx=idx, _src=src):
            _emit(progress, "stage", index=_idx, source=_src, stage=name, fraction=fraction)

        try:
            with contextlib.redirect_stderr(writer):
                rec = process(task, stage)
        except _RE as e:
            _finish(rep, idx, None, str(e), time.perf_counter() - t0, progress)
        except MemoryError:
            _finish(rep, idx, None, f"{task['source']}: not enough memory to process this photo",
                    time.perf_counter() - t0, progress)
        except Exception as e:                       # a bug: report it and go on with the others
            import traceback
            _finish(rep, idx, None, f"{task['source']}: internal error ({type(e).__name__}: {e})",
                    time.perf_counter() - t0, progress, traceback.format_exc())
        else:
            _finish(rep, idx, rec, None, time.perf_counter() - t0, progress)


class _Worker:
    def __init__(self, ctx, threads: int):
        from .worker import worker_main
        self.conn, child = ctx.Pipe(duplex=True)
        in_main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None   # child inherits "ignore"
        try:
            self.proc = ctx.Process(target=worker_main, args=(child, threads, os.getpid()), daemon=True,
                                    name="refocus-batch-worker")
            self.proc.start()
        finally:
            if in_main:
                signal.signal(signal.SIGINT, old)
        child.close()
        self.busy = None          # index of the file it works on
        self.t0 = 0.0

    def stop(self, timeout: float = 5.0):
        with contextlib.suppress(Exception):
            if self.proc.is_alive():
                self.proc.terminate()
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        with contextlib.suppress(Exception):
            self.conn.close()


def _run_pool(todo, rep: BatchReport, progress, n_jobs: int):
    import multiprocessing as mp
    from multiprocessing.connection import wait
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    queue = deque(todo)
    workers = [_Worker(ctx, threads) for _ in range(n_jobs)]
    restarts = 0
    try:
        while queue or any(w.busy is not None for w in workers):
            for i, w in enumerate(workers):
                if w.busy is None and queue:
                    if not w.proc.is_alive():                 # died while idle: replace it
                        w.stop(0)
                        workers[i] = w = _Worker(ctx, threads)
                    idx, task = queue.popleft()
                    try:
                        w.conn.send(task)
                    except (BrokenPipeError, OSError):
                        restarts += 1
                        if restarts > len(todo) + 2 * n_jobs:
                            raise RefocusError("the worker processes keep ending before they get work; "
                                               "run with --jobs 1 to see why") from None
                        queue.appendleft((idx, task))         # try again with a fresh worker
                        w.stop(0)
                        workers[i] = _Worker(ctx, threads)
                        continue
                    w.busy, w.t0 = idx, time.perf_counter()
                    rep.files[idx]["status"] = "interrupted"
                    _emit(progress, "file-start", index=idx, source=rep.files[idx]["rel"])
            busy = [w for w in workers if w.busy is not None]
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=1.0)
            for i, w in enumerate(workers):
                if w.busy is None:
                    continue
                dead = False
                try:
                    while w.conn.poll():
                        msg = w.conn.recv()
                        _handle(msg, w, rep, progress)
                        if w.busy is None:
                            break
                except (EOFError, OSError):
                    dead = True
                if w.busy is not None and (dead or not w.proc.is_alive()):
                    w.proc.join(1)
                    code = w.proc.exitcode
                    why = " (killed: out of memory?)" if code in (-9, 137) else ""
                    _finish(rep, w.busy, None, f"{rep.files[w.busy]['source']}: the worker process ended "
                            f"unexpectedly (exit code {code}){why}; try --jobs 1",
                            time.perf_counter() - w.t0, progress)
                    for p in todo_outputs(rep, w.busy):
                        _remove_partials(p)
                    w.busy = None
                    w.stop(0)
                    workers[i] = _Worker(ctx, threads)
        for w in workers:
            with contextlib.suppress(Exception):
                w.conn.send(None)
        for w in workers:
            w.proc.join(10)
            w.stop(1)
    except BaseException as e:
        with _sigint_ignored():
            if isinstance(e, KeyboardInterrupt):
                _emit(progress, "stopping", busy=sum(1 for w in workers if w.busy is not None))
            for w in workers:                  # SIGTERM: each worker removes its temp file and ends
                with contextlib.suppress(Exception):
                    if w.proc.is_alive():
                        w.proc.terminate()
            for w in workers:
                w.stop(5)
        raise


def todo_outputs(rep: BatchReport, idx: int):
    return [Path(p) for p in rep.files[idx]["outputs"]]


def _handle(msg, w: _Worker, rep: BatchReport, progress):
    kind = msg[0]
    if kind == "stage":
        _, idx, name, fraction = msg
        _emit(progress, "stage", index=idx, source=rep.files[idx]["rel"], stage=name, fraction=fraction)
    elif kind == "notice":
        _emit(progress, "notice", text=msg[1])
    elif kind == "done":
        _, idx, rec = msg
        _finish(rep, idx, rec, None, time.perf_counter() - w.t0, progress)
        w.busy = None
    elif kind == "failed":
        _, idx, error, detail = msg
        _finish(rep, idx, None, error, time.perf_counter() - w.t0, progress, detail)
        w.busy = None
