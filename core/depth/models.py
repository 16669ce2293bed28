"""The depth-model registry, the model cache folder, downloads and verification.

The registry is data (``registry.json`` beside this file): one record per supported model
with its download URL(s), size, sha256 (``null`` where no trusted value is known yet),
licence and the name of its *family*, whose record holds the input rules (resize,
normalisation) and the meaning of the output.  Tensor names and dtypes listed there are
informational: :mod:`refocus.depth.estimate` reads them from the loaded session.

Cache folder: ``$REFOCUS_HOME/models`` when ``REFOCUS_HOME`` is set, else
``<platformdirs user data dir>/refocus/models``.  A model NAME lives there as
``NAME.onnx``, with ``NAME.json`` beside it (sha256, size, URL, whether the hash was
pinned by the registry) and ``NAME.part`` while a download is incomplete.

Downloads use the standard library (``urllib.request``) on purpose: an HTTP ``Range``
request is one header, urllib follows the Hugging Face / GitHub redirects to their CDNs
and keeps that header, and it adds no dependency.  ``requests`` would work as well but
brings four packages for nothing we need; ``pooch`` cannot resume.  The progress bar is
``tqdm``, shown only when stderr is a terminal.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError, ModelError

REGISTRY_FILE = Path(__file__).with_name("registry.json")
DOWNLOAD_COMMAND = "refocus models download {name}"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable model (a record of the registry), or an .onnx file given by path."""
    name: str
    title: str
    family: str | None
    urls: tuple = ()
    size_mb: float | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    license: str = ""
    license_url: str = ""
    input: dict = field(default_factory=dict)
    output: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    path: Path | None = None          # set for a user's file (--model PATH)

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)


_registry_cache: dict | None = None


def load_registry() -> dict:
    """The registry as {name: ModelSpec}, in the file's order (the default first)."""
    global _registry_cache
    if _registry_cache is None:
        try:
            data = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))
            families = data["families"]
            specs = {}
            for rec in data["models"]:
                fam = families[rec["family"]]
                specs[rec["name"]] = ModelSpec(
                    name=rec["name"], title=rec["title"], family=rec["family"], urls=tuple(rec["urls"]),
                    size_mb=rec.get("size_mb"), size_bytes=rec.get("size_bytes"), sha256=rec.get("sha256"),
                    license=rec.get("license", ""), license_url=rec.get("license_url", ""),
                    input=dict(fam["input"]), output=dict(fam["output"]), tensors=dict(rec.get("tensors", {})))
            default = data["default"]
            if default not in specs:
                raise KeyError(f"default {default!r} is not a model")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{REGISTRY_FILE}: the model registry is damaged ({e}); reinstall refocus") from None
        specs = {default: specs[default], **{k: v for k, v in specs.items() if k != default}}
        _registry_cache = specs
    return _registry_cache


def default_name() -> str:
    return next(iter(load_registry()))


def get_spec(name: str) -> ModelSpec:
    reg = load_registry()
    if name not in reg:
        raise BadInputError(f"--model: unknown model {name!r}; known models: {', '.join(reg)} "
                            "(or give the path of an .onnx file)")
    return reg[name]


# -- the cache folder ---------------------------------------------------------------------------

