"""Depth for refocus: where a photo's disparity map comes from.

``estimate_depth(photo_or_path, source="auto")`` returns a :class:`DepthResult` whose
``disparity`` is float32 (H, W) in [0, 1], 1 = nearest, at the photo's displayed size.
Sources, in the order ``auto`` tries them:

* ``embedded`` -- a depth map stored inside the photo (Google GDepth / Dynamic Depth,
  Apple portrait), read by :mod:`refocus.depth.embedded`;
* ``model``    -- a monocular depth network from the registry (``refocus models``),
  installed in the cache folder, or any compatible ``.onnx`` file (``model=PATH``);
* ``fallback`` -- the offline default that needs no weights (:mod:`refocus.depth.fallback`).

Heavy modules load on first use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SOURCES = ("auto", "embedded", "model", "fallback")


@dataclass
class DepthResult:
    """A disparity map and where it came from.

    disparity : float32 (H, W) in [0, 1], 1 = nearest, at the photo's displayed size
    source    : "embedded", "model", "fallback" or "file"
    detail    : one line, e.g. "Depth Anything V2 Small (fp32) on CPUExecutionProvider ..."
    timings   : seconds per stage
    original  : an unblurred original image found inside the file (float32 linear RGB), or
                None; when present the renderer must refocus from it, not from the photo
    """
    disparity: np.ndarray
    source: str
    detail: str = ""
    timings: dict = field(default_factory=dict)
    original: np.ndarray | None = None

    @property
    def clean_edges(self) -> bool:
        """Whether the renderer cleans up this map's depth edges (:mod:`refocus.depth.edges`):
        not the offline default's, whose soft edges are mattes made on purpose."""
        return self.source != "fallback"


def estimate_depth(photo_or_path, *, source: str = "auto", model=None, device: str = "auto",
                   subject_mask=None, hints=None) -> DepthResult:
    """Disparity of a photo (a path, a :class:`refocus.imageio.Photo` or linear RGB array).

    See :func:`refocus.depth.sources.estimate_depth`.
    """
    from .sources import estimate_depth as _estimate
    return _estimate(photo_or_path, source=source, model=model, device=device, subject_mask=subject_mask,
                     hints=hints)


__all__ = ["DepthResult", "estimate_depth", "SOURCES"]
