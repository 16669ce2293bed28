"""Presets: named sets of look parameters, stored as versioned JSON data files.

Where presets come from, in order (a later one with the same name wins):

1. built-ins shipped in this folder (``portrait.json``, ``historic.json`` ...);
2. user presets: ``*.json`` in the user config folder (``refocus presets path``), or in
   ``$REFOCUS_PRESETS`` when set;
3. a file given by path (``--preset-file PATH``).

A preset file::

    {"refocus_preset": 1, "name": "portrait", "description": "...",
     "settings": {"focus": "face", "strength": 2.0, ...}}

``refocus_preset`` is the format version; ``settings`` keys are parameters of
:mod:`refocus.params` (unknown keys are errors listing the valid ones).  Older versions
migrate forward from fresh defaults; newer ones are refused with a message.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError
from .. import params as _params

FORMAT_VERSION = 1
BUILTIN_DIR = Path(__file__).parent


class PresetError(BadInputError):
    """A preset is unknown, unreadable or invalid."""


@dataclass(frozen=True)
class Preset:
    name: str
    description: str = ""
    settings: dict = field(default_factory=dict)
    source: str = "built-in"            # "built-in", "user" or the file's path
    path: Path | None = None

    def resolve(self, overrides: dict | None = None) -> "_params.Settings":
        """The preset's settings with `overrides` (e.g. command-line flags) on top."""
        return _params.resolve(self.settings, overrides)


def user_dir() -> Path:
    env = os.environ.get("REFOCUS_PRESETS")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_config_dir("refocus")) / "presets"


def _migrate(data: dict, version: int, where: str) -> dict:
    # Version 1 is the first; future versions add steps here (old -> new) so old user
    # presets keep working.  Unknown keys are caught by params.check_keys.
    if version > FORMAT_VERSION:
        raise PresetError(f"{where}: preset format version {version} is newer than this refocus "
                          f"understands ({FORMAT_VERSION}); update refocus")
    return data


def load_file(path, *, source: str | None = None) -> Preset:
    """Read and validate one preset file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"{path}: preset file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetError(f"{path}: not a readable JSON preset ({e})") from None
    if not isinstance(data, dict) or "settings" not in data or not isinstance(data["settings"], dict):
        raise PresetError(f"{path}: a preset is a JSON object with a \"settings\" object")
    version = data.get("refocus_preset", 1)
    if not isinstance(version, int) or version < 1:
        raise PresetError(f"{path}: \"refocus_preset\" must be a positive whole number, got {version!r}")
    data = _migrate(data, version, str(path))
    extra = sorted(set(data) - {"refocus_preset", "name", "description", "settings"})
    if extra:
        raise PresetError(f"{path}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(extra)}; "
                          "valid: refocus_preset, name, description, settings")
    where = f"{path}: "
    try:
        _params.resolve(data["settings"], where=where)      # validate every value now
    except PresetError:
        raise
    except BadInputError as e:
        raise PresetError(str(e)) from None
    name = str(data.get("name") or path.stem)
    return Preset(name=name, description=str(data.get("description", "")), settings=dict(data["settings"]),
                  source=source or str(path), path=path)


def available() -> dict:
    """All presets by name: built-ins, then user presets (which may replace built-ins).

    A user preset file that cannot be used is left out (:func:`broken` says why), so one
    bad file in the user folder does not stop every other preset from working.
    """
    out = {}
    for p in sorted(BUILTIN_DIR.glob("*.json")):
        pr = load_file(p, source="built-in")
        out[pr.name] = pr
    _BROKEN.clear()
    udir = user_dir()
    if udir.is_dir():
        for p in sorted(udir.glob("*.json")):
            try:
                pr = load_file(p, source="user")
            except PresetError as e:
                _BROKEN[p.stem] = e
                continue
            out[pr.name] = pr
    return out


_BROKEN: dict = {}


def broken() -> dict:
    """User preset files the last :func:`available` had to leave out: {file stem: error}."""
    return dict(_BROKEN)


def get(name_or_path) -> Preset:
    """A preset by name (built-in or user), or from a ``.json`` path."""
    s = str(name_or_path)
    if s.lower().endswith(".json") or os.sep in s or "/" in s:
        return load_file(s)
    presets = available()
    if s not in presets:
        if s in _BROKEN:
            raise _BROKEN[s]
        raise PresetError(f"unknown preset {s!r}; available: {', '.join(sorted(presets))} "
                          "(or give a .json file)")
    return presets[s]


def describe(preset: Preset, *, all_values: bool = False) -> list:
    """Lines describing a preset for ``refocus presets show``: name, source, description,
    then one line per value it sets (``all_values``: every parameter, defaults marked)."""
    where = preset.source if preset.source in ("built-in", "user") else f"file {preset.source}"
    lines = [f"{preset.name} ({where}{', ' + str(preset.path) if preset.path and where == 'user' else ''})"]
    if preset.description:
        lines.append(f"  {preset.description}")
    s = preset.resolve()
    for p in _params.PARAMS:
        if p.name not in preset.settings and not all_values:
            continue
        v = getattr(s, p.name)
        text = "-" if v is None else (",".join(f"{c:g}" for c in v) if isinstance(v, tuple) else
                                      (f"f/{v:g}" if p.kind == "fnumber" else
                                       (("yes" if v else "no") if p.kind == "bool" else
                                        (f"{v:g}" if isinstance(v, float) else str(v)))))
        mark = "" if p.name in preset.settings else "   (default)"
        lines.append(f"  {p.cli_flag:<20} {text:<10} {p.label}{mark}")
    return lines


__all__ = ["Preset", "PresetError", "available", "describe", "get", "load_file", "user_dir", "FORMAT_VERSION"]
