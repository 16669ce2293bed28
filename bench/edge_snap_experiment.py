#!/usr/bin/env python3
"""Experiment (not in the product): snap depth edges to image edges before rendering.

A watershed on the photo, seeded by the map's near and far sides away from its depth
edges, decides near/far inside a band of R pixels around each edge; thin structures
(near or far components with no seed) keep their labels, and moves thinner than
`open_px` are dropped so exact maps stay exact.  Renders all benchmark configs through the
API with the true, dilated and eroded maps and scores them:

    python bench/edge_snap_experiment.py OUTDIR [--R 8] [--open 2]

Session-3 result (R 8, open 2), PSNR all configs: true 39.21 -> 38.96, dilate7 35.13 ->
36.68, erode7 30.67 -> 32.82.  Not adopted: the eroded map still loses 6 dB, the fixed R
does not carry over to other resolutions or error sizes, and a full-resolution watershed
costs too much at 12 MP.  See docs/renderer.md.
"""
import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np

import refocus
from refocus.color import decode_srgb, encode_srgb8, linear_to_srgb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "scenes")


def snap(lin, d, R=8, tau=0.05, open_px=2):
    d = d.astype(np.float32)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2*R+1, 2*R+1))
    hi = cv2.dilate(d, k); lo = cv2.erode(d, k)
    jx = np.abs(np.diff(d, axis=1)) > tau; jy = np.abs(np.diff(d, axis=0)) > tau
    e = np.zeros(d.shape, np.uint8); e[:, :-1] |= jx; e[:, 1:] |= jx; e[:-1] |= jy; e[1:] |= jy
    if not e.any(): return d
    band = cv2.dilate(e, k) > 0
    k2 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4*R+3, 4*R+3))
    mid = (cv2.dilate(d, k2) + cv2.erode(d, k2)) / 2
    orig = np.where(d >= mid, 2, 1).astype(np.int32)
    markers = orig.copy(); markers[band] = 0
    srgb = (np.clip(linear_to_srgb(np.clip(lin,0,1)),0,1)*255+0.5).astype(np.uint8)
    if srgb.ndim == 2: srgb = np.repeat(srgb[...,None],3,2)
    cv2.watershed(np.ascontiguousarray(srgb[..., ::-1]), markers)
    lab = np.where(markers < 1, orig, markers)
    # thin structures: original near (far) components with no marker pixel are kept
    for v in (1, 2):
        n, comp = cv2.connectedComponents((orig == v).astype(np.uint8), connectivity=8)
        has = np.zeros(n, bool); has[np.unique(comp[(orig == v) & ~band])] = True
        keep = (orig == v) & ~has[comp]
        lab[keep] = v
    changed = (lab != orig).astype(np.uint8)
    if open_px > 0:
        ko = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2*open_px+1, 2*open_px+1))
        changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, ko)
    ch = changed > 0
    out = d.copy()
    out[ch & (lab == 2)] = hi[ch & (lab == 2)]
    out[ch & (lab == 1)] = lo[ch & (lab == 1)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--R", type=int, default=8)
    ap.add_argument("--open", type=int, default=2)
    a = ap.parse_args()
    scenes = json.load(open(os.path.join(ROOT, "index.json")))["scenes"]
    for var in ("disparity", "disparity_dilate7", "disparity_erode7"):
        out = os.path.join(a.out, var)
        for sc in scenes:
            img = cv2.imread(f"{ROOT}/{sc}/image.png")[:, :, ::-1]
            d = cv2.imread(f"{ROOT}/{sc}/{var}.png", -1) / 65535.0
            lin = decode_srgb(np.ascontiguousarray(img))
            ds = snap(lin, d, a.R, open_px=a.open)
            for c in ("near_r08", "near_r20", "far_r08", "far_r20"):
                cfg = json.load(open(f"{ROOT}/{sc}/{c}.json"))
                o = refocus.render_linear(lin, ds, cfg["focus_disparity"], cfg["K"])
                os.makedirs(f"{out}/{sc}", exist_ok=True)
                cv2.imwrite(f"{out}/{sc}/{c}.png", encode_srgb8(o)[:, :, ::-1])
        p = subprocess.run([sys.executable, os.path.join(ROOT, "..", "score.py"), "--scenes", ROOT,
                            "--outputs", out, "--quiet"], capture_output=True, text=True)
        print(var, p.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
