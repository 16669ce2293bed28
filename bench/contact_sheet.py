#!/usr/bin/env python3
"""Contact sheets of the built-in presets: each preset on its kind of sample photo.

    python bench/contact_sheet.py [--out docs/contact_sheet] [--data ../shared/data] [preset ...]

For every preset one JPEG ``<out>/<preset>.jpg``, about 1200 px wide, one row per photo:
input | depth (white = near; the focus point as a red dot, detected faces as green boxes;
for a tilt-shift band the ramp that was rendered, with the band as red lines) | result, with a caption (file, focus, blur, finishing).
The depth is whatever ``--depth auto`` finds: depth stored in the file, else an installed
model, else the offline default (no model weights are shipped, so mostly the latter).
``<out>/runs.json`` records the notes of every run; ``<out>/details.jpg`` shows 1:1 crops
of the grain (historic) and texture (painting) steps (``details`` as the preset name
renders only that).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from refocus import presets
from refocus.color import linear_to_srgb
from refocus.pipeline import refocus_file

ROOT = Path(__file__).resolve().parents[1]

# preset -> sample photos (paths relative to shared/data), chosen by kind
PHOTOS = {
    "portrait": ["portraits/astronaut.png", "portraits/obama_official_portrait.jpg", "portraits/camera.png"],
    "group": ["exif/Curies_orientation6_faces.jpg", "historic/Grace_Hopper_1984_USNavy.jpg"],
    "landscape": ["exif/orientation/Landscape_1.jpg", "exif/Nikon_COOLPIX_P6000_GPS_DSCN0010.jpg",
                  "portraits/rocket.jpg"],
    "macro": ["portraits/coffee.png", "embedded_depth/gcam_lensblur_gdepth.jpg"],
    "miniature": ["raw/RAW_KODAK_DC50.KDC", "exif/Nikon_COOLPIX_P6000_GPS_DSCN0010.jpg"],
    "historic": ["historic/Curies_lab_c1904.jpg", "historic/Grace_Hopper_1984_USNavy.jpg",
                 "historic/Dudley_Leavitt_Utah.tiff"],
    "painting": ["paintings/the_scream.jpg", "paintings/starry_night.jpg", "paintings/great_wave_hokusai.jpg",
                 "paintings/shipwreck_turner.jpg"],
}

SHEET_W = 1200
GAP = 6
PANEL_W = (SHEET_W - 2 * GAP) // 3
MAX_PANEL_H = 520


def _srgb8(linear):
    a = np.asarray(linear, np.float32)
    if a.ndim == 2:
        a = a[..., None]
    a = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]
    return (np.clip(linear_to_srgb(np.clip(a, 0, 1)), 0, 1) * 255 + 0.5).astype(np.uint8)


def _fit(rgb8, s):
    h, w = rgb8.shape[:2]
    return cv2.resize(rgb8, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _row(res, rel):
    H, W = res.linear.shape[:2]
    s = min(PANEL_W / W, MAX_PANEL_H / H)
    inp = _fit(_srgb8(res.original), s)
    out = _fit(_srgb8(res.linear), s)
    disp = res.disparity
    if res.focus.band is not None and res.K > 0:       # tilt-shift: show the ramp that was rendered
        disp = res.coc / np.float32(res.K) + np.float32(res.focus.disparity)
    dep = _fit(np.repeat((np.clip(disp, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, 2), s)
    for x, y, w, h in res.focus.faces:
        cv2.rectangle(dep, (int(x * s), int(y * s)), (int((x + w) * s), int((y + h) * s)), (0, 200, 0), 2)
    if res.focus.band is not None:
        c, bw = res.focus.band
        for yy in (c - bw / 2, c + bw / 2):
            cv2.line(dep, (0, int(yy * (H - 1) * s)), (dep.shape[1], int(yy * (H - 1) * s)), (230, 0, 0), 1)
    if res.focus.point is not None:
        cv2.circle(dep, (int(res.focus.point[0] * s), int(res.focus.point[1] * s)), 5, (230, 0, 0), -1)
    ph = inp.shape[0]
    row = np.full((ph, SHEET_W, 3), 24, np.uint8)
    for i, p in enumerate((inp, dep, out)):
        x0 = i * (PANEL_W + GAP) + (PANEL_W - p.shape[1]) // 2
        row[:, x0:x0 + p.shape[1]] = p
    lines = [f"{rel}   depth: {res.depth_source}"[:150], f"focus: {res.focus.how}"[:150]]
    if res.focus.band is not None:
        lines[0] = f"{rel}   depth panel: the tilt-shift ramp rendered (the estimated depth only placed the band)"
    lines += [n for n in res.notes if n.startswith(("blur:", "finish:", "border:"))]
    cap = np.full((16 * len(lines) + 8, SHEET_W, 3), 24, np.uint8)
    for i, t in enumerate(lines):
        cv2.putText(cap, t[:160], (6, 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([row, cap, np.full((GAP, SHEET_W, 3), 0, np.uint8)])


# 1:1 crops where finishing matters: (photo, preset, setting switched off, crop rows, crop cols)
DETAILS = [
    ("historic/Curies_lab_c1904.jpg", "historic", "grain", (100, 400), (480, 780)),
    ("paintings/the_scream.jpg", "painting", "texture", (1000, 1300), (0, 300)),
]


def details(data, out, quality):
    """``details.jpg``: 1:1 crops, original | blurred without the finishing step | with it."""
    rows = []
    head = np.full((30, 3 * 300 + 2 * GAP, 3), 24, np.uint8)
    cv2.putText(head, "1:1 crops: original | preset without grain/texture | preset", (6, 21),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    rows.append(head)
    for rel, name, key, (y0, y1), (x0, x1) in DETAILS:
        p = Path(data) / rel
        if not p.exists():
            continue
        s = presets.get(name).resolve()
        with_, _ = refocus_file(p, s, device="cpu")
        without, _ = refocus_file(p, presets.get(name).resolve({key: 0}), device="cpu")
        crops = [_srgb8(a)[y0:y1, x0:x1] for a in (with_.original, without.linear, with_.linear)]
        h = crops[0].shape[0]
        row = np.full((h, 3 * 300 + 2 * GAP, 3), 24, np.uint8)
        for i, c in enumerate(crops):
            row[:, i * (300 + GAP):i * (300 + GAP) + c.shape[1]] = c
        cap = np.full((24, row.shape[1], 3), 24, np.uint8)
        cv2.putText(cap, f"{rel} ({name}, {key} {getattr(s, key):g})", (6, 16), cv2.FONT_HERSHEY_SIMPLEX,
                    0.42, (235, 235, 235), 1, cv2.LINE_AA)
        rows += [row, cap]
    sheet = np.vstack(rows)
    ok, buf = cv2.imencode(".jpg", sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path = Path(out) / "details.jpg"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
    print(f"-> {path} ({len(buf) // 1024} KiB)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="*", help="presets to render (default: all in PHOTOS)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "contact_sheet"))
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--quality", type=int, default=82)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else {}
    for name in [n for n in a.presets if n != "details"] or ([] if a.presets else list(PHOTOS)):
        preset = presets.get(name)
        settings = preset.resolve()
        rows, runs[name] = [], []
        head = np.full((30, SHEET_W, 3), 24, np.uint8)
        cv2.putText(head, f"preset {name}: input | depth (white = near, red = focus) | result",
                    (6, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(head)
        for rel in PHOTOS[name]:
            p = Path(a.data) / rel
            t0 = time.perf_counter()
            try:
                res, _ = refocus_file(p, settings, device="cpu")
            except Exception as e:                      # report and go on (e.g. a codec missing)
                print(f"{name}: {rel}: skipped: {e}", file=sys.stderr)
                runs[name].append({"photo": rel, "skipped": str(e)})
                continue
            dt = time.perf_counter() - t0
            rows.append(_row(res, rel))
            runs[name].append({"photo": rel, "size": list(res.linear.shape[:2]), "seconds": round(dt, 2),
                               "notes": res.notes})
            print(f"{name}: {rel} ({dt:.1f} s)\n  " + "\n  ".join(res.notes))
        sheet = np.vstack(rows)
        path = out / f"{name}.jpg"
        ok, buf = cv2.imencode(".jpg", sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, a.quality])
        assert ok
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(buf.tobytes())
        tmp.replace(path)
        print(f"-> {path} ({len(buf) // 1024} KiB, {sheet.shape[1]}x{sheet.shape[0]})")
    runs_path.write_text(json.dumps(runs, indent=1) + "\n")
    if not a.presets or "details" in a.presets:
        details(a.data, out, 90)


if __name__ == "__main__":
    main()
