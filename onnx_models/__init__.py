"""The project's own ONNX graphs (lens blur, guided upsampling): builders and shipped files.

The graphs are weight-free and built by the scripts in this package.  The built files
live in ``graphs/`` together with ``manifest.json`` (version, opset, inputs, outputs,
sha256).  Rebuild them with::

    python -m refocus.onnx_models            # writes graphs/*.onnx and the manifest
    python -m refocus.onnx_models --check    # exit 1 if the shipped files are stale

The runtime loads a shipped graph only if its stamped version matches its
``GRAPH_VERSIONS`` entry; otherwise it refuses and names the command above.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

GRAPH_DIR = Path(__file__).resolve().parent / "graphs"
# The version of each graph; bump it whenever a builder's output changes.  Kept here (not in
# the builders, which import onnx) so the runtime can check versions without onnx installed.
GRAPH_VERSIONS = {
    "lens_blur": "1.3.0",
    "guided_upsample": "3.0.0",
    "guided_upsample_behind": "3.0.0",
}
MANIFEST = GRAPH_DIR / "manifest.json"


def kernel_input_name(slot: int) -> str:
    """Name of the lens-blur graph input that takes the aperture kernel of a slot."""
    return f"kernel_{slot:02d}"


def builders():
    from . import guided_upsample, guided_upsample_behind, lens_blur
    return {m.NAME: m for m in (lens_blur, guided_upsample, guided_upsample_behind)}


def graph_path(name: str) -> Path:
    return GRAPH_DIR / f"{name}.onnx"


def expected_version(name: str) -> str:
    return GRAPH_VERSIONS[name]


def build_bytes(name: str) -> bytes:
    return builders()[name].build().SerializeToString(deterministic=True)


def describe(name: str, data: bytes) -> dict:
    import onnx
    m = onnx.load_from_string(data)
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    return {
        "file": f"{name}.onnx",
        "version": {p.key: p.value for p in m.metadata_props}["refocus_graph_version"],
        "opset": m.opset_import[0].version,
        "inputs": {i.name: dims(i) for i in m.graph.input},
        "outputs": {o.name: dims(o) for o in m.graph.output},
        "nodes": len(m.graph.node),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def build_all(out_dir: Path = GRAPH_DIR) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name in sorted(builders()):
        data = build_bytes(name)
        (out_dir / f"{name}.onnx").write_bytes(data)
        manifest[name] = describe(name, data)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
