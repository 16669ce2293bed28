"""The GIMP 3 plug-in in the real GIMP (gimp-console-3.0 in the shared/gimp3 Debian chroot).

The product path is what runs: ``refocus gimp install --gimp-dir`` writes the plug-in into a
throw-away GIMP profile inside the chroot and records this interpreter; GIMP's own Python
(3.13, no refocus) runs the plug-in, which starts the recorded interpreter as its worker.
So that interpreter exists inside the chroot at the same path, its installation (and the
repository, for an editable install) is bind-mounted read-only in a private mount namespace
(``unshare -m``): the mounts vanish with the GIMP process, nothing to clean up on the host.

Skipped, with the reason, when the chroot (``REFOCUS_GIMP3_CHROOT``, default
``/tmp/gimp3-trixie``) is absent, when not root, or when the interpreter lives under /usr.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from refocus import params

CHROOT = Path(os.environ.get("REFOCUS_GIMP3_CHROOT", "/tmp/gimp3-trixie"))
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PORTRAIT = DATA / "portraits" / "obama_official_portrait.jpg"
EXIF_JPEG = DATA / "exif" / "Nikon_D300_lens_data.jpeg"          # 200x133, 105 mm, crop 1.5

pytestmark = pytest.mark.gimp


def _host_paths() -> list:
    """Host folders the recorded interpreter needs inside the chroot (outermost only)."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), REPO,
             Path(os.path.realpath(sys.executable)).parent.parent}
    out = []
    for p in sorted(paths, key=lambda p: len(p.parts)):
        if not any(p == q or q in p.parents for q in out):
            out.append(p)
    return out


def _skip_reason():
    if not (CHROOT / "usr" / "bin" / "gimp-console-3.0").exists():
        return f"GIMP 3 chroot not found at {CHROOT} (build it with shared/gimp3/gimp3-chroot.sh)"
    if os.geteuid() != 0:
        return "chroot needs root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is needed to bind-mount the refocus interpreter into the chroot"
    for p in _host_paths():
        if p.parts[1:2] in (("usr",), ("lib",), ("bin",), ("etc",)):
            return f"the refocus interpreter lives under {p}, which cannot be mounted over the chroot's"
    for f in (PORTRAIT, EXIF_JPEG):
        if not f.exists():
            return f"sample photo {f} not found (shared/data)"
    return None


SKIP = _skip_reason()

