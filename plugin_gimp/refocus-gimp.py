#!/usr/bin/env python3
"""refocus for GIMP 3: synthetic shallow depth of field.

Filters > Blur > Refocus (Depth of Field)...  and  Filters > Blur > Depth Map (refocus)...

Installed by ``refocus gimp install`` next to ``refocus-gimp.json`` (the parameter
declarations of refocus, generated at install time, and the Python that runs refocus) and
``refocus_bridge.py`` (the worker client).  This file imports only the standard library and
GIMP's introspection modules, so GIMP's start-up scan is fast and cannot fail on a missing
numpy or onnxruntime; the work runs in refocus's own Python (a worker process), or in
GIMP's Python when that can import refocus.
"""
import json
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

PLUGIN = "refocus-gimp"
PROC_REFOCUS = "plug-in-refocus"
PROC_DEPTH = "plug-in-refocus-depth-map"
HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_PATH = os.path.join(HERE, PLUGIN + ".json")
BRIDGE_PATH = os.path.join(HERE, "refocus_bridge.py")
GROUP_ORDER = ("focus", "lens", "depth", "finish")
RW = GObject.ParamFlags.READWRITE


class PluginError(Exception):
    pass


def load_config():
    """The install record, or None when it is missing or unreadable (the scan must not fail)."""
    try:
        with open(CONFIG_PATH, encoding="utf-8") as f:
            cfg = json.load(f)
        return cfg if isinstance(cfg, dict) and "refocus_gimp" in cfg else None
    except (OSError, ValueError):
        return None


def load_bridge():
    import importlib.util
    spec = importlib.util.spec_from_file_location("refocus_bridge", BRIDGE_PATH)
    if spec is None or not os.path.isfile(BRIDGE_PATH):
        raise PluginError(f"{BRIDGE_PATH} is missing; run `refocus gimp install` again")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _choice(values, labels=None):
    c = Gimp.Choice.new()
    for i, v in enumerate(values):
        c.add(v, i, (labels or {}).get(v, v), "")
    return c


def _is_optional(p):
    return p["kind"] in ("str", "point", "fnumber") or p["default"] is None     # as bridge.is_optional


def add_param(proc, p):
    """One refocus parameter (a record of refocus.params.gimp_arguments) as a PDB argument."""
    name, label, blurb, kind, default = p["name"], p["label"], p["help"], p["kind"], p["default"]
    if _is_optional(p):
        # no value is a valid choice ("automatic"): GIMP arguments cannot be None, so text
        proc.add_string_argument(name, label, blurb + " Leave empty for automatic.",
                                 "" if default is None else str(default), RW)
    elif kind == "float":
        lo = -1e9 if p["min"] is None else float(p["min"])
        hi = 1e9 if p["max"] is None else float(p["max"])
        proc.add_double_argument(name, label, blurb, lo, hi, float(default), RW)
    elif kind == "int":
        lo = -(2 ** 31) if p["min"] is None else int(p["min"])
        hi = 2 ** 31 - 1 if p["max"] is None else int(p["max"])
        proc.add_int_argument(name, label, blurb, lo, hi, int(default), RW)
    elif kind == "bool":
        proc.add_boolean_argument(name, label, blurb, bool(default), RW)
    elif kind == "choice":
        proc.add_choice_argument(name, label, blurb, _choice(p["choices"]), str(default), RW)
    else:
        proc.add_string_argument(name, label, blurb, "" if default is None else str(default), RW)


def _safe_add(proc, p):
    """add_param, but a declaration this script does not understand (a newer refocus) is
    skipped with a warning instead of breaking GIMP's scan of the plug-in."""
    try:
        add_param(proc, p)
    except Exception as e:
        print(f"refocus-gimp: skipped argument {p.get('name')!r}: {e}; run `refocus gimp install` again",
              file=sys.stderr)


def _preset_names(cfg):
    import re
    return [n for n in cfg.get("presets", []) if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", n)]


def _ordered(params):
    return sorted(params, key=lambda p: GROUP_ORDER.index(p.get("group")) if p.get("group") in GROUP_ORDER else 9)


# ------------------------------------------------------------------------ pixels in and out
def _format(drawable, base):
    return base + ("A" if drawable.has_alpha() else "") + " float"


def read_pixels(drawable):
    w, h = drawable.get_width(), drawable.get_height()
    fmt = _format(drawable, "Y" if drawable.is_gray() else "RGB")      # linear light
    chans = (1 if drawable.is_gray() else 3) + (1 if drawable.has_alpha() else 0)
    data = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt, Gegl.AbyssPolicy.NONE)
    return bytes(data), [h, w, chans], fmt


