"""onnxruntime sessions: the one place where execution providers are chosen.

Order for ``device="auto"``: CUDA, DirectML, CoreML when the installed onnxruntime build
offers them, always with the CPU provider last as a fallback.  An explicit device that the
build does not offer falls back to the CPU with a one-line notice naming the wheel to
install.  Sessions are cached per (graph, providers).
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from .errors import BadInputError, ModelError

DEVICES = ("auto", "cpu", "cuda", "directml", "coreml")
PROVIDER_OF = {
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("cuda", "directml", "coreml")
WHEEL_OF = {"cuda": "onnxruntime-gpu", "directml": "onnxruntime-directml", "coreml": "onnxruntime (macOS)"}

_lock = threading.Lock()
_sessions: dict = {}
_notified: set = set()


def _notice(msg: str) -> None:
    """Print a one-line notice once per process (stderr)."""
    if msg not in _notified:
        _notified.add(msg)
        print(f"refocus: {msg}", file=sys.stderr)


def available_providers() -> list[str]:
    import onnxruntime as ort
    return list(ort.get_available_providers())


def choose(device: str = "auto") -> tuple[list[str], str]:
    """Return (providers in priority order, name of the device that will run).

    The CPU provider is always last, so onnxruntime can fall back to it.
    """
    device = (device or "auto").lower()
    if device not in DEVICES:
        raise BadInputError(f"--device: unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    avail = set(available_providers())
    if device == "auto":
        for d in AUTO_ORDER:
            if PROVIDER_OF[d] in avail:
                return [PROVIDER_OF[d], PROVIDER_OF["cpu"]], d
        return [PROVIDER_OF["cpu"]], "cpu"
    if device == "cpu":
        return [PROVIDER_OF["cpu"]], "cpu"
    if PROVIDER_OF[device] in avail:
        return [PROVIDER_OF[device], PROVIDER_OF["cpu"]], device
    _notice(f"{device} is not available in this onnxruntime build "
            f"(install {WHEEL_OF[device]} instead of onnxruntime); running on the CPU")
    return [PROVIDER_OF["cpu"]], "cpu"


_malloc_tuned = None        # None, "shared" or "own": what _keep_freed_memory has set


def own_process() -> None:
    """Memory settings for the processes refocus runs itself (the command, the batch and GIMP
    workers), called before numpy is imported and before any thread starts: :func:`no_hugepage_stalls`
    and :func:`_keep_freed_memory` with the whole heap reused (``own=True``).  Not done for
    ``import refocus`` (the calling program owns its numpy and its malloc)."""
    no_hugepage_stalls()
    _keep_freed_memory(own=True)


def no_hugepage_stalls() -> None:
    """For the processes refocus runs itself (the command, the GIMP worker): numpy does not
    ask Linux for transparent huge pages.

    numpy marks every large array ``madvise(MADV_HUGEPAGE)``.  Where the kernel's THP defrag
    setting is ``madvise`` (the default of many distributions) a page fault in such an array
    may stall in memory compaction; on the project's VM that made first-touching a 144 MB
    array 0.30-0.49 s instead of 0.05 s, and the 12 MP render 3.5 s instead of 2.7 s.  Our
    arrays live for a fraction of a second, so huge pages gain nothing.  An explicit
    NUMPY_MADVISE_HUGEPAGE in the environment is respected; child processes inherit the
    setting.  Not done for ``import refocus`` (the calling program owns its numpy).
    """
    if not sys.platform.startswith("linux"):
        return
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")     # read by numpy when first imported
    if os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0" and "numpy" in sys.modules:
        try:                                                 # numpy already imported: switch it now
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:
            try:
                from numpy.core.multiarray import _set_madvise_hugepage
            except ImportError:
                return
        _set_madvise_hugepage(False)


def _keep_freed_memory(own: bool = False) -> None:
    """glibc only, once per process: keep freed memory for reuse instead of giving it back.

    Without onnxruntime's arena every strip's intermediates are freed; glibc would trim them
    from the heap and the next strip would fault fresh pages in again (on the project's VM
    about 2 ms per MB).  No trimming, and blocks up to 32 MB from the heap: 12 MP render
    2.4 -> 2.2 s median, peak memory unchanged within 3 %.  Harmless elsewhere (skipped).

    ``own`` (refocus's own processes, :func:`own_process`): also no block from mmap at all
    and one malloc arena for every thread.  A 12 MP plane is 48 MB, over glibc's largest mmap
    threshold, so each one used to be mapped fresh and faulted in page by page, then
    unmapped; from the one heap, freed planes are reused whichever thread frees or asks.  12
    MP render: page faults 330 k -> 177 k, system time 1.1 -> 0.7 s, peak memory no higher
    (measured numbers in docs/renderer.md).
    """
    global _malloc_tuned
    if _malloc_tuned == "own" or (_malloc_tuned and not own) or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = "own" if own else "shared"
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)          # M_TRIM_THRESHOLD: 1 GB
        libc.mallopt(-3, 32 << 20)         # M_MMAP_THRESHOLD: 32 MB (glibc's largest)
        if own:
            libc.mallopt(-4, 0)            # M_MMAP_MAX: no mmap (glibc still falls back to it if brk fails)
            libc.mallopt(-8, 1)            # M_ARENA_MAX: one arena
    except (OSError, AttributeError):      # not glibc (musl, ...): nothing to tune
        pass


def threads() -> int:
    """How many threads refocus's own work may use: REFOCUS_THREADS (a batch worker sets it
    to its share of the cores), else every core."""
    n = int(os.environ.get("REFOCUS_THREADS", "0") or 0)
    return n if n > 0 else (os.cpu_count() or 1)


def _session_options(arena: bool = False, optimize: bool = True):
    _keep_freed_memory()
    import onnxruntime as ort
    so = ort.SessionOptions()
    # `optimize` False: the project's own graphs on the CPU.  They are built lean (see
    # onnx_models/), and onnxruntime's optimizer gave the same bits for more time than it
    # saved: the lens graph's session 30 -> 8.5 ms to make, its one 12 MP run 89 -> 94 ms.
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = threads()
    so.log_severity_level = 3
    # The renderer's graphs run with onnxruntime's CPU memory arena, handed back at the end of
    # a render (shrink_after): buffers are then reused within and between runs instead of
    # being faulted in fresh, e.g. the lens graph's convolution workspaces (its run 0.25 ->
    # 0.12 s, peak 216 -> 165 MB) and the strips of the upsampling (12 MP command 1.57 s and
    # 819 MB -> 1.54-1.59 s and 748 MB; with the subject blurred in front 2.13 -> 1.85 s).
    # (Session 4 had measured the arena without shrinking at 1.32 GB peak instead of 0.99.)
    # Depth models keep the default below: not measured with real weights here.
    so.enable_cpu_mem_arena = arena
    # onnxruntime's pool threads spin for a while after each parallel section by default:
    # between the graphs refocus works in numpy and OpenCV on the same cores, and the spinning
    # took them from it (12 MP render, 8 runs interleaved: CPU 2.77 -> 2.48 s near, wall the
    # same; 3.39 -> 2.76 s and wall 1.88 -> 1.70 s with the subject blurred in front)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


_ARENA_GRAPHS = ("lens_blur", "guided_upsample", "guided_upsample_behind")
_shrink = None


def shrink_after():
    """RunOptions that give the CPU arena's free memory back at the end of the run."""
    global _shrink
    if _shrink is None:
        import onnxruntime as ort
        ro = ort.RunOptions()
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        _shrink = ro
    return _shrink


