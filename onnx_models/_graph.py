"""A tiny deterministic ONNX graph builder used by the graph scripts in this folder.

Node and tensor names are generated from a counter, so the same builder code
always produces byte-identical models (no timestamps, no random ids).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17          # DirectML supports opsets up to 17; every op used here exists there
IR_VERSION = 8      # readable by every onnxruntime >= 1.14
PRODUCER = "refocus.onnx_models"


class GraphBuilder:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0
        self._consts: dict[tuple, str] = {}

    # -- naming -----------------------------------------------------------
    def _fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    # -- graph interface ------------------------------------------------------
    def input(self, name: str, shape, dtype=TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        return name

    def output(self, tensor: str, name: str, shape=None, dtype=TensorProto.FLOAT) -> str:
        self.op("Identity", [tensor], out=name)
        self.outputs.append(helper.make_tensor_value_info(name, dtype, shape))
        return name

    def const(self, value, dtype=np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._fresh("c")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def i64(self, *values) -> str:
        return self.const(list(values), np.int64)

    def op(self, op_type: str, inputs, out: str | None = None, **attrs) -> str:
        out = out or self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=self._fresh("n_" + op_type.lower()), **attrs))
        return out

    def if_(self, cond: str, then_fn, else_fn) -> str:
        """An ``If`` node: ``then_fn()`` / ``else_fn()`` build each branch's nodes (they may
        use any value of the enclosing graph) and return the one tensor it yields."""
        branches = []
        for fn in (then_fn, else_fn):
            outer, self.nodes = self.nodes, []
            try:
                res = fn()
                res = self.op("Identity", [res])          # a branch output of its own
                body = self.nodes
            finally:
                self.nodes = outer
            branches.append(helper.make_graph(body, self._fresh("branch"), [],
                                              [helper.make_tensor_value_info(res, TensorProto.FLOAT, None)]))
        return self.op("If", [cond], then_branch=branches[0], else_branch=branches[1])

    # -- small helpers --------------------------------------------------------
    def channels(self, x: str, start: int, stop: int) -> str:
        return self.op("Slice", [x, self.i64(start), self.i64(stop), self.i64(1)])

    def index0(self, x: str, i: int) -> str:
        return self.op("Slice", [x, self.i64(i), self.i64(i + 1), self.i64(0)])

    def add(self, a, b): return self.op("Add", [a, b])
    def sub(self, a, b): return self.op("Sub", [a, b])
    def mul(self, a, b): return self.op("Mul", [a, b])
    def div(self, a, b): return self.op("Div", [a, b])

    def one_minus(self, a):
        return self.sub(self.const(1.0), a)

    def clip01(self, a):
        return self.op("Clip", [a, self.const(0.0), self.const(1.0)])

    def resize_to(self, x: str, like: str, mode: str = "linear") -> str:
        """Resize x (N,C,h,w) to the spatial size of `like` (N,C',H,W), half-pixel centres."""
        shape_like = self.op("Shape", [like])
        hw = self.op("Slice", [shape_like, self.i64(2), self.i64(4), self.i64(0)])
        shape_x = self.op("Shape", [x])
        nc = self.op("Slice", [shape_x, self.i64(0), self.i64(2), self.i64(0)])
        sizes = self.op("Concat", [nc, hw], axis=0)
        return self.op("Resize", [x, "", "", sizes], mode=mode,
                       coordinate_transformation_mode="half_pixel", nearest_mode="floor")

    # -- model -------------------------------------------------------------------
    def model(self, version: str, doc: str, extra_meta: dict | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs,
                                  initializer=self.initializers)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version=version,
                              ir_version=IR_VERSION, doc_string=doc)
        meta = {"refocus_graph": self.name, "refocus_graph_version": version}
        meta.update(extra_meta or {})
        for k in sorted(meta):
            entry = m.metadata_props.add()
            entry.key, entry.value = k, str(meta[k])
        onnx.checker.check_model(m)
        return m