BATCH = r'''
import json, traceback
from gi.repository import Gimp, Gio, Gegl
OUT = {}

def dump(layer, tag, fmt):
    w, h = layer.get_width(), layer.get_height()
    data = bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt, Gegl.AbyssPolicy.NONE))
    open(S + '/' + tag + '.f32', 'wb').write(data)
    return tag

def tree(items):
    out = []
    for l in items:
        _, ox, oy = l.get_offsets()
        rec = {'name': l.get_name(), 'size': [l.get_width(), l.get_height()], 'offsets': [ox, oy],
               'visible': bool(l.get_visible()), 'group': bool(l.is_group()), 'gray': bool(l.is_gray()),
               'alpha': bool(l.has_alpha())}
        if l.is_group():
            rec['children'] = tree(l.get_children())
        out.append(rec)
    return out

def call(name, img, drawable, **args):
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        return {'status': 'NOT REGISTERED'}
    cfg = proc.create_config()
    cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', [drawable])
    for k, v in args.items():
        cfg.set_property(k, v)
    res = proc.run(cfg)
    st = res.index(0)
    out = {'status': st.value_nick if hasattr(st, 'value_nick') else str(st)}
    if st != Gimp.PDBStatusType.SUCCESS and res.length() > 1:
        out['message'] = str(res.index(1))
    return out

def load():
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(S + '/in.png'))

def case(tag, fn):
    try:
        OUT[tag] = fn()
    except Exception:
        OUT[tag] = {'exception': traceback.format_exc()}

def plain():
    img = load(); bg = img.get_layers()[0]
    dump(bg, 'plain_before', "R'G'B' float")
    r = call('plug-in-refocus', img, bg, blur='14', **{'add-blur-mask': True})
    r['tree'] = tree(img.get_layers())
    dump(bg, 'plain_after', "R'G'B' float")
    g = img.get_layers()[0]
    if g.is_group():
        dump(g.get_children()[0], 'plain_result', "R'G'B' float")
    r['precision'] = str(img.get_precision())
    # the depth-map procedure on the same image
    d = call('plug-in-refocus-depth-map', img, bg, depth='fallback')
    r['depth_call'] = d
    r['tree_after_depth'] = tree(img.get_layers())
    return r

def selected():
    img = load(); bg = img.get_layers()[0]
    img.select_ellipse(Gimp.ChannelOps.REPLACE, SEL[0], SEL[1], SEL[2], SEL[3])
    Gimp.Selection.feather(img, 6.0)
    r = call('plug-in-refocus', img, bg, blur='14', focus='subject')
    r['tree'] = tree(img.get_layers())
    dump(img.get_layers()[0].get_children()[0], 'sel_result', "R'G'B' float")
    dump(img.get_selection(), 'sel_mask', 'Y float')
    return r

def offset_grey_16():
    img = load()
    img.convert_grayscale()
    img.convert_precision(Gimp.Precision.U16_LINEAR)
    bg = img.get_layers()[0]
    l2 = bg.copy()
    img.insert_layer(l2, None, 0)
    l2.set_name('cut-out')
    l2.resize(OFF[2], OFF[3], -30, -40)
    l2.set_offsets(OFF[0], OFF[1])
    l2.add_alpha()
    img.select_rectangle(Gimp.ChannelOps.REPLACE, OFF[0], OFF[1], 40, 50)
    l2.edit_clear()
    Gimp.Selection.none(img)
    dump(l2, 'off_before', 'YA float')
    r = call('plug-in-refocus', img, l2, blur='10', **{'add-disparity': False})
    r['tree'] = tree(img.get_layers())
    r['precision'] = str(img.get_precision())
    dump(l2, 'off_after', 'YA float')
    dump(img.get_layers()[0].get_children()[0], 'off_result', 'YA float')
    return r

def bad_argument():
    img = load(); bg = img.get_layers()[0]
    r = call('plug-in-refocus', img, bg, aperture='f/banana')
    r['tree'] = tree(img.get_layers())
    return r

def depth_from_layer():
    img = load(); bg = img.get_layers()[0]
    ramp = Gimp.Layer.new(img, 'ramp', img.get_width(), img.get_height(), Gimp.ImageType.RGB_IMAGE, 100.0,
                          Gimp.LayerMode.NORMAL)
    img.insert_layer(ramp, None, 1)
    w, h = img.get_width(), img.get_height()
    import struct
    row = b''.join(struct.pack('<f', x / (w - 1)) for x in range(w))   # left far .. right near
    ramp.get_buffer().set(Gegl.Rectangle.new(0, 0, w, h), "Y' float", row * h)
    ramp.get_buffer().flush()
    r = call('plug-in-refocus', img, bg, blur='16', focus='disparity', **{'focus-disparity': '1.0',
             'depth-layer': ramp, 'add-disparity': True})
    g = img.get_layers()[0]
    r['tree'] = tree(img.get_layers())
    dump(g.get_children()[0], 'ramp_result', "R'G'B' float")
    dump(g.get_children()[1], 'ramp_disp', "Y' float")
    return r

def virtual_aperture():
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(S + '/exif.jpg'))
    r = call('plug-in-refocus', img, img.get_layers()[0], aperture='f/2', depth='fallback',
             **{'add-disparity': False})
    r['tree'] = tree(img.get_layers())
    return r

def registration():
    out = {}
    for name in ('plug-in-refocus', 'plug-in-refocus-depth-map'):
        p = Gimp.get_pdb().lookup_procedure(name)
        out[name] = {'args': [a.get_name() for a in p.get_arguments()], 'menu': list(p.get_menu_paths()),
                     'label': p.get_menu_label(), 'types': p.get_image_types()}
    return out

for tag, fn in [('registration', registration), ('plain', plain), ('selected', selected), ('offset', offset_grey_16),
                ('bad', bad_argument), ('ramp', depth_from_layer),
                ('aperture', virtual_aperture)]:
    case(tag, fn)
open(S + '/result.json', 'w').write(json.dumps(OUT))
print('REFOCUS-DONE')
'''


