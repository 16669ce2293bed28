"""refocus: synthetic shallow depth of field for ordinary photos.

Scripting entry points (heavy modules load on first use)::

    import refocus
    out = refocus.render_linear(linear_rgb, disparity, focus_disparity=0.8, K=20.0)
    refocus.render_file("in.jpg", "out.jpg", depth="depth.png", focus_disparity=0.8, K=20)
    report = refocus.batch_run(["photos/"], "out/", preset="portrait", formats=("jpg", "psd"))
"""
from ._version import __version__

__all__ = ["__version__", "render_linear", "render_file", "RenderInfo",
           "batch_run", "RefocusError", "BadInputError", "UnsupportedFormatError", "ModelError", "OutputError"]

_LAZY = {
    "render_linear": ("lens", "render_linear"),
    "RenderInfo": ("lens", "RenderInfo"),
    "render_file": ("render", "render_file"),
    "batch_run": ("batch.runner", "run"),
    "RefocusError": ("errors", "RefocusError"),
    "BadInputError": ("errors", "BadInputError"),
    "UnsupportedFormatError": ("errors", "UnsupportedFormatError"),
    "ModelError": ("errors", "ModelError"),
    "OutputError": ("errors", "OutputError"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{mod}"), attr)
    raise AttributeError(f"module 'refocus' has no attribute {name!r}")