def read_selection(image, drawable):
    """The selection over the drawable's extent (image coordinates), or None when empty."""
    if Gimp.Selection.is_empty(image):
        return None
    w, h = drawable.get_width(), drawable.get_height()
    _, ox, oy = drawable.get_offsets()
    sel = image.get_selection()
    data = sel.get_buffer().get(Gegl.Rectangle.new(ox, oy, w, h), 1.0, "Y float", Gegl.AbyssPolicy.NONE)
    return bytes(data), [h, w, 1]


def read_depth_layer(layer, drawable):
    """A layer used as depth map, over the drawable's extent; grey values as displayed (0..1)."""
    w, h = drawable.get_width(), drawable.get_height()
    _, ox, oy = drawable.get_offsets()
    _, lx, ly = layer.get_offsets()
    data = layer.get_buffer().get(Gegl.Rectangle.new(ox - lx, oy - ly, w, h), 1.0, "Y' float",
                                  Gegl.AbyssPolicy.CLAMP)
    return bytes(data), [h, w, 1]


def new_layer(image, drawable, name, data, fmt, *, alpha, parent, position=0, visible=True):
    """A layer the size and position of `drawable`, filled with `data` (float bytes in `fmt`)."""
    w, h = drawable.get_width(), drawable.get_height()
    _, ox, oy = drawable.get_offsets()
    grey = image.get_base_type() == Gimp.ImageBaseType.GRAY
    if grey:
        kind = Gimp.ImageType.GRAYA_IMAGE if alpha else Gimp.ImageType.GRAY_IMAGE
    else:
        kind = Gimp.ImageType.RGBA_IMAGE if alpha else Gimp.ImageType.RGB_IMAGE
    layer = Gimp.Layer.new(image, name, w, h, kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, parent, position)
    layer.set_offsets(ox, oy)
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), fmt, data)
    buf.flush()
    layer.update(0, 0, w, h)
    layer.set_visible(visible)
    return layer


# ------------------------------------------------------------------------ the work
def _source_file(image, drawable):
    """The photo's file when the layer is the whole picture (EXIF lens data, embedded depth)."""
    _, ox, oy = drawable.get_offsets()
    if ox or oy or drawable.get_width() != image.get_width() or drawable.get_height() != image.get_height():
        return None
    for getter in ("get_imported_file", "get_file"):          # a JPEG opened in GIMP is "imported"
        f = getattr(image, getter)() if hasattr(image, getter) else None
        path = f.get_path() if f is not None else None
        if path and os.path.isfile(path) and not path.lower().endswith((".xcf", ".xcf.gz", ".xcf.bz2")):
            return path
    return None


def _metadata(image, drawable):
    """GIMP's metadata of the image (EXIF lens data) when the layer is the whole picture."""
    _, ox, oy = drawable.get_offsets()
    if ox or oy or drawable.get_width() != image.get_width() or drawable.get_height() != image.get_height():
        return None
    try:
        md = image.get_metadata()
        return md.serialize() if md is not None else None
    except Exception:                                   # metadata is optional
        return None


def _one_layer(drawables):
    if len(drawables) != 1:
        raise PluginError(f"refocus works on one layer at a time; {len(drawables)} are selected")
    d = drawables[0]
    if not d.is_layer():
        raise PluginError("refocus works on a layer; select a layer (not a mask or channel)")
    return d


def _call_worker(bridge, cfg, request, arrays, label):
    folder = bridge.new_request_dir()
    try:
        bridge.write_request(folder, request, arrays)
        Gimp.progress_init(label)
        resp = bridge.run(folder, cfg, progress=Gimp.progress_update)
        out = {k: bridge.read_array(folder, spec) for k, spec in resp.get("arrays", {}).items()}
        Gimp.progress_update(1.0)
        Gimp.progress_end()
        return resp, out
    except bridge.BridgeError as e:
        raise PluginError(str(e)) from None
    finally:
        bridge.remove_request_dir(folder)