def _run_in_chroot(inside: str, gimp_args: list, timeout: float = 300):
    mounts = _host_paths()
    created = []
    for p in mounts:
        target = CHROOT / str(p).lstrip("/")
        missing = []
        q = target
        while not q.exists():
            missing.append(q)
            q = q.parent
        target.mkdir(parents=True, exist_ok=True)
        created.extend(reversed(missing))
    script = "set -e\n" + "".join(
        f"mount --bind '{p}' '{CHROOT}{p}'\nmount -o remount,bind,ro '{CHROOT}{p}'\n" for p in mounts)
    script += f"mount -t proc proc '{CHROOT}/proc' 2>/dev/null || true\n"
    script += 'exec chroot "$@"\n'
    # the chroot's own PATH: the host's may hold the mounted interpreter's bin folder, whose
    # python3 would then run GIMP's Python plug-ins (without gi)
    env = ["/usr/bin/env", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root",
           "LC_ALL=C.UTF-8", f"REFOCUS_HOME={inside}/home",
           f"GIMP3_DIRECTORY={inside}/gimpdir", "REFOCUS_DEVICE=cpu"]
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(CHROOT), *env,
           "gimp-console-3.0", "-i", "-d", "-f", *gimp_args, "--quit"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        for d in reversed(created):           # only the empty mount points this test made
            try:
                d.rmdir()
            except OSError:
                pass


SYSTEM_PLUGINS = ("python-eval", "script-fu", "file-png", "file-jpeg", "file-openraster")


def _fast_profile(folder: Path, inside: str) -> None:
    """A fresh profile queries all ~120 system plug-ins on first start (about 20 s); the test
    needs only the batch interpreters and the PNG/ORA plug-ins, so its gimprc points
    plug-in-path at links to those plus the profile's own plug-ins folder (GIMP's default)."""
    found = sorted(CHROOT.glob("usr/lib/*/gimp/3.0/plug-ins"))
    if not found or not all((found[0] / p).is_dir() for p in SYSTEM_PLUGINS):
        return                                          # unusual layout: keep GIMP's defaults
    sysplug = folder / "sysplug"
    sysplug.mkdir()
    for p in SYSTEM_PLUGINS:
        (sysplug / p).symlink_to("/" + str((found[0] / p).relative_to(CHROOT)))
    (folder / "gimpdir").mkdir()
    (folder / "gimpdir" / "gimprc").write_text(f'(plug-in-path "{inside}/sysplug:{inside}/gimpdir/plug-ins")\n')


SEL = (60, 10, 130, 190)          # ellipse around the face and shoulders of the 240x300 portrait
OFF = (50, 60, 160, 200)          # the cut-out layer: offsets and size


@pytest.fixture(scope="module")
def gimp_run(tmp_path_factory):
    if SKIP:
        pytest.skip(SKIP)
    from click.testing import CliRunner
    from PIL import Image

    from refocus.cli import main
    inside = f"/tmp/refocus-gimptest-{uuid.uuid4().hex[:8]}"
    folder = CHROOT / inside.lstrip("/")
    (folder / "home").mkdir(parents=True)
    try:
        _fast_profile(folder, inside)
        r = CliRunner().invoke(main, ["gimp", "install", "--gimp-dir", str(folder / "gimpdir")])
        assert r.exit_code == 0, r.output
        with Image.open(PORTRAIT) as im:
            small = im.convert("RGB").resize((240, 300), Image.LANCZOS)
        small.save(folder / "in.png")
        shutil.copyfile(EXIF_JPEG, folder / "exif.jpg")
        (folder / "batch.py").write_text(f"S = {inside!r}\nSEL = {SEL!r}\nOFF = {OFF!r}\n" + BATCH)
        proc = _run_in_chroot(inside, ["--batch-interpreter", "python-fu-eval", "-b",
                                       f"exec(open('{inside}/batch.py').read())"])
        log = proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "REFOCUS-DONE" in proc.stdout, log
        res = json.loads((folder / "result.json").read_text())
        arrays = {p.stem: np.fromfile(p, np.float32) for p in folder.glob("*.f32")}
        # Script-Fu, the same procedure with named arguments, exporting the image it changed
        sf = (f'(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE "{inside}/in.png"))) '
              f'(ds (car (gimp-image-get-selected-drawables img)))) '
              f'(plug-in-refocus #:run-mode RUN-NONINTERACTIVE #:image img #:drawables ds #:preset "miniature" '
              f'#:blur "12" #:shape "polygon" #:blades 5) '
              f'(gimp-file-save RUN-NONINTERACTIVE img "{inside}/scriptfu.ora"))')
        proc2 = _run_in_chroot(inside, ["--batch-interpreter", "plug-in-script-fu-eval", "-b", sf])
        sf_out = {"rc": proc2.returncode, "log": proc2.stdout[-2000:] + proc2.stderr[-2000:],
                  "notes": [ln for ln in proc2.stderr.splitlines() if ln.startswith("refocus: ")],
                  "ora": (folder / "scriptfu.ora").read_bytes() if (folder / "scriptfu.ora").exists() else None}
        installed = json.loads((folder / "gimpdir" / "plug-ins" / "refocus-gimp" / "refocus-gimp.json").read_text())
        yield {"res": res, "arrays": arrays, "log": log, "scriptfu": sf_out, "installed": installed,
               "stderr": proc.stderr}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _img(arrays, tag, w, h, c):
    a = arrays[tag]
    assert a.size == w * h * c, (tag, a.size)
    return a.reshape(h, w, c)


