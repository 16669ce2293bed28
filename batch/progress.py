"""What ``refocus batch`` shows while it runs.

On a terminal: a tqdm progress bar (photos done / to do, the current photo and stage, time
left); messages (failures, notices, ``--verbose`` decisions) are printed above it.  When
stderr is not a terminal (a log file, a pipe, CI): one plain line per photo.  ``quiet``:
only failures.  Everything goes to stderr; the summary line is printed by the command.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def _short(path: str, outdir: str) -> str:
    try:
        return Path(path).relative_to(outdir).as_posix()
    except ValueError:
        return str(path)


class Reporter:
    """A ``progress`` callable for :func:`refocus.batch.run` (see the module docstring)."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, stream=None, bar: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.use_bar = (isatty if bar is None else bar) and not quiet
        self.bar = None
        self.todo = 0
        self.n = 0
        self.outdir = ""
        self.current: dict = {}            # index -> (source, stage)
        self._notices: set = set()
        self.t0 = time.perf_counter()

    # -- output helpers
    def _line(self, text: str):
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def _postfix(self):
        if self.bar is None:
            return
        if self.current:
            src, stage = list(self.current.values())[-1]
            more = f" (+{len(self.current) - 1})" if len(self.current) > 1 else ""
            self.bar.set_postfix_str(f"{src}{more}: {stage}", refresh=True)
        else:
            self.bar.set_postfix_str("", refresh=True)

    # -- events
    def __call__(self, ev: dict):
        kind = ev["event"]
        getattr(self, "on_" + kind.replace("-", "_"), lambda ev: None)(ev)

    def on_start(self, ev):
        self.todo = ev["todo"]
        self.outdir = ev["report"].outdir
        if ev.get("dry_run") or self.quiet:
            return
        if not ev["total"]:
            self._line("refocus batch: no photos found in the inputs")
        head = (f"refocus batch: {ev['total']} photos, {ev['todo']} to do, {ev['skipped']} already done"
                + (f", {ev['not_images']} other files skipped" if ev["not_images"] else "")
                + f"; {ev['jobs']} job{'s' if ev['jobs'] > 1 else ''}")
        self._line(head)
        nf = ev["report"].folders_not_searched
        if nf:
            self._line(f"refocus batch: {nf} sub-folder{'s' if nf > 1 else ''} not searched "
                       "(add --recursive to include them)")
        if self.use_bar and self.todo:
            from tqdm import tqdm
            self.bar = tqdm(total=self.todo, unit="photo", file=self.stream, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}")

    def on_file_start(self, ev):
        self.current[ev["index"]] = (ev["source"], "start")
        self._postfix()

    def on_stage(self, ev):
        self.current[ev["index"]] = (ev["source"], ev["stage"])
        self._postfix()

    def on_notice(self, ev):
        text = ev["text"]
        if text in self._notices:
            return
        self._notices.add(text)
        if not self.quiet:
            self._line(text)

    def on_file_end(self, ev):
        rec = ev["record"]
        self.current.pop(ev["index"], None)
        self.n += 1
        pos = f"[{self.n}/{self.todo}]"
        if rec["status"] == "failed":
            self._line(f"{pos} {rec['rel']}: FAILED: {rec['error']}")
        elif not self.quiet:
            if self.bar is None or self.verbose:
                outs = ", ".join(_short(p, self.outdir) for p in rec.get("written") or [])
                self._line(f"{pos} {rec['rel']}: done in {rec['seconds']:.1f} s -> {outs}")
            if self.verbose:
                for note in rec.get("notes") or []:
                    self._line(f"    {note}")
        if self.bar is not None:
            self.bar.update(1)
            self._postfix()

    def on_stopping(self, ev):
        if ev.get("busy"):
            self._line(f"refocus batch: stopping {ev['busy']} worker{'s' if ev['busy'] > 1 else ''} ...")

    def on_end(self, ev):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def dry_run_lines(report) -> list[str]:
    """What a dry run would do, one line per file."""
    lines = []
    for f in report.files:
        st = f["status"]
        if st == "planned":
            todo = f.get("to_write") or f["outputs"]
            outs = ", ".join(_short(p, report.outdir) for p in todo)
            there = len(f["outputs"]) - len(todo)
            lines.append(f"render   {f['rel']} -> {outs}" + (f" ({there} already there)" if there else ""))
        elif st == "skipped":
            lines.append(f"skip     {f['rel']} (outputs already there)")
        elif st == "not-image":
            lines.append(f"ignore   {f['rel']} (not an image)")
    if report.folders_not_searched:
        lines.append(f"({report.folders_not_searched} sub-folder(s) not searched; add --recursive to include them)")
    return lines