def do_refocus(image, drawables, config, cfg):
    bridge = load_bridge()
    d = _one_layer(drawables)
    preset = config.get_property("preset")
    preset = None if preset in (None, "", "none") else preset
    params = cfg["params"]
    data, shape, fmt = read_pixels(d)
    arrays = {"image": (data, shape)}
    sel = read_selection(image, d)
    if sel is not None:
        arrays["mask"] = sel
    depth_layer = config.get_property("depth-layer")
    if depth_layer is not None:
        arrays["depth"] = read_depth_layer(depth_layer, d)
    outputs = ["result"]
    if config.get_property("add-disparity"):
        outputs.append("disparity")
    if config.get_property("add-blur-mask"):
        outputs.append("blur_mask")
    known = {ps.name for ps in config.list_properties()}          # arguments GIMP registered
    values = {p["name"]: config.get_property(p["name"]) for p in params if p["name"] in known}
    request = {"mode": "refocus", "settings": bridge.settings_from(values, params, preset), "preset": preset,
               "outputs": outputs, "device": os.environ.get("REFOCUS_DEVICE", "auto"),
               "depth_kind": config.get_property("depth-layer-kind"),
               "source_file": _source_file(image, d) if depth_layer is None else None,
               "metadata": _metadata(image, d)}
    resp, out = _call_worker(bridge, cfg, request, arrays, "Refocus: depth of field")
    image.undo_group_start()
    try:
        group = Gimp.GroupLayer.new(image, "Refocus")
        image.insert_layer(group, d.get_parent(), image.get_item_position(d))
        if "blur_mask" in out:
            new_layer(image, d, "Blur mask", out["blur_mask"], "Y' float", alpha=False, parent=group,
                      visible=False)
        if "disparity" in out:
            new_layer(image, d, "Disparity (white = near)", out["disparity"], "Y' float", alpha=False,
                      parent=group, visible=False)
        new_layer(image, d, "Refocused", out["result"], fmt, alpha=d.has_alpha(), parent=group)
    finally:
        image.undo_group_end()
    for line in resp.get("notes", []):
        print(f"refocus: {line}", file=sys.stderr)
    Gimp.displays_flush()


def do_depth(image, drawables, config, cfg):
    bridge = load_bridge()
    d = _one_layer(drawables)
    data, shape, _ = read_pixels(d)
    arrays = {"image": (data, shape)}
    sel = read_selection(image, d)
    if sel is not None:
        arrays["mask"] = sel
    request = {"mode": "depth", "settings": {"depth": config.get_property("depth")}, "preset": None,
               "outputs": ["disparity"], "device": os.environ.get("REFOCUS_DEVICE", "auto"),
               "source_file": _source_file(image, d)}
    resp, out = _call_worker(bridge, cfg, request, arrays, "Refocus: depth map")
    image.undo_group_start()
    try:
        new_layer(image, d, "Depth map (white = near)", out["disparity"], "Y' float", alpha=False,
                  parent=d.get_parent(), position=image.get_item_position(d))
    finally:
        image.undo_group_end()
    for line in resp.get("notes", []):
        print(f"refocus: {line}", file=sys.stderr)
    Gimp.displays_flush()


# ------------------------------------------------------------------------ the plug-in
def _error(procedure, message):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


SECTION_TITLES = {"focus": "Focus", "lens": "Lens", "depth": "Depth", "finish": "Finishing",
                  "layers": "Layers to add"}


def _sections(procedure, cfg):
    """(title, [argument names]) in dialog order, from the declarations' groups."""
    args = {a.get_name() for a in procedure.get_arguments()}
    groups = {}
    for p in cfg.get("params", []):
        if p["name"] in args:
            groups.setdefault(p["group"], []).append(p["name"])
    for extra, group in (("depth-layer", "depth"), ("depth-layer-kind", "depth"),
                         ("add-disparity", "layers"), ("add-blur-mask", "layers")):
        if extra in args:
            groups.setdefault(group, []).append(extra)
    order = [g for g in GROUP_ORDER if g in groups] + [g for g in groups if g not in GROUP_ORDER]
    return [(SECTION_TITLES.get(g, g.title()), groups[g]) for g in order]