def _detail(rgb):
    g = rgb.mean(axis=2) if rgb.ndim == 3 else rgb
    return np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])


def test_result_in_a_refocus_group_and_original_untouched(gimp_run):
    r = gimp_run["res"]["plain"]
    assert r.get("status") == "success", (r, gimp_run["log"])
    top, bottom = r["tree"]
    assert top["name"] == "Refocus" and top["group"] and bottom["name"] == "Background"
    names = [c["name"] for c in top["children"]]
    assert names == ["Refocused", "Disparity (white = near)", "Blur mask"]
    assert [c["visible"] for c in top["children"]] == [True, False, False]
    assert all(c["size"] == [240, 300] and c["offsets"] == [0, 0] for c in top["children"])
    assert "U8" in r["precision"]
    a = gimp_run["arrays"]
    before, after = _img(a, "plain_before", 240, 300, 3), _img(a, "plain_after", 240, 300, 3)
    assert np.array_equal(before, after)                      # the user's layer is not modified
    res = _img(a, "plain_result", 240, 300, 3)
    assert np.abs(res - before).mean() > 0.005                 # something was blurred
    # the depth-map procedure adds one grey layer above the layer it ran on
    assert r["depth_call"]["status"] == "success", r["depth_call"]
    names = [t["name"] for t in r["tree_after_depth"]]
    assert names == ["Refocus", "Depth map (white = near)", "Background"], names


def test_selection_keeps_the_subject_sharp_and_blurs_the_background(gimp_run):
    r = gimp_run["res"]["selected"]
    assert r.get("status") == "success", (r, gimp_run["log"])
    a = gimp_run["arrays"]
    orig = _img(a, "plain_before", 240, 300, 3)
    res = _img(a, "sel_result", 240, 300, 3)
    mask = _img(a, "sel_mask", 240, 300, 1)[..., 0]
    inside = mask > 0.99
    outside = mask < 0.01
    assert inside.sum() > 5000 and outside.sum() > 10000
    assert np.abs(res - orig)[inside].mean() < 0.01            # subject kept (8-bit rounding only)
    d_orig, d_res = _detail(orig), _detail(res)
    out_core = outside[1:-1, 1:-1]
    assert d_res[out_core].mean() < 0.6 * d_orig[out_core].mean(), (d_res[out_core].mean(), d_orig[out_core].mean())


def test_offset_layer_grey_high_bit_depth_and_alpha(gimp_run):
    r = gimp_run["res"]["offset"]
    assert r.get("status") == "success", (r, gimp_run["log"])
    assert "U16_LINEAR" in r["precision"]                      # GIMP's precision is kept
    group = r["tree"][0]
    assert group["name"] == "Refocus" and r["tree"][1]["name"] == "cut-out"
    (res,) = group["children"]                                  # add-disparity off: the result only
    assert res["size"] == [OFF[2], OFF[3]] and res["offsets"] == [OFF[0], OFF[1]]
    assert res["gray"] and res["alpha"]
    a = gimp_run["arrays"]
    w, h = OFF[2], OFF[3]
    before, after = _img(a, "off_before", w, h, 2), _img(a, "off_after", w, h, 2)
    out = _img(a, "off_result", w, h, 2)
    assert np.array_equal(before, after)
    assert np.array_equal(out[..., 1], before[..., 1])         # the layer's alpha is kept
    assert (before[..., 1] == 0).sum() == 40 * 50
    opaque = before[..., 1] > 0
    assert np.abs(out[..., 0] - before[..., 0])[opaque].mean() > 0.002


