"""Builder of the guided-upsampling graph: brings the low-resolution lens blur back to full resolution.

The full-resolution CoC map (``rho``, in low-resolution pixels, as used to build the
slices) is the guide.  It gives, at full resolution and with sharp edges, the matte of
the in-focus layer ``m`` and whether a pixel lies in front of the focal plane.  The
result is::

    X   = m * image + (1 - m) * up(behind)
    out = up(front.rgb) + up(1 - front.alpha) * X

where ``behind`` is the blurred scene behind the focal plane (``back`` of the lens-blur
graph), or, at pixels of objects in front of the focal plane (rho >= 1), that scene with
the in-focus layer's disocclusion fill over it (``backf``).

so in-focus pixels that nothing blurred lies over come back exactly as they were, the
silhouette of a sharp subject is cut at full resolution (no blurred background bleeds
into it and no subject colour leaks into the background), and only the blurred layers,
which carry no fine detail, are interpolated (bilinear, half-pixel centres).

The caller may process the image in strips: ``upsize`` is the size of the upsampled
low-resolution chunk and ``crop`` the offset of the strip inside it.
"""
from __future__ import annotations

from onnx import TensorProto

from . import GRAPH_VERSIONS
from ._graph import GraphBuilder

NAME = "guided_upsample"
VERSION = GRAPH_VERSIONS[NAME]


def build():
    g = GraphBuilder(NAME)
    image = g.input("image", [1, "H", "W", 3])          # channels last: no transposes at full size
    rho = g.input("rho", [1, "H", "W", 1])
    low = g.input("low", [1, "h", "w", 10])             # front rgb, 1 - front alpha, back, backf
    upsize = g.input("upsize", [2], TensorProto.INT64)
    crop = g.input("crop", [2], TensorProto.INT64)

    sizes = g.op("Concat", [g.i64(1), upsize, g.i64(10)], axis=0)
    up = g.op("Resize", [low, "", "", sizes], mode="linear",
              coordinate_transformation_mode="half_pixel")
    hw = g.op("Slice", [g.op("Shape", [image]), g.i64(1), g.i64(3), g.i64(0)])
    up = g.op("Slice", [up, crop, g.add(crop, hw), g.i64(1, 2)])

    is_front = g.op("Cast", [g.op("GreaterOrEqual", [rho, g.const(1.0)])], to=TensorProto.FLOAT)
    m = g.mul(g.clip01(g.add(rho, g.const(1.0))), g.one_minus(is_front))
    last = lambda a, b: g.op("Slice", [up, g.i64(a), g.i64(b), g.i64(3)])
    f_rgb, transmit, b, bf = last(0, 3), last(3, 4), last(4, 7), last(7, 10)
    behind = g.add(b, g.mul(is_front, g.sub(bf, b)))
    x = g.add(behind, g.mul(m, g.sub(image, behind)))
    out = g.add(f_rgb, g.mul(transmit, x))
    g.output(g.clip01(out), "linear", [1, "H", "W", 3])
    return g.model(VERSION, __doc__.split("\n\n")[0])
