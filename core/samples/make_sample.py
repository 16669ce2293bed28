"""Generate the bundled sample scene deterministically: ``python -m refocus.samples.make_sample``.

A textured wall far behind (d = 0.1) with small lights, a post at mid depth (d = 0.5),
a ground plane receding from the bottom edge (slanted: d from 0.75 to 0.1) and a sign
in front (d = 0.85).  Everything is synthetic, so the files are free of third-party rights.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import DISPARITY, PHOTO

W, H = 640, 480


def make():
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    # far wall: bricks with noise
    wall = np.zeros((H, W, 3), np.float32)
    brick = ((np.floor(y / 24) % 2) * 20 + x) % 64 < 60
    mortar = (y % 24) < 3
    base = np.where((brick & ~mortar)[..., None], [0.45, 0.22, 0.15], [0.6, 0.58, 0.55])
    wall[:] = base * (0.85 + 0.3 * rng.random((H, W, 1)))
    disp = np.full((H, W), 0.1, np.float32)
    img = wall
    # small lights on the wall: clipped white dots
    for _ in range(18):
        cx, cy = rng.integers(20, W - 20), rng.integers(20, 200)
        cv2.circle(img, (int(cx), int(cy)), 2, (1.0, 1.0, 1.0), -1, cv2.LINE_AA)
    # slanted ground from the bottom (near) to y = 300 (far)
    g = y >= 300
    t = np.clip((y - 300) / (H - 300), 0, 1)
    ground = np.stack([0.35 + 0.1 * np.sin(x / 7 + y / 5), 0.33 + 0.05 * rng.random((H, W)), 0.28 + 0 * x], -1)
    img = np.where(g[..., None], ground * (0.8 + 0.4 * rng.random((H, W, 1))), img)
    disp = np.where(g, 0.1 + 0.65 * t, disp)
    # post at mid depth
    post = (np.abs(x - 420) < 14) & (y > 60)
    img = np.where(post[..., None], [0.2, 0.25, 0.3] * (0.9 + 0.2 * rng.random((H, W, 1))), img)
    disp = np.where(post, 0.5, disp)
    cv2.circle(img, (420, 60), 26, (0.95, 0.8, 0.3), -1, cv2.LINE_AA)
    lamp = (x - 420) ** 2 + (y - 60) ** 2 <= 26 ** 2
    disp = np.where(lamp, 0.5, disp)
    # sign in front
    sign = (x > 60) & (x < 300) & (y > 250) & (y < 380)
    img = np.where(sign[..., None], [0.1, 0.35, 0.15], img)
    img = np.ascontiguousarray(img, dtype=np.float32)
    cv2.putText(img, "REFOCUS", (78, 330), cv2.FONT_HERSHEY_DUPLEX, 1.5, (0.95, 0.95, 0.95), 3, cv2.LINE_AA)
    disp = np.where(sign, 0.85, disp)
    srgb = np.where(img <= 0.0031308, img * 12.92, 1.055 * np.clip(img, 0, 1) ** (1 / 2.4) - 0.055)
    cv2.imwrite(str(PHOTO), np.round(np.clip(srgb, 0, 1) * 255).astype(np.uint8)[..., ::-1])
    cv2.imwrite(str(DISPARITY), np.round(disp * 65535).astype(np.uint16))


if __name__ == "__main__":
    make()
