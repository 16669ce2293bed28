"""Status lines of the project's own graphs (for ``refocus info``)."""
from __future__ import annotations


def graph_lines() -> list[str]:
    from refocus import onnx_models
    from .errors import ModelError
    from .runtime import graph_session
    lines = []
    for name in sorted(onnx_models.GRAPH_VERSIONS):
        try:
            graph_session(name, "cpu")
            lines.append(f"graph {name} v{onnx_models.expected_version(name)}: ok ({onnx_models.graph_path(name)})")
        except ModelError as e:
            lines.append(f"graph {name}: PROBLEM: {e}")
    return lines
