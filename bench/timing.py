#!/usr/bin/env python3
"""Time the whole `refocus render` command on a 12 MP photo (start to written JPEG).

    python bench/timing.py [--runs 5] [--width 4000 --height 3000] [--focus near|far] [--work DIR]

Builds a 4000x3000 JPEG and a 16-bit disparity PNG from a benchmark scene (upscaled),
then runs the real command with max |CoC| = 60 px and 15 px and reports the median
wall time and the peak resident memory of the process.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENES = HERE.parent.parent / "shared" / "bench" / "scenes"


def make_inputs(work: Path, width: int, height: int, scene: str):
    import cv2
    import numpy as np
    img = cv2.imread(str(SCENES / scene / "image.png"))
    disp = cv2.imread(str(SCENES / scene / "disparity.png"), cv2.IMREAD_UNCHANGED)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)     # some sensor-like grain so the JPEG is of realistic size
    img = np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    disp = cv2.resize(disp, (width, height), interpolation=cv2.INTER_NEAREST)
    jpg, png = work / "photo_12mp.jpg", work / "disparity_12mp.png"
    cv2.imwrite(str(jpg), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(png), disp)
    d = disp.astype(np.float64) / 65535
    return jpg, png, float(d.min()), float(d.max())


def run_once(cmd: list[str], env=None) -> float:
    """Wall time of one run of the command (exits if it fails)."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--scene", default="portrait_bokeh")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--focus", choices=["near", "far"], default="near",
                    help="near: focus on the nearest subject, the background blurred (default); far: "
                         "focus on the background, the subject blurred in front of it")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="refocus-timing-"))
    work.mkdir(parents=True, exist_ok=True)
    jpg, png, dmin, dmax = make_inputs(work, args.width, args.height, args.scene)
    exe = [sys.executable, "-m", "refocus.cli"]
    results = {}
    for max_coc in (60.0, 15.0):
        focus = dmax if args.focus == "near" else dmin     # near: background blurred; far: subject
        K = max_coc / max(dmax - dmin, 1e-6)
        out = work / f"out_coc{int(max_coc)}.jpg"
        cmd = exe + ["render", str(jpg), "-o", str(out), "--depth", str(png),
                     "--focus-disparity", f"{focus:.6f}", "--blur", f"{K:.6f}", "--overwrite"]
        # warm the file cache, and write Python's bytecode caches as any first run does on a
        # normal machine (a sandbox may set PYTHONDONTWRITEBYTECODE: every run would then
        # compile refocus's modules again, about 50 ms that no user pays)
        run_once(cmd, env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        walls = [run_once(cmd) for _ in range(args.runs)]
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        detail = subprocess.run(cmd + ["-v"], capture_output=True, text=True).stderr.strip()
        results[f"coc{int(max_coc)}"] = {"median_s": statistics.median(walls), "runs_s": walls,
                                         "peak_rss_mb": peak_mb, "detail": detail}
    print(f"{args.width}x{args.height} JPEG + 16-bit disparity PNG, whole `refocus render` command, "
          f"{os.cpu_count()} cores, {args.runs} runs each, focus {args.focus}")
    for k, r in results.items():
        print(f"  max |CoC| {k[3:]:>3s} px: median {r['median_s']:.3f} s  "
              f"(runs {', '.join(f'{w:.3f}' for w in r['runs_s'])}), peak RSS <= {r['peak_rss_mb']:.0f} MB")
    ratio = results["coc60"]["median_s"] / results["coc15"]["median_s"]
    print(f"  cost ratio CoC 60 / CoC 15: {ratio:.2f}")
    for k, r in results.items():
        print(f"  [{k}] {r['detail'].splitlines()[-1] if r['detail'] else ''}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
