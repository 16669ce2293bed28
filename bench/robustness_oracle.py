#!/usr/bin/env python3
"""How far moving a corrupted map's depth steps can go: the *oracle* map is the exact map
within REACH px of every step the corrupted map still has, and the corrupted map elsewhere
(what a perfect step mover could make of it: what the corruption erased entirely, wires,
fence bars, thin strokes, stays lost).  Rendered as it is (`--depth-as-is`) through the real
command and scored with the benchmark's score.py; prints the loss against the exact map, per
scene and over all configs.

    python bench/robustness_oracle.py [--scenes ../shared/bench/scenes] [--out bench/out]
                                      [--variants disparity_dilate7,disparity_erode7]

The oracle reads the exact disparity.png: it is a bound for the benchmark, not a renderer.
About 30 s per map on 2 cores.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

from robustness import run_map     # bench/ is on sys.path when a script here is run

HERE = Path(__file__).resolve().parent
DEFAULT_SCENES = HERE.parent.parent / "shared" / "bench" / "scenes"
REACH = 9          # px at 640: as far as refocus.depth.align moves a step
STEP = 0.05        # a 4-neighbour difference of this is a depth step (as in score.py and align)


def oracle_map(exact, corrupted):
    """The exact map within REACH of the corrupted map's steps, the corrupted map elsewhere."""
    import cv2
    import numpy as np
    c = corrupted.astype(np.float32) / 65535
    k4 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    steps = ((cv2.dilate(c, k4) - cv2.erode(c, k4)) > STEP).astype(np.uint8)
    band = cv2.dilate(steps, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * REACH + 1, 2 * REACH + 1))) > 0
    return np.where(band, exact, corrupted)


def _per_scene(res: dict) -> dict:
    rows = collections.defaultdict(list)
    for r in res["records"]:
        rows[r["scene"]].append(r["psnr"])
    return {k: sum(v) / len(v) for k, v in rows.items()}


def main(argv=None) -> int:
    import cv2
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=Path, default=DEFAULT_SCENES)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--variants", default="disparity_dilate7,disparity_erode7")
    args = ap.parse_args(argv)
    scenes_dir = args.scenes.resolve()
    scenes = json.loads((scenes_dir / "index.json").read_text())["scenes"]
    variants = [v for v in args.variants.split(",") if v]
    with tempfile.TemporaryDirectory(prefix="refocus_oracle_") as tmp:
        # a copy of the scene folder made of links, plus the oracle maps
        root = Path(tmp) / "scenes"
        root.mkdir()
        (root / "index.json").symlink_to(scenes_dir / "index.json")
        (Path(tmp) / "score.py").symlink_to(scenes_dir.parent / "score.py")
        for sc in scenes:
            (root / sc).mkdir()
            for f in (scenes_dir / sc).iterdir():
                (root / sc / f.name).symlink_to(f)
            exact = cv2.imread(str(scenes_dir / sc / "disparity.png"), cv2.IMREAD_UNCHANGED)
            for v in variants:
                bad = cv2.imread(str(scenes_dir / sc / f"{v}.png"), cv2.IMREAD_UNCHANGED)
                cv2.imwrite(str(root / sc / f"oracle_{v}.png"), oracle_map(exact, bad))
        runs = {"disparity": ("disparity", "")}
        runs.update({f"oracle_{v}": (f"oracle_{v}", "--depth-as-is") for v in variants})
        results = {}
        for name, (stem, extra) in runs.items():
            res = run_map(root, args.out, stem, args.out / f"oracle_run_{name}.json", extra)
            if res is None:
                return 1
            results[name] = (res["summary"]["all"]["psnr"], _per_scene(res))
    exact_all, exact_sc = results["disparity"]
    print("| oracle map | PSNR | loss vs exact | " + " | ".join(scenes) + " |")
    print("|---|---|---|" + "---|" * len(scenes))
    for name, (psnr, sc) in results.items():
        if name == "disparity":
            continue
        cells = " | ".join(f"{exact_sc[s] - sc[s]:.2f}" for s in scenes)
        print(f"| {name} | {psnr:.2f} | {exact_all - psnr:.2f} dB | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
