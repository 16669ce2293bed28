"""The GIMP side of the refocus worker protocol (standard library only).

GIMP's bundled Python usually cannot import onnxruntime (or refocus at all), so the plug-in
hands the work to a *worker*: ``PYTHON -m refocus.plugin_gimp.worker REQUEST_DIR`` run with
the interpreter that ``refocus gimp install`` recorded.  This module is that client; it is
copied next to the plug-in script on install and must import nothing outside the standard
library (no numpy: pixels travel as the raw float32 bytes GeglBuffer gives).

Protocol (version :data:`PROTOCOL`), all inside a private temporary folder (mode 0700):

``request.json``
    ``{"protocol": 1, "mode": "refocus" | "depth", "settings": {...}, "preset": name or null,
    "outputs": [...], "device": "auto", "source_file": path or null, "depth_kind": ...,
    "arrays": {name: {"file": "name.f32", "shape": [H, W, C], "dtype": "float32"}}}``
    Arrays are raw little-endian float32, C order: ``image`` (linear RGB/RGBA/Y/YA),
    optional ``mask`` (the selection, [0, 1]) and ``depth`` (a layer used as depth map).
``response.json``
    ``{"ok": true, "arrays": {...}, "notes": [...], "depth_source": ..., "focus": ..., "K": ...}``
    or ``{"ok": false, "error": {"type": "BadInputError", "message": "..."}}``.
stdout
    ``PROGRESS <stage> <fraction>`` lines, forwarded to GIMP's progress bar.
exit status
    0 success, 2 refocus error (bad input, model ...), 3 bad request, anything else a crash.

No pickle anywhere: JSON and raw bytes only.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time

PROTOCOL = 1
DEFAULT_TIMEOUT = 900.0          # seconds; a large photo with a depth model on a slow CPU
FLOAT32 = 4
WORKER_MODULE = "refocus.plugin_gimp.worker"
# progress stages of refocus.pipeline and where each starts on GIMP's bar
STAGE_SPAN = {"depth": (0.0, 0.45), "focus": (0.45, 0.5), "render": (0.5, 0.9), "finish": (0.9, 1.0)}


class BridgeError(Exception):
    """The worker failed; ``kind`` is the core's error type name (e.g. ``BadInputError``)."""

    def __init__(self, message: str, kind: str = "WorkerError"):
        super().__init__(message)
        self.kind = kind


def in_flatpak() -> bool:
    """True inside a Flatpak sandbox (Flatpak GIMP): the worker then runs on the host."""
    return os.path.exists("/.flatpak-info")


def new_request_dir() -> str:
    """A private temporary folder for one request (mode 0700, like every mkdtemp).

    In a Flatpak sandbox /tmp is private to the sandbox, so the folder goes into the app's
    cache folder, which the host sees at the same path.
    """
    base = None
    if in_flatpak():
        cache = os.environ.get("XDG_CACHE_HOME")
        if cache and os.path.isdir(cache):
            base = cache
    d = tempfile.mkdtemp(prefix="refocus-gimp-", dir=base)
    os.chmod(d, 0o700)
    return d


