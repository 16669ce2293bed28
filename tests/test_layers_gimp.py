"""GIMP 3 itself opens the layered files refocus writes (.ora, .psd, layered .tif).

Runs gimp-console-3.0 inside the Debian trixie chroot made by ``shared/gimp3/gimp3-chroot.sh``
(default ``/tmp/gimp3-trixie``, or ``REFOCUS_GIMP3_CHROOT``); skipped when it is absent or
when not root (chroot needs root).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from refocus.io import read_photo
from refocus.io.layers import result_layers, write_layers

CHROOT = Path(os.environ.get("REFOCUS_GIMP3_CHROOT", "/tmp/gimp3-trixie"))

pytestmark = pytest.mark.gimp

BATCH = r"""
import json, sys
from gi.repository import Gimp, Gio
out = {}
for name in NAMES:
    try:
        img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(FOLDER + '/' + name))
        layers = img.get_layers()
        out[name] = {'n': len(layers), 'names': [l.get_name() for l in layers],
                     'visible': [bool(l.get_visible()) for l in layers],
                     'size': [img.get_width(), img.get_height()],
                     'precision': str(img.get_precision())}
    except Exception as e:
        out[name] = {'error': repr(e)}
print('REFOCUS-RESULT ' + json.dumps(out))
"""


def _gimp_available():
    if not (CHROOT / "usr" / "bin" / "gimp-console-3.0").exists():
        return f"GIMP 3 chroot not found at {CHROOT} (build it with shared/gimp3/gimp3-chroot.sh)"
    if os.geteuid() != 0:
        return "chroot needs root"
    return None


@pytest.mark.skipif(_gimp_available() is not None, reason=str(_gimp_available()))
def test_gimp_opens_ora_psd_and_layered_tiff(tmp_path, rng):
    from PIL import Image
    img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    photo = read_photo(src)
    d = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    mask = (d > 0.5).astype(np.float32)
    stack = result_layers(photo.linear * 0.7, photo.linear, d, 6 * (d - 0.5), subject_mask=mask)
    names = {"s8.ora": 8, "s16.psd": 16, "s8.psd": 8, "s16.tif": 16}
    inside = f"/tmp/refocus-test-{uuid.uuid4().hex[:8]}"
    folder = CHROOT / inside.lstrip("/")
    folder.mkdir(parents=True)
    try:
        for name, bits in names.items():
            write_layers(folder / name, stack, photo=photo, bits=bits)
        (folder / "batch.py").write_text(f"NAMES = {list(names)!r}\nFOLDER = {inside!r}\n" + BATCH)
        proc = subprocess.run(
            ["chroot", str(CHROOT), "/usr/bin/env", "HOME=/root", "LC_ALL=C.UTF-8",
             f"GIMP3_DIRECTORY={inside}/gimpdir", "gimp-console-3.0", "-i", "-d", "-f",
             "--batch-interpreter", "python-fu-eval", "-b", f"exec(open('{inside}/batch.py').read())", "--quit"],
            capture_output=True, text=True, timeout=180)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("REFOCUS-RESULT ")]
        assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
        res = json.loads(line[0][len("REFOCUS-RESULT "):])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    full = ["refocused", "original", "disparity", "blur (CoC)", "subject mask"]
    for name in ("s8.ora", "s16.psd", "s8.psd"):
        r = res[name]
        assert "error" not in r, r
        assert r["n"] == 5 and r["names"] == full, (name, r)            # top first, as written
        assert r["visible"] == [True, False, False, False, False], (name, r)
        assert r["size"] == [64, 48]
    assert "U16" in res["s16.psd"]["precision"]
    t = res["s16.tif"]
    assert t["n"] == 5 and sorted(t["names"]) == sorted(full) and "U16" in t["precision"], t
    # GIMP stacks later TIFF pages above earlier ones: the result (page 1) is at the bottom
    assert t["names"][-1] == "refocused"
