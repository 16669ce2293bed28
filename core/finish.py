"""Finishing steps after the lens: grain, texture, borders, saturation.

Each works in linear light on the rendered image, using the original and the signed CoC
map to know where (and how much) the image was blurred.
"""
from __future__ import annotations

import numpy as np


def apply(out, original, coc, settings, *, notes=None):
    """Apply the finishing steps the settings ask for; returns the new image."""
    notes = notes if notes is not None else []
    if settings.saturation != 1.0:
        out = saturate(out, settings.saturation)
        notes.append(f"finish: saturation x{settings.saturation:g}")
    return out


def saturate(img, amount: float):
    """Scale the colourfulness around each pixel's luminance (Rec. 709 weights, linear light)."""
    if img.ndim == 2 or img.shape[2] == 1:
        return img
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.clip(y[..., None] + (img - y[..., None]) * np.float32(amount), 0, 1).astype(np.float32)
