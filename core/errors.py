"""Error types of refocus.

Every error refocus raises on purpose derives from :class:`RefocusError`; the CLI prints
its message (no traceback unless ``--debug``).  Messages name the file or parameter, what
was expected and what was found, and how to fix it.
"""
from __future__ import annotations


class RefocusError(Exception):
    """Base class of all errors refocus raises on purpose."""


class BadInputError(RefocusError, ValueError):
    """A parameter or an input array/file has an invalid value."""


class UnsupportedFormatError(RefocusError, OSError):
    """A file is not an image refocus can read (or write), or it is damaged."""


class ModelError(RefocusError):
    """An ONNX graph or depth model is missing, corrupt or of the wrong version."""


class OutputError(RefocusError, OSError):
    """An output file cannot be written."""