def session_for_file(path: Path, device: str = "auto", arena: bool = False, cpu_optimize: bool = True):
    """A cached InferenceSession for an .onnx file (`arena`: with onnxruntime's CPU memory
    arena; run it with :func:`shrink_after`; `cpu_optimize` False: no graph optimization
    when only the CPU runs it)."""
    import onnxruntime as ort
    providers, _ = choose(device)
    optimize = cpu_optimize or providers != [PROVIDER_OF["cpu"]]
    key = (str(path), tuple(providers), arena, optimize)
    with _lock:
        if key not in _sessions:
            if not Path(path).is_file():
                raise ModelError(f"{path}: ONNX file not found")
            try:
                _sessions[key] = ort.InferenceSession(str(path), _session_options(arena, optimize),
                                                      providers=providers)
            except Exception as e:  # onnxruntime raises its own exception types
                raise ModelError(f"{path}: onnxruntime cannot load this graph ({e})") from e
        return _sessions[key]


def graph_session(name: str, device: str = "auto"):
    """Session of one of the project's own graphs, after checking its version stamp."""
    from refocus import onnx_models
    path = onnx_models.graph_path(name)
    rebuild = "rebuild it with: python -m refocus.onnx_models"
    if not path.is_file():
        raise ModelError(f"{path}: the {name} graph is missing; {rebuild}")
    sess = session_for_file(path, device, arena=name in _ARENA_GRAPHS, cpu_optimize=False)
    meta = sess.get_modelmeta().custom_metadata_map
    want = onnx_models.expected_version(name)
    got = meta.get("refocus_graph_version")
    if got != want:
        raise ModelError(f"{path}: graph version {got} does not match this refocus (needs {want}); {rebuild}")
    return sess


def graph_lines() -> list[str]:
    """One status line per project graph (for ``refocus info``)."""
    from refocus import onnx_models
    lines = []
    for name in sorted(onnx_models.GRAPH_VERSIONS):
        try:
            graph_session(name, "cpu")
            lines.append(f"graph {name} v{onnx_models.expected_version(name)}: ok ({onnx_models.graph_path(name)})")
        except ModelError as e:
            lines.append(f"graph {name}: PROBLEM: {e}")
    return lines


def describe() -> dict:
    import onnxruntime as ort
    providers, device = choose("auto")
    return {"onnxruntime": ort.__version__, "available_providers": available_providers(),
            "auto_device": device, "auto_providers": providers}
