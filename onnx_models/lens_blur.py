"""Builder of the lens-blur graph: layered (depth-sliced) thin-lens rendering at reduced resolution.

The core splits the photo into ``2*R + 1`` depth slices by signed circle of confusion
(slot ``i`` holds the pixels whose CoC, in low-resolution pixels, lies around
``rho = i - R``; neighbouring slots share a pixel with linear weights, so continuous
depth gives continuous blur).  Each slot carries five channels::

    0..2  colour premultiplied by the slot's matte (linear light)
    3     matte (alpha) of the slot
    4     "floor count": fraction of the low-res pixel whose CoC floors to this slot

The graph, per slot and from far to near:

1. *disocclusion fill*: the slot's content is extended, by pull-push interpolation,
   into the area covered by nearer slots (where the photo cannot show what is
   behind them).  Farther pixels count as known and transparent, so a slot never
   grows over what lies behind it.
2. *lens blur*: convolution with the slot's aperture kernel (disc or polygon of radius
   ``|rho|``, supplied by the caller), with edge-replicated borders so the blur
   at the frame edge uses content continued beyond the frame.
3. *compositing* with the "over" operator.

Slots behind the focal plane are accumulated into ``back`` (opaque after filling);
``backf`` is ``back`` with the in-focus slot (unblurred, filled) over it, used under
foreground objects; the slots in front of the focal plane are accumulated into
``front`` (premultiplied colour + coverage), which the guided-upsampling graph lays over
the full-resolution in-focus layer.
"""
from __future__ import annotations

from onnx import TensorProto

from . import GRAPH_VERSIONS, kernel_input_name
from ._graph import GraphBuilder

NAME = "lens_blur"
VERSION = GRAPH_VERSIONS[NAME]
RADIUS_SLOTS = 12          # R: slots cover rho in [-R, R] low-res pixels
PYRAMID_LEVELS = 11       # pull-push levels: enough for 2048 px low-res images
EPS = 1e-6


def _fill(g: GraphBuilder, layer: str, known: str) -> str:
    """Pull-push fill of a premultiplied RGBA layer where `known` < 1.

    layer: (N,4,h,w) premultiplied colour + alpha, already scaled by `known`.
    known: (N,1,h,w) fraction of each pixel whose content is known (this slot or farther).
    Returns the layer with the unknown part replaced by interpolated content.
    """
    # the pull uses colour clipped to the clip level: recovered highlights (colour > 1)
    # keep their energy where they are, but are not smeared into the filled area
    rgb, alpha = g.channels(layer, 0, 3), g.channels(layer, 3, 4)
    clipped = g.op("Min", [rgb, alpha])
    data = [g.op("Concat", [clipped, alpha, known], axis=1)]
    for _ in range(PYRAMID_LEVELS):
        avg = g.op("AveragePool", [data[-1]], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
        k = g.channels(avg, 4, 5)
        k_new = g.op("Min", [g.mul(k, g.const(4.0)), g.const(1.0)])
        scale = g.div(k_new, g.op("Max", [k, g.const(EPS)]))
        data.append(g.mul(avg, scale))
    top = data[-1]
    filled = g.div(g.channels(top, 0, 4), g.op("Max", [g.channels(top, 4, 5), g.const(EPS)]))
    for lvl in range(PYRAMID_LEVELS - 1, -1, -1):
        d = data[lvl]
        up = g.resize_to(filled, d)
        own = layer if lvl == 0 else g.channels(d, 0, 4)
        filled = g.add(own, g.mul(g.one_minus(g.channels(d, 4, 5)), up))
    return filled


def _blur(g: GraphBuilder, layer: str, kernel: str) -> str:
    """Convolve a (1,4,h,w) layer with a (4,1,k,k) kernel, edge-replicated borders."""
    kshape = g.op("Shape", [kernel])
    k = g.op("Slice", [kshape, g.i64(2), g.i64(3), g.i64(0)])
    p = g.op("Div", [g.sub(k, g.i64(1)), g.i64(2)])
    zero = g.i64(0)
    pads = g.op("Concat", [zero, zero, p, p, zero, zero, p, p], axis=0)
    padded = g.op("Pad", [layer, pads], mode="edge")
    return g.op("Conv", [padded, kernel], group=4)


def _over(g: GraphBuilder, top: str, bottom: str | None) -> str:
    """Premultiplied "over": top + (1 - alpha_top) * bottom (4 channels)."""
    if bottom is None:
        return top
    return g.add(top, g.mul(g.one_minus(g.channels(top, 3, 4)), bottom))


def _unpremultiply(g: GraphBuilder, layer: str) -> str:
    return g.div(g.channels(layer, 0, 3), g.op("Max", [g.channels(layer, 3, 4), g.const(1e-4)]))


def build():
    R = RADIUS_SLOTS
    S = 2 * R + 1
    g = GraphBuilder(NAME)
    # only the slots that hold something, in slot order, and one all-zero slot; slot_index[i]
    # is the row of slot i (empty slots: the zero row).  Most photos fill a few of the 2R + 1
    # slots, and the fill's pyramid then runs on those only.
    slices = g.input("slices", ["n", 5, "h", "w"])
    slot_index = g.input("slot_index", [S], TensorProto.INT64)
    kernels = {i: g.input(kernel_input_name(i), [4, 1, f"k{i}", f"k{i}"]) for i in range(S) if i != R}
    # empty slots have no floor count: summed over the rows present, the same as over all slots
    known = g.op("CumSum", [g.channels(slices, 4, 5), g.const(0, dtype="int64")])
    known = g.op("Min", [known, g.const(1.0)])
    # one batched pull-push fills every slot present at once (slots are the batch dimension)
    filled = _fill(g, g.channels(slices, 0, 4), known)

    def row(i):
        return g.op("Slice", [slot_index, g.i64(i), g.i64(i + 1), g.i64(0)])

    def slot_layer(i):
        return g.op("Gather", [filled, row(i)], axis=0)

    # An empty slot (its row is the zero row, the last) leaves the composite as it is: its
    # gather, padding, 1x1 convolution and "over" are skipped by an If (12 MP portrait, 2 of
    # 24 slots occupied: the graph's run 97 -> 78 ms).  Composites start from the zero row
    # (over(top, 0) = top exactly).
    zero_row = g.op("Sub", [g.op("Slice", [g.op("Shape", [slices]), g.i64(0), g.i64(1), g.i64(0)]), g.i64(1)])
    zero = g.op("Gather", [filled, zero_row], axis=0)

    def composite(slots, below):
        for i in slots:                      # far to near
            occupied = g.op("Less", [row(i), zero_row])
            below = g.if_(occupied, lambda i=i, below=below: _over(g, _blur(g, slot_layer(i), kernels[i]), below),
                          lambda below=below: below)
        return below

    back = composite(range(R), zero)         # behind the focal plane
    backf = _over(g, slot_layer(R), back)    # in-focus slot, unblurred
    front = composite(range(R + 1, S), zero) # in front of the focal plane

    g.output(_unpremultiply(g, back), "back", [1, 3, "h", "w"])
    g.output(_unpremultiply(g, backf), "backf", [1, 3, "h", "w"])
    g.output(front, "front", [1, 4, "h", "w"])
    return g.model(VERSION, __doc__.split("\n\n")[0],
                   {"radius_slots": R, "pyramid_levels": PYRAMID_LEVELS})
