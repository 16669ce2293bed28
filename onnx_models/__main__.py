"""Rebuild (or check) the shipped ONNX graphs: ``python -m refocus.onnx_models [--check]``."""
from __future__ import annotations

import argparse
import sys

from . import GRAPH_DIR, build_all, build_bytes, builders, graph_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m refocus.onnx_models", description=__doc__)
    ap.add_argument("--check", action="store_true", help="only compare the shipped graphs with a fresh build")
    args = ap.parse_args(argv)
    if args.check:
        stale = [n for n in sorted(builders())
                 if not graph_path(n).exists() or graph_path(n).read_bytes() != build_bytes(n)]
        for n in stale:
            print(f"stale: {graph_path(n)}")
        return 1 if stale else 0
    manifest = build_all()
    for name, info in manifest.items():
        print(f"{name} v{info['version']}: {info['nodes']} nodes, sha256 {info['sha256'][:16]} -> {GRAPH_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
