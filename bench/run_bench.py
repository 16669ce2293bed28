#!/usr/bin/env python3
"""Render every config of the shared benchmark through the real `refocus render` command
and score it with the benchmark's own score.py.

    python bench/run_bench.py [--scenes ../shared/bench/scenes] [--out bench/out]
                              [--variant disparity_dilate7] [--json results.json]
                              [--extra=--depth-as-is]

`--variant` renders with a corrupted disparity map (disparity_blur2, disparity_dilate7,
disparity_erode7, ...) instead of disparity.png; the ground truth stays the same.
Only image.png, the disparity map and the config's focus_disparity / K / aperture are
given to the renderer.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SCENES = HERE.parent.parent / "shared" / "bench" / "scenes"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=Path, default=DEFAULT_SCENES)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--variant", default="disparity", help="disparity map file stem to use")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--extra", default="", help="more options for every refocus render, one string "
                    "(e.g. --extra=--depth-as-is)")
    args = ap.parse_args(argv)
    scenes = json.loads((args.scenes / "index.json").read_text())["scenes"]
    out_root = args.out / args.variant
    t0 = time.perf_counter()
    n = 0
    for scene in scenes:
        sdir = args.scenes / scene
        for cfg_path in sorted(sdir.glob("*.json")):
            if cfg_path.name == "scene.json":
                continue
            cfg = json.loads(cfg_path.read_text())
            if "focus_disparity" not in cfg:
                continue
            dst = out_root / scene / f"{cfg_path.stem}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "refocus.cli", "render", str(sdir / "image.png"), "-o", str(dst),
                   "--depth", str(sdir / f"{args.variant}.png"),
                   "--focus-disparity", repr(float(cfg["focus_disparity"])), "--blur", repr(float(cfg["K"])),
                   "--aperture", cfg.get("aperture", "circle"), "--overwrite"] + shlex.split(args.extra)
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAILED {scene}/{cfg_path.stem}: {p.stderr.strip()}", file=sys.stderr)
            n += 1
    dt = time.perf_counter() - t0
    print(f"rendered {n} configs with {args.variant}.png in {dt:.1f} s ({dt / max(n, 1):.2f} s per command)")
    score = args.scenes.parent / "score.py"
    cmd = [sys.executable, str(score), "--scenes", str(args.scenes), "--outputs", str(out_root)]
    if args.json:
        cmd += ["--json", str(args.json)]
    if args.quiet:
        cmd += ["--quiet"]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
