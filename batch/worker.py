"""Refocusing one photo of a batch, in the runner's process or in a worker process.

A worker process is started once per job slot and reused for many photos, so the ONNX
sessions and depth models it loads (cached per process by :mod:`refocus.runtime`) are
loaded once.  It talks to the runner over a pipe: it receives one task at a time and sends
back stage messages, notices (what the core prints on stderr) and the file's result.

Signals: a worker ignores SIGINT (Ctrl-C reaches the whole process group; the runner
decides), and turns SIGTERM into :class:`Stop` so that a write in progress removes its
temporary file before the process ends.  On Linux a worker also gets SIGTERM when the
runner dies (even by SIGKILL), so no orphan keeps writing.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path


class Stop(BaseException):
    """Raised in a worker on SIGTERM: stop now (BaseException, so nothing swallows it)."""


def _record(task: dict, res) -> dict:
    rec = {"preset": task.get("preset"), "source": Path(task["source"]).name,
           "focus": res.focus.how, "focus_disparity": round(float(res.focus.disparity), 4),
           "blur": round(float(res.K), 3), "depth_source": res.depth_source}
    return rec


def process(task: dict, stage=None) -> dict:
    """Refocus ``task["source"]`` and write the outputs named in ``task["write"]``.

    `task`: source, outputs (format -> path), write (formats to write), settings (dict of
    look parameters, already validated), preset, quality, device, overwrite.
    `stage(name, fraction)` reports progress.  Returns the file's record (JSON-able).
    Raises what the core raises (RefocusError with a message naming the file).
    """
    from .. import params
    from ..io import layers as rlayers
    from ..io import write as rwrite
    from ..pipeline import refocus_file
    stage = stage or (lambda name, fraction: None)
    t0 = time.perf_counter()
    settings = params.resolve(task["settings"])
    stage("read", 0.0)
    res, photo = refocus_file(task["source"], settings, device=task.get("device", "auto"), progress=stage)
    t1 = time.perf_counter()
    stage("write", 0.0)
    overwrite = bool(task.get("overwrite"))
    xrec = _record(task, res)
    written = []
    for fmt in task["write"]:
        out = Path(task["outputs"][fmt])
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt in ("jpg", "tif", "png"):
            rwrite.write_result(out, res.linear, photo=photo, quality=int(task.get("quality", 95)),
                                bits=16 if fmt == "tif" else None, xmp_record=xrec, overwrite=overwrite)
        elif fmt in ("ora", "psd"):
            stack = rlayers.result_layers(res.linear, res.original, res.disparity, res.coc)
            rlayers.write_layers(out, stack, photo=photo, bits=16, overwrite=overwrite, xmp_record=xrec)
        elif fmt == "depth":
            rwrite.write_disparity_png(out, res.disparity, overwrite=overwrite, inputs=[task["source"]],
                                       record={"source": xrec["source"], "depth_source": res.depth_source})
        else:                                                           # pragma: no cover
            raise AssertionError(fmt)
        written.append(str(out))
    t2 = time.perf_counter()
    rec = res.record()
    timings = dict(rec.get("timings", {}))
    timings.update({"refocus": round(t1 - t0, 3), "write": round(t2 - t1, 3), "total": round(t2 - t0, 3)})
    return {"depth_source": res.depth_source, "focus": res.focus.how,
            "focus_disparity": rec["focus_disparity"], "blur": rec["blur"], "settings": rec["settings"],
            "notes": rec["notes"], "timings": timings, "written": written, "pid": os.getpid(),
            "size": [int(res.linear.shape[1]), int(res.linear.shape[0])]}


class _PipeWriter:
    """sys.stderr of a worker: whole lines go to the runner as notices."""

    def __init__(self, send):
        self._send = send
        self._buf = ""

    def write(self, s):
        self._buf += str(s)
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                try:
                    self._send(("notice", line))
                except Exception:
                    pass
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False


def _die_with_parent():
    """Ask Linux to send SIGTERM to this process when its parent dies; else a watchdog thread."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) == 0:          # PR_SET_PDEATHSIG
            return
    except Exception:
        pass
    import threading
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return
    threading.Thread(target=watch, daemon=True).start()


def _on_term(signum, frame):
    raise Stop()


def worker_main(conn, threads: int, parent_pid: int):
    """Entry point of a worker process (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    _die_with_parent()
    if os.getppid() != parent_pid:                  # the runner died before we got here
        return
    if threads > 0:
        os.environ.setdefault("REFOCUS_THREADS", str(threads))
    from ..runtime import own_process
    own_process()                                   # a process of our own: its heap settings
    sys.stderr = _PipeWriter(conn.send)
    try:
        import cv2
        cv2.setNumThreads(max(1, threads))
    except Exception:
        pass
    from ..errors import RefocusError
    try:
        while True:
            try:
                task = conn.recv()
            except EOFError:
                return
            if task is None:
                return
            idx = task["index"]

            def stage(name, fraction, _idx=idx):
                conn.send(("stage", _idx, name, float(fraction)))

            try:
                rec = process(task, stage)
                conn.send(("done", idx, rec))
            except Stop:
                raise
            except RefocusError as e:
                conn.send(("failed", idx, str(e), None))
            except MemoryError:
                conn.send(("failed", idx, f"{task['source']}: not enough memory to process this photo "
                                          "(try --jobs 1)", None))
            except Exception as e:                                  # a bug: say so, keep going
                conn.send(("failed", idx, f"{task['source']}: internal error ({type(e).__name__}: {e})",
                           traceback.format_exc()))
    except (Stop, BrokenPipeError, EOFError, OSError):
        return
