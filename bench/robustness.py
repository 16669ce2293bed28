#!/usr/bin/env python3
"""Robustness to disparity errors: every config of the shared benchmark rendered through
the real `refocus render` command with each corrupted map (disparity_blur2/6,
disparity_dilate3/7, disparity_erode3/7) and with the exact one, scored with the
benchmark's score.py; prints PSNR / SSIM / boundary PSNR per map and the loss against the
exact map (the target is a loss of at most 2 dB with dilate7 and erode7).

    python bench/robustness.py [--scenes ../shared/bench/scenes] [--out bench/out]
                               [--variants disparity_dilate7,disparity_erode7]
                               [--extra=--depth-as-is]

`--extra` passes more options to every `refocus render` (e.g. `--depth-as-is` to see the
renderer without its depth-edge clean-up).  About 45 s per map on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SCENES = HERE.parent.parent / "shared" / "bench" / "scenes"
VARIANTS = ["disparity", "disparity_blur2", "disparity_blur6", "disparity_dilate3", "disparity_dilate7",
            "disparity_erode3", "disparity_erode7"]


def run_map(scenes: Path, out: Path, stem: str, js: Path, extra: str = ""):
    """Every config rendered with the map `stem` through bench/run_bench.py and scored: the
    score.py JSON (dict), or None after printing why the run failed."""
    cmd = [sys.executable, str(HERE / "run_bench.py"), "--scenes", str(scenes), "--out", str(out),
           "--variant", stem, "--json", str(js), "--quiet"]
    if extra:
        cmd.append(f"--extra={extra}")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not js.is_file():
        print(f"{stem}: the benchmark run failed:\n{p.stdout}{p.stderr}", file=sys.stderr)
        return None
    return json.loads(js.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=Path, default=DEFAULT_SCENES)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--variants", default=",".join(VARIANTS[1:]),
                    help="comma-separated map stems (the exact map is always run)")
    ap.add_argument("--extra", default="", help="more options for refocus render, one string")
    args = ap.parse_args(argv)
    variants = ["disparity"] + [v for v in args.variants.split(",") if v and v != "disparity"]
    rows = {}
    for v in variants:
        res = run_map(args.scenes, args.out, v, args.out / f"robustness_{v}.json", args.extra)
        if res is None:
            return 1
        rows[v] = res["summary"]["all"]
        print(f"{v}: done", file=sys.stderr, flush=True)
    exact = rows["disparity"]["psnr"]
    print("| map | PSNR | SSIM | bPSNR | loss vs exact |")
    print("|---|---|---|---|---|")
    for v, r in rows.items():
        loss = "" if v == "disparity" else f"{exact - r['psnr']:.2f} dB"
        print(f"| {v} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['boundary_psnr']:.2f} | {loss} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
