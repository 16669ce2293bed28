"""refocus: synthetic shallow depth of field for ordinary photos.

One import name, ``refocus``; the top-level folders map onto it:

    core/         -> refocus              (the shared core: renderer, runtime, I/O, CLI)
    onnx_models/  -> refocus.onnx_models  (builders of the project's ONNX graphs + built files)
    batch/        -> refocus.batch        (folder processing)
    plugin_gimp/  -> refocus.plugin_gimp  (GIMP 3 plug-in)
"""
import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "core" / "_version.py").read_text()).group(1)

setup(
    name="refocus",
    version=VERSION,
    description="Synthetic shallow depth of field for ordinary photos (lens blur from a single image)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=["refocus", "refocus.io", "refocus.depth", "refocus.onnx_models", "refocus.batch",
              "refocus.plugin_gimp", "refocus.samples", "refocus.presets"],
    package_dir={
        "refocus": "core",
        "refocus.onnx_models": "onnx_models",
        "refocus.batch": "batch",
        "refocus.plugin_gimp": "plugin_gimp",
        "refocus.samples": "core/samples",
        "refocus.io": "core/io",
        "refocus.depth": "core/depth",
        "refocus.presets": "core/presets",
    },
    package_data={"refocus.onnx_models": ["graphs/*.onnx", "graphs/manifest.json"],
                  "refocus.samples": ["*.png"],
                  "refocus.depth": ["*.json"],
                  "refocus.presets": ["*.json"],
                  "refocus.plugin_gimp": ["refocus-gimp.py"]},
    install_requires=[
        "numpy>=1.23",
        "onnxruntime>=1.16",
        "pillow>=10",
        "click>=8.1",
        "opencv-python-headless>=4.8,<5",
        "tifffile>=2023.1",
        "platformdirs>=3",
        "rawpy>=0.18",
        "exifread>=3.0",
        "tqdm>=4.60",
    ],
    extras_require={
        "build-graphs": ["onnx>=1.15"],
        "heic": ["pillow-heif>=0.16"],
        "test": ["pytest>=7", "onnx>=1.15", "scikit-image>=0.21", "scipy>=1.9", "psd-tools>=1.9",
                 "pillow-heif>=0.16", "imagecodecs"],
    },
    entry_points={"console_scripts": ["refocus=refocus.cli:run"]},
)
