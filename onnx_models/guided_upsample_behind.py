"""Builder of ``guided_upsample_behind``: guided upsampling when nothing lies in front of the
focal plane (see :func:`guided_upsample.build`)."""
from __future__ import annotations

from . import GRAPH_VERSIONS
from . import guided_upsample

NAME = "guided_upsample_behind"
VERSION = GRAPH_VERSIONS[NAME]


def build():
    return guided_upsample.build(front=False, name=NAME, version=VERSION)
