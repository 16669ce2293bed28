"""Finding the photos of a batch and naming their outputs.

Inputs are files, folders and glob patterns.  A file is a photo when its first bytes say so
(:func:`refocus.io.sniff`: JPEG, PNG, TIFF, WebP, BMP, HEIC, camera raw), or when its
extension is that of a photo format (then reading it either works or gives a clear error:
a damaged ``.jpg`` is a failure to report, not a file to skip silently).  Everything else
is counted as "not an image" and skipped.  Hidden files (names starting with ``.``) are
ignored: they include refocus's own temporary files.

Output names (the rule is documented in ``docs/batch.md``)::

    <OUTDIR>/<folder of the photo relative to its input>/<stem><suffix>

* the folder structure below each input folder (or below the fixed part of a glob) is
  mirrored under OUTDIR; photos given one by one go to OUTDIR itself;
* ``<suffix>`` is ``.jpg``, ``.tif``, ``.png``, ``.ora``, ``.psd`` or ``.depth.png``;
* when two photos of a run would get the same output path (``IMG_1.CR2`` and ``IMG_1.JPG``
  in one folder; compared without regard to case, as on macOS and Windows), each of them
  keeps its own extension in the name: ``IMG_1.cr2.jpg`` and ``IMG_1.jpg.jpg``; when that
  does not separate them (the same name from two input folders), ``-2``, ``-3`` ... are
  added to all but the first in the order of the source paths (``p.jpg``, ``p-2.jpg``).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError

FORMATS = ("jpg", "tif", "png", "ora", "psd", "depth")
SUFFIX = {"jpg": ".jpg", "tif": ".tif", "png": ".png", "ora": ".ora", "psd": ".psd", "depth": ".depth.png"}
ALIASES = {"jpeg": "jpg", "tiff": "tif", "disparity": "depth"}
IMAGE_EXTS = {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".heif",
              ".hif", ".avif", ".mpo"}


@dataclass
class Source:
    """One file found in the inputs."""
    path: Path                       # as found (absolute)
    rel: Path                        # relative path below its input root (mirrored under OUTDIR)
    kind: str                        # sniffed format, or "unknown"
    is_photo: bool
    outputs: dict = field(default_factory=dict)      # format -> output Path (photos only)

    @property
    def display(self) -> str:
        return self.rel.as_posix()


def parse_formats(value) -> tuple:
    """``"jpg,psd"`` or a sequence -> ("jpg", "psd"), validated, in the order given."""
    if value is None:
        return ("jpg",)
    items = value.split(",") if isinstance(value, str) else [x for v in value for x in str(v).split(",")]
    out = []
    for item in items:
        f = item.strip().lower().lstrip(".")
        if not f:
            continue
        f = ALIASES.get(f, f)
        if f not in FORMATS:
            raise BadInputError(f"--format: unknown output format {item.strip()!r}; "
                                f"choose from {', '.join(FORMATS)} (comma-separated, e.g. jpg,psd)")
        if f not in out:
            out.append(f)
    if not out:
        raise BadInputError(f"--format: no output format given; choose from {', '.join(FORMATS)}")
    return tuple(out)


def _is_photo(path: Path) -> tuple[str, bool]:
    from ..io.raw import RAW_EXTS
    from ..io.read import sniff
    try:
        kind = sniff(path)
    except OSError:
        kind = "unknown"
    ext = path.suffix.lower()
    if kind != "unknown":
        return kind, True
    return kind, ext in IMAGE_EXTS or ext in RAW_EXTS


def _has_magic(s: str) -> bool:
    return glob.has_magic(s)


def _glob_root(pattern: str) -> Path:
    """The fixed folder part of a glob pattern (``photos/2024/*/IMG_*.jpg`` -> ``photos/2024``)."""
    parts = Path(pattern).parts
    fixed = []
    for p in parts[:-1]:
        if _has_magic(p):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path(".")


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def find_sources(inputs, *, recursive: bool = False, exclude: Path | None = None,
                 skipped_folders: list | None = None) -> list[Source]:
    """Every file named by `inputs` (files, folders, globs), photos and others, deduplicated.

    `exclude`: a folder (the output folder) whose contents are never taken as inputs.
    `skipped_folders`: a list that receives the sub-folders not searched (not `recursive`).
    Raises :class:`BadInputError` for an input that does not exist or a glob matching nothing.
    """
    exclude = Path(exclude).resolve() if exclude is not None else None
    found: dict = {}                  # resolved path -> Source (first input naming it wins)

    def add(path: Path, root: Path, explicit: bool = False):
        if path.name.startswith(".") and not explicit:
            return
        try:
            real = path.resolve()
        except OSError:
            real = path.absolute()
        if real in found or (_inside(real, exclude) and not explicit) or not path.is_file():
            return
        try:
            rel = path.absolute().relative_to(root.absolute())
        except ValueError:
            rel = Path(path.name)
        kind, photo = _is_photo(path)
        found[real] = Source(path=path.absolute(), rel=rel, kind=kind, is_photo=photo)

    def walk(folder: Path):
        if recursive:
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
                d = Path(dirpath)
                dirnames[:] = sorted(n for n in dirnames
                                     if not n.startswith(".") and not _inside((d / n).resolve(), exclude))
                for n in sorted(filenames):
                    add(d / n, folder)
        else:
            for p in sorted(folder.iterdir()):
                if p.is_dir():
                    if (skipped_folders is not None and not p.name.startswith(".")
                            and not _inside(p.resolve(), exclude)):
                        skipped_folders.append(p)
                    continue
                add(p, folder)

    for item in inputs:
        s = str(item)
        p = Path(s)
        if p.is_dir():
            walk(p)
        elif p.is_file():
            add(p, p.parent, explicit=True)
        elif _has_magic(s):
            root = _glob_root(s)
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise BadInputError(f"{s}: the pattern matches no file")
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    walk(mp)
                else:
                    add(mp, root)
        else:
            raise BadInputError(f"{s}: no such file or folder")
    return sorted(found.values(), key=lambda src: (src.rel.as_posix().lower(), str(src.path)))


def assign_outputs(sources: list[Source], outdir, formats) -> None:
    """Fill ``source.outputs`` for every photo following the naming rule (module docstring).

    An output that would be one of the input files counts as a collision too, so an input
    is never a planned output.
    """
    outdir = Path(outdir).absolute()
    photos = [s for s in sources if s.is_photo]
    taken_inputs = {str(s.path).lower() for s in sources}

    def paths(src: Source, base: str) -> dict:
        folder = outdir / src.rel.parent
        return {f: folder / (base + SUFFIX[f]) for f in formats}

    bases = {id(s): s.rel.stem for s in photos}

    def clashes() -> list:
        owners: dict = {}
        for s in photos:
            for p in paths(s, bases[id(s)]).values():
                owners.setdefault(str(p).lower(), []).append(s)
        groups = [g for g in owners.values() if len(g) > 1]
        groups += [[s] for s in photos
                   if any(str(p).lower() in taken_inputs for p in paths(s, bases[id(s)]).values())]
        return groups

    for group in clashes():                      # 1. keep the source's extension in the name
        exts = [s.rel.suffix.lower() for s in group]
        if len(set(exts)) == len(exts):
            for s in group:
                bases[id(s)] = s.rel.stem + s.rel.suffix.lower()
    for _ in range(len(photos) + 1):             # 2. number what still collides, in source order
        groups = clashes()
        if not groups:
            break
        used = {str(p).lower() for s in photos for p in paths(s, bases[id(s)]).values()} | taken_inputs
        group = sorted(groups[0], key=lambda x: str(x.path))
        movers = group if len(group) == 1 else group[1:]
        for s in movers:
            base, k = bases[id(s)], 2
            while any(str(p).lower() in used for p in paths(s, f"{base}-{k}").values()):
                k += 1
            bases[id(s)] = f"{base}-{k}"
            used |= {str(p).lower() for p in paths(s, bases[id(s)]).values()}
    for s in photos:
        s.outputs = paths(s, bases[id(s)])


def part_files(output: Path) -> list[Path]:
    """Temporary files an interrupted write of `output` may have left (``.<name>.*.part``)."""
    folder = output.parent
    if not folder.is_dir():
        return []
    return sorted(folder.glob(glob.escape("." + output.name) + ".*.part"))
