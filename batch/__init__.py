"""Folder processing: ``refocus batch`` and its Python API.

    import refocus.batch
    report = refocus.batch.run(["photos/"], "out/", preset="portrait", formats=("jpg", "psd"),
                               overrides={"aperture": "f/1.8"}, recursive=True, jobs=2)
    print(report.summary()); report.write("report.json")

``run`` finds the photos (by content), names the outputs (folders mirrored, no collisions),
skips photos already done, renders the rest in worker processes and returns a
:class:`BatchReport`.  See ``docs/batch.md`` for the naming rule, resume semantics, the
report format and the choice of jobs.  Modules: :mod:`.discover` (inputs, names),
:mod:`.runner` (plan, pool, interruption, report), :mod:`.worker` (one photo),
:mod:`.progress` (terminal bar / log lines).
"""
from __future__ import annotations

__all__ = ["run", "BatchReport", "BatchInterrupted", "FORMATS", "default_jobs"]

_LAZY = {"run": "runner", "BatchReport": "runner", "BatchInterrupted": "runner", "default_jobs": "runner",
         "FORMATS": "discover"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'refocus.batch' has no attribute {name!r}")
