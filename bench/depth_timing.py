#!/usr/bin/env python3
"""Time the depth pre- and post-processing at 12 MP (the network itself is not timed: no
real weights here, and a stand-in's inference time means nothing).

    python bench/depth_timing.py [--runs 5] [--width 4000 --height 3000]

Stages: sRGB encoding of the linear photo, bicubic resize + normalisation to the network
input (Depth Anything rules), percentile normalisation of a network-sized output, and the
guided (joint bilateral) upsampling to full resolution.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from refocus import imageio
from refocus.depth import estimate, guided, models

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "portraits" / "motorcycle_left.png"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    a = ap.parse_args()
    if SAMPLE.is_file():
        lin = imageio.read_photo(SAMPLE).linear
    else:
        lin = np.random.default_rng(0).random((500, 741, 3)).astype(np.float32)
    lin = cv2.resize(lin, (a.width, a.height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    rules = estimate.InputRules.from_registry(models.get_spec(models.default_name()).input)
    times = {k: [] for k in ("encode", "resize+normalise", "percentiles", "refine", "total")}
    for _ in range(a.runs + 1):
        t0 = time.perf_counter()
        srgb = estimate.srgb_encode(lin)
        t1 = time.perf_counter()
        x = estimate.preprocess(srgb, rules)
        t2 = time.perf_counter()
        raw = x[0, 0] + 10 * x[0, 1] + 100 * x[0, 2]       # a network-sized "output"
        d = estimate.normalise(raw)
        t3 = time.perf_counter()
        out = guided.refine(d, srgb)
        t4 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            times[k].append(v)
    print(f"{a.width}x{a.height} -> network input {x.shape[3]}x{x.shape[2]} -> {out.shape[1]}x{out.shape[0]}; "
          f"median of {a.runs} runs (first run discarded):")
    for k, v in times.items():
        print(f"  {k:18s} {statistics.median(v[1:]) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
