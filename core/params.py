"""The look parameters of refocus, declared once.

Each :class:`Param` carries its type, default, range or choices, label and help.  The same
declarations drive

* validation (:func:`resolve` -> a frozen :class:`Settings`; messages name the parameter),
* the presets (``refocus/presets/*.json``: unknown keys are errors listing the valid ones),
* the command-line options of ``refocus batch`` (:func:`click_options`), and
* the GIMP dialog and PDB arguments (:func:`gimp_arguments`),

so the three never drift.  Output choices (formats, quality, overwrite ...) are not look
parameters and live with the commands.

Values given as ``None`` mean "not set": the preset's value, or else the default, applies.
Explicit values always win over the preset's.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, make_dataclass
from typing import Any

from .errors import BadInputError

PARAMS_VERSION = 1            # bump when a parameter changes meaning; presets migrate forward


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` is float, int, bool, choice, str, point or fnumber."""
    name: str
    kind: str
    default: Any
    help: str
    group: str
    label: str = ""
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    flag: str | None = None           # CLI flag; None -> "--" + name with dashes
    gimp: bool = True                 # shown in the GIMP dialog / PDB arguments

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def parse(self, value, *, where: str = ""):
        """Convert `value` (a Python value or the text of a flag) to this parameter's type.

        ``None`` stays ``None`` (not set).  Raises :class:`BadInputError` naming the
        parameter, the value and what is allowed.
        """
        if value is None:
            return None
        name = f"{where}{self.name}" if where else self.cli_flag
        k = self.kind
        try:
            if k == "float":
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
            elif k == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                v = int(value)
            elif k == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError
                    v = low in ("1", "true", "yes", "on")
                else:
                    v = bool(value)
            elif k == "choice":
                v = str(value).strip().lower()
                if v not in self.choices:
                    raise BadInputError(f"{name}: {value!r} is not one of {', '.join(self.choices)}")
            elif k == "str":
                v = str(value)
            elif k == "point":
                v = parse_point(value)
            elif k == "fnumber":
                v = parse_fnumber(value)
            else:                                                   # pragma: no cover
                raise AssertionError(k)
        except BadInputError:
            raise
        except (TypeError, ValueError):
            raise BadInputError(f"{name}: {value!r} is not a valid {_KIND_TEXT[k]}") from None
        if k in ("float", "int", "fnumber"):
            if self.min is not None and v < self.min or self.max is not None and v > self.max:
                raise BadInputError(f"{name}: {v} is out of range ({_fmt(self.min)}..{_fmt(self.max)})")
        return v


_KIND_TEXT = {"float": "number", "int": "whole number", "bool": "yes/no value", "choice": "choice",
              "str": "text", "point": "point X,Y (pixels, or fractions 0..1 of the width and height)",
              "fnumber": "f-number such as f/1.8"}


def _fmt(v):
    return "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def parse_point(value) -> tuple:
    """``"X,Y"`` or a pair -> (x, y) floats; values <= 1 are fractions of the width/height."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    else:
        parts = list(value)
    if len(parts) != 2:
        raise ValueError
    x, y = float(parts[0]), float(parts[1])
    if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
        raise ValueError
    return (x, y)


def parse_fnumber(value) -> float:
    """``"f/1.8"``, ``"F1.8"``, ``"1.8"`` or 1.8 -> 1.8."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(?:f\s*/?\s*)?([0-9]*\.?[0-9]+)\s*", value, re.IGNORECASE)
        if not m:
            raise ValueError
        value = m.group(1)
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError
    return v