def remove_request_dir(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def write_request(folder: str, request: dict, arrays: dict) -> str:
    """Write ``request.json`` and the arrays: ``{name: (raw float32 bytes, shape)}``."""
    specs = {}
    for name, (data, shape) in arrays.items():
        if not name.isidentifier():
            raise ValueError(f"array name {name!r} is not a plain identifier")
        shape = [int(s) for s in shape]
        n = 1
        for s in shape:
            n *= s
        if len(data) != n * FLOAT32:
            raise ValueError(f"array {name}: {len(data)} bytes, expected {n * FLOAT32} for float32 {shape}")
        fname = name + ".f32"
        with open(os.path.join(folder, fname), "wb") as f:
            f.write(data)
        specs[name] = {"file": fname, "shape": shape, "dtype": "float32"}
    req = dict(request)
    req["protocol"] = PROTOCOL
    req["arrays"] = specs
    path = os.path.join(folder, "request.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(req, f)
    return path


def read_array(folder: str, spec: dict) -> bytes:
    """Raw float32 bytes of one response array, checked against its declared shape."""
    fname = str(spec.get("file", ""))
    if not fname or os.path.basename(fname) != fname:
        raise BridgeError(f"worker response names a bad array file {fname!r}")
    if spec.get("dtype") != "float32":
        raise BridgeError(f"worker response array {fname}: dtype {spec.get('dtype')!r}, expected float32")
    n = 1
    for s in spec["shape"]:
        n *= int(s)
    with open(os.path.join(folder, fname), "rb") as f:
        data = f.read()
    if len(data) != n * FLOAT32:
        raise BridgeError(f"worker response array {fname}: {len(data)} bytes, expected {n * FLOAT32}")
    return data


def is_optional(param: dict) -> bool:
    """Parameters with no default (or free text) travel as text; "" means automatic."""
    return param["kind"] in ("str", "point", "fnumber") or param["default"] is None


def settings_from(values: dict, params: list, preset) -> dict:
    """Parameter values to send, from the procedure's arguments (``values`` by argument name).

    Empty text = not set.  With a preset, values left at their declared default are not sent,
    so the preset's apply and changed values override it (the command line's rule).
    """
    out = {}
    for p in params:
        if p["name"] not in values:
            continue
        v = values[p["name"]]
        if v is None or isinstance(v, str) and not v.strip():
            continue
        if preset and not is_optional(p) and v == p["default"]:
            continue
        out[p["key"]] = v
    return out


def overall_fraction(stage: str, fraction: float) -> float:
    lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
    return lo + (hi - lo) * min(1.0, max(0.0, fraction))


def parse_progress(line: str):
    """``PROGRESS depth 0.5`` -> ("depth", 0.5); anything else -> None."""
    parts = line.split()
    if len(parts) == 3 and parts[0] == "PROGRESS":
        try:
            return parts[1], float(parts[2])
        except ValueError:
            return None
    return None


def worker_command(python: str, folder: str, *, flatpak: bool = False) -> list:
    """The worker's command line; from a Flatpak sandbox through ``flatpak-spawn --host``
    (GIMP needs ``flatpak override --user --talk-name=org.freedesktop.Flatpak org.gimp.GIMP``),
    with ``--watch-bus`` so the host process ends with the plug-in."""
    cmd = [python, "-m", WORKER_MODULE, folder]
    if flatpak:
        cmd = ["flatpak-spawn", "--host", "--watch-bus"] + cmd
    return cmd


def run_worker(folder: str, python: str, *, timeout: float = DEFAULT_TIMEOUT, progress=None,
               env: dict | None = None) -> dict:
    """Run the worker on a request folder and return its response (raises :class:`BridgeError`).

    ``progress(fraction)`` is called in the caller's thread (GIMP's calls are not thread
    safe) for each ``PROGRESS`` line.  The worker is killed (its whole process group) after
    ``timeout`` seconds.  Its stderr goes to ``worker.log`` in the folder; the last lines
    are quoted when it dies without a response.
    """
    if not python:
        raise BridgeError("no Python interpreter with refocus recorded; run `refocus gimp install` "
                          "from the environment where refocus is installed")
    flatpak = in_flatpak()
    if not flatpak and not os.path.exists(python):              # a host path is not visible in a sandbox
        raise BridgeError(f"the Python recorded for refocus ({python}) does not exist; run "
                          "`refocus gimp install` again from the environment where refocus is installed")
    log_path = os.path.join(folder, "worker.log")
    kw = {}
    if os.name == "posix":
        kw["start_new_session"] = True
    else:                                                            # pragma: no cover
        kw["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("PYTHONIOENCODING", "utf-8")
    # GIMP's own Python settings must not leak into the worker's interpreter
    for k in ("PYTHONHOME", "PYTHONPATH") if env is None else ():
        run_env.pop(k, None)
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(worker_command(python, folder, flatpak=flatpak), stdout=subprocess.PIPE,
                                    stderr=log, stdin=subprocess.DEVNULL, env=run_env, **kw)
        except OSError as e:
            raise BridgeError(f"could not start the refocus worker with {python}: {e}") from None
        lines: queue.Queue = queue.Queue()

        def pump():
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        deadline = time.monotonic() + timeout
        done = False
        while not done:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(proc)
                raise BridgeError(f"the refocus worker did not finish within {timeout:g} s and was stopped; "
                                  "for very large images raise the limit with the environment variable "
                                  "REFOCUS_GIMP_TIMEOUT (seconds)", "TimeoutError")
            try:
                line = lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if line is None:
                done = True
                continue
            p = parse_progress(line)
            if p and progress is not None:
                progress(overall_fraction(*p))
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise BridgeError(f"the refocus worker did not exit within {timeout:g} s", "TimeoutError") from None
    return read_response(folder, rc)


def _kill(proc) -> None:
    """Stop the worker's process group: SIGTERM (which flatpak-spawn forwards to the host),
    then SIGKILL after a grace period."""
    if os.name != "posix":                                           # pragma: no cover
        proc.kill()
        proc.wait(timeout=10)
        return
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _log_tail(folder: str, n: int = 8) -> str:
    try:
        with open(os.path.join(folder, "worker.log"), encoding="utf-8", errors="replace") as f:
            lines = [ln.rstrip() for ln in f if ln.strip()]
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def read_response(folder: str, rc: int) -> dict:
    """The worker's ``response.json``; a failure (error response or bad exit) raises."""
    path = os.path.join(folder, "response.json")
    resp = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                resp = json.load(f)
        except (OSError, ValueError) as e:
            raise BridgeError(f"the refocus worker wrote an unreadable response ({e})") from None
    if resp is not None and not resp.get("ok"):
        err = resp.get("error") or {}
        raise BridgeError(str(err.get("message") or "the refocus worker failed"), str(err.get("type") or "Error"))
    if rc != 0 or resp is None:
        tail = _log_tail(folder)
        raise BridgeError(f"the refocus worker exited with status {rc} without a result"
                          + (f"; its last messages:\n{tail}" if tail else ""), "WorkerCrash")
    if resp.get("protocol") != PROTOCOL:
        raise BridgeError(f"worker protocol {resp.get('protocol')!r}, this plug-in speaks {PROTOCOL}; "
                          "run `refocus gimp install` again so both come from the same refocus version")
    return resp


def run_inprocess(folder: str, *, progress=None) -> dict:
    """The same request handled in this interpreter (when it can import refocus)."""
    from refocus.plugin_gimp import worker        # only imported when refocus is importable

    def cb(stage, fraction):
        if progress is not None:
            progress(overall_fraction(stage, fraction))
    try:
        worker.handle(folder, progress=cb)
    except worker.RequestError as e:
        raise BridgeError(str(e), "RequestError") from None
    except Exception as e:                    # the core's errors carry their own message
        raise BridgeError(str(e) or type(e).__name__, type(e).__name__) from None
    return read_response(folder, 0)


def core_importable() -> bool:
    """True when this interpreter can run refocus itself (refocus, numpy and onnxruntime)."""
    import importlib.util
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("numpy", "onnxruntime", "refocus"))
    except (ImportError, ValueError):
        return False


def _forced_mode(config: dict) -> str:
    return os.environ.get("REFOCUS_GIMP_MODE", config.get("mode", "auto")).strip().lower()


def choose_mode(config: dict) -> str:
    """``inprocess`` or ``worker``: env REFOCUS_GIMP_MODE forces one, else in-process when possible."""
    forced = _forced_mode(config)
    if forced in ("inprocess", "worker"):
        return forced
    return "inprocess" if core_importable() else "worker"


def inprocess_problem():
    """None when refocus really imports here (numpy, onnxruntime, the worker), else why not.

    :func:`core_importable` only looks for the modules (cheap, for GIMP's start-up scan); a
    module can be found and still fail to load (a numpy built for another Python, a missing
    onnxruntime library), so the first real call imports them before choosing in-process.
    """
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
        from refocus.plugin_gimp import worker  # noqa: F401
    except Exception as e:                 # ImportError, OSError from a shared library, ...
        return f"{type(e).__name__}: {e}"
    return None


def timeout_from(config: dict) -> float:
    raw = os.environ.get("REFOCUS_GIMP_TIMEOUT") or config.get("timeout") or DEFAULT_TIMEOUT
    try:
        t = float(raw)
    except (TypeError, ValueError):
        raise BridgeError(f"REFOCUS_GIMP_TIMEOUT: {raw!r} is not a number of seconds") from None
    return t if t > 0 else DEFAULT_TIMEOUT


def run(folder: str, config: dict, *, progress=None) -> dict:
    """Handle a written request folder: in-process or with the recorded worker interpreter.

    In-process is chosen when refocus can be imported here; if the import then fails, the
    request goes to the worker (unless in-process was forced: then the failure is the error).
    """
    if choose_mode(config) == "inprocess":
        problem = inprocess_problem()
        if problem is None:
            return run_inprocess(folder, progress=progress)
        if _forced_mode(config) == "inprocess":
            raise BridgeError(f"refocus cannot run inside GIMP's Python ({problem}); unset "
                              "REFOCUS_GIMP_MODE to use the worker recorded by `refocus gimp install`",
                              "ImportError")
    python = os.environ.get("REFOCUS_GIMP_PYTHON") or config.get("python") or ""
    return run_worker(folder, python, timeout=timeout_from(config), progress=progress)