def home() -> Path:
    """refocus' data folder: $REFOCUS_HOME, else the platform's user data dir."""
    env = os.environ.get("REFOCUS_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_data_dir("refocus", appauthor=False))


def models_dir() -> Path:
    return home() / "models"


def model_path(name: str) -> Path:
    return models_dir() / get_spec(name).filename


def part_path(name: str) -> Path:
    return models_dir() / f"{name}.part"


def record_path(name: str) -> Path:
    return models_dir() / f"{name}.json"


def is_installed(name: str) -> bool:
    return model_path(name).is_file()


def installed() -> list[str]:
    """Names of the registry models present in the cache, registry order (default first)."""
    return [n for n in load_registry() if is_installed(n)]


def read_record(name: str) -> dict | None:
    try:
        return json.loads(record_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def looks_like_path(s: str) -> bool:
    return s.lower().endswith(".onnx") or os.sep in s or (os.altsep or "\0") in s or Path(s).is_file()


def resolve(name_or_path: str | os.PathLike | None) -> tuple[ModelSpec, Path]:
    """(spec, file) of an installed model NAME, of an .onnx PATH, or (None) of the first installed model.

    Raises ModelError naming the download command when the model is not installed.
    """
    if name_or_path is None:
        names = installed()
        if not names:
            raise ModelError(f"no depth model is installed in {models_dir()}; install the default one with: "
                             f"{DOWNLOAD_COMMAND.format(name=default_name())}")
        return get_spec(names[0]), model_path(names[0])
    s = os.fspath(name_or_path)
    if s in load_registry():
        spec = get_spec(s)
        path = model_path(s)
        if not path.is_file():
            raise ModelError(f"model {s} is not installed (expected {path}); install it with: "
                             f"{DOWNLOAD_COMMAND.format(name=s)}")
        return spec, path
    if looks_like_path(s):
        path = Path(s).expanduser()
        if not path.is_file():
            raise BadInputError(f"--model: {path}: file not found (expected an .onnx depth model)")
        return ModelSpec(name=path.stem, title=path.name, family=None, path=path), path
    get_spec(s)      # raises the "unknown model" error
    raise AssertionError("unreachable")


# -- hashing and verification -----------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Check:
    name: str
    path: Path
    status: str            # "ok", "mismatch", "unchecked", "missing", "partial"
    message: str


def verify(name: str | None = None) -> list[Check]:
    """Check installed models against the registry's pinned sha256 or the hash recorded at download."""
    names = [get_spec(name).name] if name else list(load_registry())
    checks = []
    for n in names:
        path = model_path(n)
        spec = get_spec(n)
        if not path.is_file():
            part = part_path(n)
            if part.is_file():
                checks.append(Check(n, part, "partial", f"incomplete download ({part.stat().st_size} bytes); "
                                    f"resume it with: {DOWNLOAD_COMMAND.format(name=n)}"))
            elif name:
                checks.append(Check(n, path, "missing", f"not installed; install it with: "
                                    f"{DOWNLOAD_COMMAND.format(name=n)}"))
            continue
        digest = sha256_file(path)
        rec = read_record(n) or {}
        if spec.sha256:
            want, origin = spec.sha256, "pinned in the registry"
        elif rec.get("sha256"):
            want, origin = rec["sha256"], f"recorded at download in {record_path(n)}"
        else:
            checks.append(Check(n, path, "unchecked", f"sha256 {digest}: no reference hash (not pinned in the "
                                "registry and not downloaded by refocus)"))
            continue
        if digest == want:
            checks.append(Check(n, path, "ok", f"sha256 {digest} ({origin})"))
        else:
            checks.append(Check(n, path, "mismatch", f"sha256 {digest} but expected {want} ({origin}); the file "
                                f"is damaged or was replaced: delete it and run {DOWNLOAD_COMMAND.format(name=n)}"))
    return checks


# -- downloading --------------------------------------------------------------------------------

class _Unreachable(Exception):
    """The server could not be reached at all (offline, DNS, refused): try the next URL."""


def _atomic_text(path: Path, text: str) -> None:
    from ..imageio import atomic_write
    atomic_write(path, text.encode("utf-8"))


def _progress_bar(total, initial, desc, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:       # tqdm is a dependency, but a bar is not worth failing a download for
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                file=sys.stderr, leave=True)


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, desc: str) -> int:
    """Download `url` into `part`, resuming from its current length.  Returns the final size."""
    from .._version import __version__
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"refocus/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:          # nothing left beyond what we have: the part is complete
            return have
        raise ModelError(f"{url}: the server answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise _Unreachable(f"{url}: {reason}") from None
    with resp:
        total = None
        if have and resp.status == 206:
            # Content-Range: bytes START-END/TOTAL
            cr = resp.headers.get("Content-Range", "")
            try:
                start = int(cr.split()[1].split("-")[0])
                total = int(cr.rsplit("/", 1)[1]) if not cr.endswith("/*") else None
            except (IndexError, ValueError):
                start = -1
            if start != have:
                raise ModelError(f"{url}: the server resumed at the wrong offset ({cr!r}, wanted byte {have}); "
                                 f"delete {part} and try again")
            mode = "ab"
        else:
            mode, have = "wb", 0            # a 200 answer: the server sends the whole file again
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        done = have
        bar = _progress_bar(total, have, desc, progress)
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    if bar is not None:
                        bar.update(len(block))
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            if isinstance(e, OSError) and not isinstance(e, (ConnectionError, socket.timeout)) \
                    and getattr(e, "errno", None) is not None:
                raise ModelError(f"{part}: cannot write the download ({e})") from None
            raise ModelError(f"{url}: the transfer was interrupted after {done} bytes ({e}); run the same "
                             "command again to resume") from None
        finally:
            if bar is not None:
                bar.close()
    if total is not None and done != total:
        raise ModelError(f"{url}: the transfer was interrupted after {done} of {total} bytes; run the same "
                         "command again to resume")
    return done


def download(name: str, *, url: str | None = None, force: bool = False, progress: bool | None = None,
             timeout: float = 30.0, spec: ModelSpec | None = None, log=None) -> Path:
    """Download model `name` into the cache: resumable, verified, moved into place atomically.

    ``url`` replaces the registry's URLs (a mirror).  The file is streamed to ``NAME.part``
    (an existing one is resumed with an HTTP Range request), its size and sha256 are
    checked, and only then is it renamed to ``NAME.onnx``.  For a model whose hash the
    registry does not pin, the computed hash is recorded in ``NAME.json`` so that
    ``verify`` detects later changes.  ``log`` receives one-line messages.
    """
    spec = spec or get_spec(name)
    log = log or (lambda msg: None)
    folder = models_dir()
    final = folder / spec.filename
    if final.is_file() and not force:
        log(f"{spec.name} is already installed: {final}")
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"{folder}: cannot create the model folder ({e.strerror}); set REFOCUS_HOME to a "
                         "writable folder") from None
    part = folder / f"{spec.name}.part"
    if progress is None:
        progress = sys.stderr.isatty()
    urls = [url] if url else list(spec.urls)
    unreachable = []
    t0 = time.perf_counter()
    for u in urls:
        try:
            if part.is_file():
                log(f"resuming {spec.name} from byte {part.stat().st_size}: {u}")
            else:
                log(f"downloading {spec.name}: {u}")
            size = _fetch(u, part, timeout=timeout, progress=progress, desc=spec.name)
            break
        except _Unreachable as e:
            unreachable.append(str(e))
    else:
        raise ModelError(f"cannot download {spec.name}: no network? ({'; '.join(unreachable)}). To install it "
                         f"by hand, fetch {urls[0]} on a connected machine and copy it to {final}, then check it "
                         f"with: refocus models verify {spec.name}")
    if spec.size_bytes and size != spec.size_bytes:
        part.unlink()
        raise ModelError(f"{spec.name}: downloaded {size} bytes but the registry says {spec.size_bytes}; the "
                         "partial file was removed, try again")
    digest = sha256_file(part)
    if spec.sha256 and digest != spec.sha256:
        part.unlink()
        raise ModelError(f"{spec.name}: sha256 mismatch: expected {spec.sha256}, got {digest} ({size} bytes from "
                         f"{u}); the file was discarded. The source may be corrupt or changed; try again later "
                         "or use another --url")
    record = {"name": spec.name, "sha256": digest, "size": size, "url": u, "pinned": spec.pinned,
              "downloaded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _atomic_text(folder / f"{spec.name}.json", json.dumps(record, indent=2) + "\n")
    os.replace(part, final)
    if spec.pinned:
        log(f"{spec.name}: sha256 verified ({digest}), {size} bytes in {time.perf_counter() - t0:.1f} s -> {final}")
    else:
        log(f"{spec.name}: unpinned model (the registry has no sha256 for it); computed sha256 {digest} "
            f"recorded in {folder / (spec.name + '.json')} -> {final}")
    return final