PARAMS: tuple = (
    # -- depth ------------------------------------------------------------------------------
    Param("depth", "choice", "auto", group="depth", label="Depth source",
          choices=("auto", "embedded", "model", "fallback"), flag="--depth-source",
          help="Where the depth map comes from: auto (depth stored in the photo, else an installed "
               "model, else the offline default), embedded, model or fallback."),
    Param("model", "str", None, group="depth", label="Depth model", gimp=False,
          help="Depth model name from `refocus models list`, or a path to a compatible .onnx file."),
    # -- focus ------------------------------------------------------------------------------
    Param("focus", "choice", "auto", group="focus", label="Focus",
          choices=("auto", "face", "point", "disparity", "subject", "band", "edge"),
          help="How the focal plane is chosen: auto (faces, else the salient subject, else the "
               "nearest strong edge, else the centre), face (the main face's eyes), point "
               "(--focus-point), disparity (--focus-disparity), subject (the subject mask or "
               "selection), band (tilt-shift: a horizontal band in focus), edge (the nearest "
               "strong edge)."),
    Param("focus_point", "point", None, group="focus", label="Focus point",
          help="X,Y of the point to focus on, in pixels, or fractions (0..1) of width and height."),
    Param("focus_disparity", "float", None, group="focus", label="Focus disparity", min=0.0, max=1.0,
          help="Disparity of the focal plane, 0 = farthest .. 1 = nearest."),
    Param("focus_range", "float", 0.0, group="focus", label="Depth of field", min=0.0, max=1.0,
          help="Depth of the zone kept fully sharp around the focal plane, in disparity units "
               "(0 = a focal plane; 0.1 keeps a group of people sharp)."),
    Param("band_center", "float", None, group="focus", label="Band centre", min=0.0, max=1.0,
          help="Tilt-shift: height of the sharp band's centre, fraction of the image from the top "
               "(default: from the focus point or subject)."),
    Param("band_width", "float", 0.15, group="focus", label="Band width", min=0.0, max=1.0,
          help="Tilt-shift: height of the sharp band, fraction of the image height."),
    # -- lens -------------------------------------------------------------------------------
    Param("strength", "float", 1.5, group="lens", label="Blur strength", min=0.0, max=20.0,
          help="Blur strength relative to the image: blur radius per unit of disparity, in percent "
               "of the image's longer side (1.5 on a 4000-pixel photo = 60 px)."),
    Param("blur", "float", None, group="lens", label="Blur (pixels)", min=0.0, max=2000.0,
          help="Blur strength K in pixels: CoC radius per unit disparity at the photo's resolution. "
               "Overrides --strength and --aperture."),
    Param("aperture", "fnumber", None, group="lens", label="Virtual aperture (f-number)",
          min=0.5, max=64.0,
          help="A virtual lens: f-number such as f/1.8, used with the photo's focal length and "
               "sensor size (EXIF) so the blur scales like a real lens; without EXIF a relative "
               "strength is used instead (and the run says so)."),
    Param("shape", "choice", "circle", group="lens", label="Aperture shape",
          choices=("circle", "polygon"),
          help="Shape of the bokeh discs: circle, or a polygon with --blades blades."),
    Param("blades", "int", 6, group="lens", label="Blades", min=3, max=16,
          help="Number of aperture blades of a polygon aperture (real lenses have 5..9)."),
    Param("rotation", "float", 0.0, group="lens", label="Rotation", min=-360.0, max=360.0,
          help="Rotation of the polygon aperture, degrees."),
    Param("highlight_gain", "float", 6.0, group="lens", label="Highlight boost", min=1.0, max=20.0,
          help="Energy given back to clipped light sources so they bloom into bright bokeh "
               "(1 = off)."),
    # -- finishing --------------------------------------------------------------------------
    Param("grain", "float", 0.0, group="finish", label="Grain", min=0.0, max=2.0,
          help="Re-synthesise the photo's grain/noise in blurred areas (1 = matched to the "
               "photo; 0 = off), so blur does not look plastic next to film grain."),
    Param("texture", "float", 0.0, group="finish", label="Keep texture", min=0.0, max=1.0,
          help="Fraction of the fine texture (canvas, brush strokes, paper) kept in blurred areas."),
    Param("keep_border", "bool", False, group="finish", label="Keep borders sharp",
          help="Leave scanner borders and frames around the picture sharp."),
    Param("saturation", "float", 1.0, group="finish", label="Saturation", min=0.0, max=3.0,
          help="Colour saturation of the result (miniature looks use about 1.3)."),
)

BY_NAME = {p.name: p for p in PARAMS}
GROUPS = ("depth", "focus", "lens", "finish")

Settings = make_dataclass(
    "Settings", [(p.name, Any, p.default) for p in PARAMS], frozen=True,
    namespace={"__doc__": "Resolved look parameters (see refocus.params.PARAMS).",
               "as_dict": lambda self: {f.name: getattr(self, f.name) for f in fields(self)},
               "__module__": __name__})


def check_keys(values: dict, *, where: str = "") -> None:
    """Raise if `values` has a key that is not a parameter, listing the valid ones."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise BadInputError(f"{where}unknown parameter{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}; valid: {', '.join(BY_NAME)}")


def resolve(*layers: dict | None, where: str = "") -> Settings:
    """Merge parameter dicts (later ones win; ``None`` values do not override) into Settings.

    Typical: ``resolve(preset_values, command_line_values)``.  Every value is parsed and
    range-checked; unknown keys raise :class:`BadInputError`.

    Explicit values win over the layers below them, the focus too: a layer that gives a
    focus point or a focus disparity but no focus mode, over a mode that would not use it
    (``portrait``'s ``face``, say), switches the mode to ``point`` or ``disparity``.  A
    ``band`` (tilt-shift) keeps its band, which a point places.
    """
    merged = {}
    for layer in layers:
        if not layer:
            continue
        check_keys(layer, where=where)
        parsed = {k: BY_NAME[k].parse(v, where=where) for k, v in layer.items()}
        parsed = {k: v for k, v in parsed.items() if v is not None}
        if "focus" not in parsed and merged:
            mode = merged.get("focus", BY_NAME["focus"].default)
            if "focus_disparity" in parsed and mode not in ("auto", "disparity"):
                parsed["focus"] = "disparity"
            elif "focus_point" in parsed and mode not in ("auto", "point", "band"):
                parsed["focus"] = "point"
        merged.update(parsed)
    return Settings(**merged)


def click_options(*, exclude: tuple = ()):
    """Decorator adding one click option per parameter (default None: the preset decides)."""
    import click

    def deco(f):
        for p in reversed(PARAMS):
            if p.name in exclude:
                continue
            kw = {"default": None, "help": p.help + (f"  [default: {_fmt(p.default)}]"
                                                    if p.default not in (None, "") else "")}
            if p.kind == "bool":
                f = click.option(f"{p.cli_flag}/--no-{p.cli_flag[2:]}", p.name, **kw)(f)
                continue
            if p.kind == "choice":
                kw["type"] = click.Choice(p.choices, case_sensitive=False)
            elif p.kind == "int":
                kw["type"] = int
            elif p.kind == "float":
                kw["type"] = float
            kw["metavar"] = {"point": "X,Y", "fnumber": "f/N"}.get(p.kind)
            f = click.option(p.cli_flag, p.name, **kw)(f)
        return f
    return deco


def gimp_arguments() -> list:
    """Plain records for the GIMP plug-in (no click/numpy needed): one dict per parameter."""
    out = []
    for p in PARAMS:
        if not p.gimp:
            continue
        out.append({"name": p.name.replace("_", "-"), "key": p.name, "kind": p.kind,
                    "label": p.label or p.name, "help": p.help, "default": p.default,
                    "min": p.min, "max": p.max, "choices": list(p.choices), "group": p.group})
    return out
