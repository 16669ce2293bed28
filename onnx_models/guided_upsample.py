"""Builder of the guided-upsampling graph: brings the low-resolution lens blur back to full resolution.

The full-resolution CoC map (``rho``, in low-resolution pixels, as used to build the
slices) is the guide.  It gives, at full resolution and with sharp edges, the matte of
the in-focus layer ``m`` and the pixels of objects in front of the focal plane
``f = [rho >= 1]`` (where ``m = 0``).  The caller gives four low-resolution fields, each
upsampled on its own (bilinear, half-pixel centres; no channel slicing at full size)::

    blur        A = F + T * back     the lens's picture where the photo is blurred
    blur_front  D = T * (backf - back)   what changes under objects in front of the focus
    front       F                    blurred foreground, premultiplied
    transmit    T = 1 - front alpha  how much of what lies behind it shows through

and the result is::

    out = m * (up(F) + up(T) * image) + (1 - m) * up(A) + f * up(D)

``back`` is the blurred scene behind the focal plane and ``backf`` that scene with the
in-focus layer's disocclusion fill over it (what lies under a foreground object).  So
in-focus pixels that nothing blurred lies over come back exactly as they were, the
silhouette of a sharp subject is cut at full resolution (no blurred background bleeds
into it and no subject colour leaks into the background), and only the blurred layers,
which carry no fine detail, are interpolated.  (Version 1 upsampled F, T and back
separately and multiplied them at full size; upsampling the composite A instead is as
exact where T is smooth, which it is at the scale of a low-resolution pixel, and takes
fewer full-resolution passes.)

The caller may process the image in strips: ``upsize`` is the size of the upsampled
low-resolution chunk and ``crop`` the offset of the strip inside it.
"""
from __future__ import annotations

from onnx import TensorProto

from . import GRAPH_VERSIONS
from ._graph import GraphBuilder

NAME = "guided_upsample"
VERSION = GRAPH_VERSIONS[NAME]
FIELDS = (("blur", 3), ("blur_front", 3), ("front", 3), ("transmit", 1))   # low-res inputs, channels


def build(front: bool = True, name: str = NAME, version: str = VERSION):
    """The graph; ``front=False`` builds ``guided_upsample_behind``: the same upsampling when
    nothing lies in front of the focal plane (``F = 0``, ``T = 1``, ``f = 0``, so
    ``out = m * image + (1 - m) * up(A)``), the common case of focus on the nearest subject,
    with 3 upsampled channels instead of 10."""
    g = GraphBuilder(name)
    # Layout: planes (N, C, H, W), the photo transposed once each way.  onnxruntime
    # multiplies a one-channel mask into three channels fast when the channel is the leading
    # axis, and element by element when it is the last (a 1 MP strip's product 9.3 ms
    # channels last, 1 ms on planes), and it resizes planes faster too (3.0 vs 6.7 ms for
    # three channels); a transpose costs about 0.6 ms.  The short graph was channels last
    # until session 9 (a 1 MP strip there: 32 -> 26 ms interleaved in one process); rho and
    # the low-resolution fields are planes, as the lens graph makes them.
    image = g.input("image", [1, "H", "W", 3])
    rho = g.input("rho", [1, 1, "H", "W"])
    fields = FIELDS if front else FIELDS[:1]
    low = {n: g.input(n, [1, c, "h", "w"]) for n, c in fields}
    upsize = g.input("upsize", [2], TensorProto.INT64)
    crop = g.input("crop", [2], TensorProto.INT64)
    hw = g.op("Slice", [g.op("Shape", [image]), g.i64(1), g.i64(3), g.i64(0)])
    image = g.op("Transpose", [image], perm=[0, 3, 1, 2])

    def up(n, c):
        sizes = g.op("Concat", [g.i64(1, c), upsize], axis=0)
        u = g.op("Resize", [low[n], "", "", sizes], mode="linear",
                 coordinate_transformation_mode="half_pixel")
        return g.op("Slice", [u, crop, g.add(crop, hw), g.i64(2, 3)])

    u = {n: up(n, c) for n, c in fields}
    if front:
        # out = sharp + (1 - m) (A - sharp) + f D with f D inside the product (f = 1 implies
        # 1 - m = 1), and 1 - m = clip01(-rho) + f: full-size products of a one-channel mask
        # with three channels are what costs (onnxruntime broadcasts them slowly), so three
        # of them instead of four; where m = 1 the result is still exactly `sharp`
        is_front = g.clip01(g.op("Floor", [rho]))     # f = [rho >= 1], exactly 0 or 1 (faster than a compare)
        blurred = g.add(g.clip01(g.op("Neg", [rho])), is_front)           # 1 - m
        sharp = g.add(u["front"], g.mul(u["transmit"], image))
        change = g.add(g.sub(u["blur"], sharp), g.mul(is_front, u["blur_front"]))
        out = g.add(sharp, g.mul(blurred, change))
    else:
        # out = image + (1 - m) (up(A) - image), 1 - m = clip01(-rho): one full-size broadcast
        # product fewer than m image + (1 - m) up(A), and still exactly `image` where m = 1
        blurred = g.clip01(g.op("Neg", [rho]))
        out = g.add(image, g.mul(blurred, g.sub(u["blur"], image)))
    out = g.op("Transpose", [g.clip01(out)], perm=[0, 2, 3, 1])
    g.output(out, "linear", [1, "H", "W", 3])
    return g.model(version, __doc__.split("\n\n")[0] if front else build.__doc__.split("\n")[0])