def test_bad_argument_returns_an_error_with_the_core_message(gimp_run):
    r = gimp_run["res"]["bad"]
    assert r.get("status") == "execution-error", r
    assert "aperture" in r.get("message", "") and "banana" in r["message"], r
    assert [t["name"] for t in r["tree"]] == ["Background"]    # nothing added


def test_a_layer_as_depth_map(gimp_run):
    r = gimp_run["res"]["ramp"]
    assert r.get("status") == "success", (r, gimp_run["log"])
    a = gimp_run["arrays"]
    disp = _img(a, "ramp_disp", 240, 300, 1)[..., 0]
    expected = np.tile(np.linspace(0, 1, 240, dtype=np.float32), (300, 1))
    assert np.abs(disp - expected).max() < 0.01                # the layer was used as disparity
    orig = _img(a, "plain_before", 240, 300, 3)
    res = _img(a, "ramp_result", 240, 300, 3)
    near, far = slice(228, 237), slice(0, 40)     # focus at disparity 1: CoC < 1 px near the right edge
    d_o, d_r = _detail(orig), _detail(res)
    ratio_near = d_r[:, near].mean() / d_o[:, near].mean()
    ratio_far = d_r[:, far].mean() / d_o[:, far].mean()
    assert ratio_far < 0.3 and ratio_near > 0.7, (ratio_far, ratio_near)


def test_virtual_aperture_uses_the_lens_data_gimp_read(gimp_run):
    r = gimp_run["res"]["aperture"]
    assert r.get("status") == "success", (r, gimp_run["log"])
    assert [t["name"] for t in r["tree"]] == ["Refocus", "Background"]
    # GIMP's metadata (not the file: a batch-loaded image has none) carried the EXIF lens data
    notes = [ln for ln in gimp_run["stderr"].splitlines() if ln.startswith("refocus: blur:")]
    assert any("f/2 at 105 mm" in ln for ln in notes), notes


def test_script_fu_calls_the_procedure(gimp_run):
    sf = gimp_run["scriptfu"]
    assert sf["rc"] == 0, sf["log"]
    assert sf["ora"] is not None, sf["log"]
    import io
    import zipfile
    with zipfile.ZipFile(io.BytesIO(sf["ora"])) as z:
        stack = z.read("stack.xml").decode()
    assert 'name="Refocus"' in stack and 'name="Refocused"' in stack and 'name="Background"' in stack, stack
    # the preset's finishing applied; the explicit blur overrode its strength
    from refocus import presets
    sat = presets.get("miniature").resolve({}).saturation
    assert sat != 1.0
    assert any("saturation" in n and f"{sat:g}" in n for n in sf["notes"]), sf["notes"]
    assert any(n.startswith("refocus: blur: K = 12 px") for n in sf["notes"]), sf["notes"]


def test_menu_entries_and_arguments_come_from_the_declarations(gimp_run):
    reg = gimp_run["res"]["registration"]
    main_, depth = reg["plug-in-refocus"], reg["plug-in-refocus-depth-map"]
    assert main_["menu"] == ["<Image>/Filters/Blur"] and depth["menu"] == ["<Image>/Filters/Blur"]
    assert main_["label"] == "Refocus (Depth of Field)..." and depth["label"] == "Depth Map (refocus)..."
    assert main_["types"] == "RGB*, GRAY*"
    names = {p["name"] for p in params.gimp_arguments()}
    args = main_["args"]
    assert args[:4] == ["run-mode", "image", "drawables", "preset"]
    assert set(args[4:]) == names | {"depth-layer", "depth-layer-kind", "add-disparity", "add-blur-mask"}
    assert depth["args"] == ["run-mode", "image", "drawables", "depth"]


def test_installed_declarations_match_params(gimp_run):
    # what GIMP built its arguments from is the CLI's declarations, and this interpreter
    rec = gimp_run["installed"]
    assert rec["params"] == params.gimp_arguments()
    assert rec["python"] == sys.executable