def _dialog(procedure, config, title, cfg):
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi
    GimpUi.init(PLUGIN)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, title)
    try:                                  # one frame per group of parameters
        frames = ["preset"] if any(a.get_name() == "preset" for a in procedure.get_arguments()) else []
        for i, (heading, names) in enumerate(_sections(procedure, cfg)):
            dialog.fill_box(f"refocus-box-{i}", names)
            dialog.get_label(f"refocus-label-{i}", heading, False, False)
            dialog.fill_frame(f"refocus-frame-{i}", f"refocus-label-{i}", False, f"refocus-box-{i}")
            frames.append(f"refocus-frame-{i}")
        dialog.fill(frames)
    except Exception:                     # an older GimpUi: the plain generated dialog
        dialog.fill(None)
    ok = dialog.run()
    dialog.destroy()
    return ok


class Refocus(Gimp.PlugIn):
    def do_set_i18n(self, name):
        return False

    def do_query_procedures(self):
        return [PROC_REFOCUS, PROC_DEPTH]

    def do_create_procedure(self, name):
        cfg = load_config() or {"params": [], "presets": []}
        if name == PROC_REFOCUS:
            proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run_refocus, None)
            proc.set_menu_label("Refocus (Depth of Field)...")
            proc.set_documentation(
                "Synthetic shallow depth of field from a depth map",
                "Blurs the layer as a lens focused on the subject would: depth from the photo, a "
                "depth model or an offline estimate (or a layer), a physically based lens blur. "
                "A selection marks the subject to keep sharp. The result is added in a layer "
                "group 'Refocus' above the layer, which is left untouched.", name)
            choices = ["none"] + _preset_names(cfg)
            proc.add_choice_argument("preset", "Preset",
                                     "A look (portrait, landscape, ...); settings left at their "
                                     "default take the preset's values.", _choice(choices), "none", RW)
            for p in _ordered(cfg.get("params", [])):
                _safe_add(proc, p)
            proc.add_drawable_argument("depth-layer", "Depth from layer",
                                       "Use this layer as the depth map instead of estimating one "
                                       "(grey, white = near unless the kind says depth).", True, RW)
            proc.add_choice_argument("depth-layer-kind", "Depth layer holds",
                                     "disparity: white = near; depth: white = far.",
                                     _choice(["disparity", "depth"]), "disparity", RW)
            proc.add_boolean_argument("add-disparity", "Add the depth map as a layer",
                                      "Add the disparity used (white = near) to the Refocus group.", True, RW)
            proc.add_boolean_argument("add-blur-mask", "Add the blur mask as a layer",
                                      "Add the amount of blur per pixel (white = most) to the group.", False, RW)
        else:
            proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run_depth, None)
            proc.set_menu_label("Depth Map (refocus)...")
            proc.set_documentation(
                "Estimate a depth map as a new layer",
                "Adds the disparity map refocus would use (white = near) as a layer above the "
                "current one. A selection marks the subject.", name)
            for p in cfg.get("params", []):
                if p.get("key") == "depth":
                    _safe_add(proc, p)
            if "depth" not in {a.get_name() for a in proc.get_arguments()}:
                proc.add_choice_argument("depth", "Depth source", "Where the depth comes from.",
                                         _choice(["auto", "embedded", "model", "fallback"]), "auto", RW)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.add_menu_path("<Image>/Filters/Blur")
        proc.set_attribution("refocus", "refocus (Apache-2.0)", "2026")
        return proc

    def _run(self, work, title, procedure, run_mode, image, drawables, config):
        cfg = load_config()
        if cfg is None:
            return _error(procedure, f"{CONFIG_PATH} is missing or unreadable; run `refocus gimp install` "
                                     "from the Python environment where refocus is installed")
        try:
            if run_mode == Gimp.RunMode.INTERACTIVE and not _dialog(procedure, config, title, cfg):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
            work(image, drawables, config, cfg)
        except PluginError as e:
            return _error(procedure, str(e))
        except Exception as e:                          # never a silent failure
            import traceback
            traceback.print_exc()
            return _error(procedure, f"refocus plug-in failed: {type(e).__name__}: {e}")
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())

    def run_refocus(self, procedure, run_mode, image, drawables, config, run_data):
        return self._run(do_refocus, "Refocus (Depth of Field)", procedure, run_mode, image, drawables, config)

    def run_depth(self, procedure, run_mode, image, drawables, config, run_data):
        return self._run(do_depth, "Depth Map (refocus)", procedure, run_mode, image, drawables, config)


if __name__ == "__main__":
    Gimp.main(Refocus.__gtype__, sys.argv)
