"""Disparity from a monocular depth network (ONNX), run by onnxruntime.

Pipeline for one photo (linear RGB, float32, orientation applied):

1. sRGB-encode (the networks were trained on sRGB images) with a 16-bit lookup table;
2. resize to the network's input size with ``cv2.INTER_CUBIC``:

   * Depth Anything V2: keep the aspect ratio, shorter side 518, longer side
     ``518 * long / short`` rounded to the *nearest* multiple of 14 (halves up, at
     least 518) -- e.g. 4000x3000 -> 686x518;
   * MiDaS v2.1 small: 256x256 (the aspect is not kept, as in MiDaS' own ONNX runner);
   * a fixed input size read from the session overrides the registry;

3. scale to [0, 1], subtract the ImageNet mean and divide by its std per channel, RGB
   order, NCHW, in the session's input dtype (float32 or float16);
4. run; the output ((N,H,W) or (N,1,H,W)) is relative inverse depth (larger = nearer);
5. robust normalisation: the 1st and 99th percentiles map to 0 and 1, clipped;
6. edge-aware upsampling to the photo's size, guided by the photo (:mod:`.guided`).

Tensor names, dtypes and which dimensions are fixed are read from the loaded
InferenceSession; the registry's names are only used to choose among several outputs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError, ModelError
from .models import ModelSpec, get_spec, default_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LOW_PCT, HIGH_PCT = 1.0, 99.0

_SRGB_LUT = None


def _threads() -> int:
    from .. import runtime
    return min(8, runtime.threads())


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear float -> sRGB-encoded float32 in [0, 1] through a 65536-entry table (error < 1.2e-4).

    ``cv2.multiply`` to CV_16U scales, rounds and saturates in one multithreaded pass;
    the table lookup follows: about 0.1 s for 12 MP.
    """
    import cv2
    global _SRGB_LUT
    if _SRGB_LUT is None:
        from ..color import linear_to_srgb
        _SRGB_LUT = linear_to_srgb(np.arange(65536) / 65535.0).astype(np.float32)
    q = cv2.multiply(np.asarray(linear, np.float32), 65535.0, dtype=cv2.CV_16U)
    return _SRGB_LUT[q]


@dataclass(frozen=True)
class InputRules:
    resize: str = "short_side"          # "short_side" or "fixed"
    short_side: int = 518
    multiple: int = 14
    size: tuple | None = None           # (H, W) for "fixed"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    @classmethod
    def from_registry(cls, rec: dict) -> "InputRules":
        if rec.get("resize") == "fixed":
            h, w = rec["size"]
            return cls(resize="fixed", size=(int(h), int(w)), mean=tuple(rec["mean"]), std=tuple(rec["std"]))
        return cls(resize="short_side", short_side=int(rec["short_side"]), multiple=int(rec["multiple"]),
                   mean=tuple(rec["mean"]), std=tuple(rec["std"]))


def _round_multiple(x: float, m: int) -> int:
    return int(math.floor(x / m + 0.5)) * m


def network_size(h: int, w: int, rules: InputRules) -> tuple[int, int]:
    """(height, width) the network sees for a photo of h x w pixels."""
    if rules.resize == "fixed":
        return tuple(rules.size)
    m = rules.multiple
    short = max(m, _round_multiple(rules.short_side, m))
    long_ = max(short, _round_multiple(max(h, w) * short / min(h, w), m))
    return (short, long_) if h <= w else (long_, short)


@dataclass(frozen=True)
class SessionIO:
    input_name: str
    input_dtype: type
    fixed_hw: tuple | None
    output_name: str
    provider: str


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def inspect_session(sess, spec: ModelSpec, path) -> SessionIO:
    """Names, dtype and fixed dimensions of a depth network, read from its session."""
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path}: a depth model must have one input (an image); this one has "
                         f"{len(inputs)}: {', '.join(i.name for i in inputs)}")
    inp = inputs[0]
    if inp.type not in _DTYPES:
        raise ModelError(f"{path}: input {inp.name!r} has type {inp.type}; expected tensor(float) or tensor(float16)")
    shape = list(inp.shape)
    if len(shape) != 4:
        raise ModelError(f"{path}: input {inp.name!r} has shape {shape}; expected (N, 3, H, W)")
    if isinstance(shape[1], int) and shape[1] != 3:
        raise ModelError(f"{path}: input {inp.name!r} has {shape[1]} channels; expected 3 (RGB, NCHW)")
    fixed = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
    outputs = sess.get_outputs()
    want = spec.tensors.get("output")
    names = [o.name for o in outputs]
    out_name = want if want in names else names[0]
    return SessionIO(inp.name, _DTYPES[inp.type], fixed, out_name, sess.get_providers()[0])


def rules_for(spec: ModelSpec, io: SessionIO) -> InputRules:
    """Input rules: the registry's family; for a user's file, guessed from the session
    (a fixed input size -> that size; dynamic -> Depth Anything's rules); a fixed size
    in the session always wins over the registry."""
    if spec.input:
        rules = InputRules.from_registry(spec.input)
    else:
        rules = InputRules.from_registry(get_spec(default_name()).input)
    if io.fixed_hw is not None:
        rules = InputRules(resize="fixed", size=io.fixed_hw, mean=rules.mean, std=rules.std)
    return rules


def preprocess(srgb: np.ndarray, rules: InputRules, dtype=np.float32) -> np.ndarray:
    """(H, W, 3) sRGB float in [0, 1] -> (1, 3, h, w) network input."""
    import cv2
    nh, nw = network_size(srgb.shape[0], srgb.shape[1], rules)
    x = cv2.resize(np.asarray(srgb, np.float32), (nw, nh), interpolation=cv2.INTER_CUBIC)
    x = (x - np.array(rules.mean, np.float32)) / np.array(rules.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(dtype, copy=False)


def run_network(sess, io: SessionIO, x: np.ndarray, path) -> np.ndarray:
    """Run the session; return the output as a 2-D float32 array (network resolution)."""
    try:
        out = sess.run([io.output_name], {io.input_name: x})[0]
    except Exception as e:  # onnxruntime raises its own types
        raise ModelError(f"{path}: the depth model failed on a {x.shape[3]}x{x.shape[2]} input ({e})") from e
    out = np.asarray(out)
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ModelError(f"{path}: output {io.output_name!r} has shape {np.shape(out)}; expected (N, H, W) or "
                         "(N, 1, H, W)")
    out = out.astype(np.float32)
    if not np.isfinite(out).all():
        raise ModelError(f"{path}: the depth model produced NaN or infinite values (damaged file?); "
                         "check it with: refocus models verify")
    return out


def normalise(raw: np.ndarray, low: float = LOW_PCT, high: float = HIGH_PCT) -> np.ndarray:
    """Relative inverse depth -> disparity in [0, 1]: the `low`/`high` percentiles go to 0/1, clipped.

    A flat map (no depth information) becomes 0.5 everywhere.
    """
    lo, hi = np.percentile(raw, [low, high])
    if not hi - lo > 1e-12 * max(1.0, abs(hi)):
        return np.full(raw.shape, 0.5, np.float32)
    d = (raw.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(d, 0.0, 1.0, out=d)


def predict(linear: np.ndarray, spec: ModelSpec, path, *, device: str = "auto", refine: bool = True,
            srgb: np.ndarray | None = None) -> tuple[np.ndarray, str, dict]:
    """Disparity (H, W) in [0, 1] of a linear RGB photo by the model file `path`.

    Returns (disparity, one-line description, timings in seconds).
    """
    import cv2

    from .. import runtime
    from . import guided
    lin = np.asarray(linear, np.float32)
    if lin.ndim == 2:
        lin = np.repeat(lin[..., None], 3, axis=2)
    if lin.ndim != 3 or lin.shape[2] != 3 or min(lin.shape[:2]) < 2:
        raise BadInputError(f"image: expected (H, W, 3) linear RGB, got shape {lin.shape}")
    t0 = time.perf_counter()
    sess = runtime.session_for_file(path, device)
    io = inspect_session(sess, spec, path)
    rules = rules_for(spec, io)
    t1 = time.perf_counter()
    if srgb is None:
        srgb = srgb_encode(lin)
    x = preprocess(srgb, rules, io.input_dtype)
    t2 = time.perf_counter()
    raw = run_network(sess, io, x, path)
    t3 = time.perf_counter()
    d = normalise(raw)
    H, W = lin.shape[:2]
    if refine:
        d = guided.refine(d, srgb)
    else:
        d = np.clip(cv2.resize(d, (W, H), interpolation=cv2.INTER_LINEAR), 0, 1)
    t4 = time.perf_counter()
    fp16 = ", float16" if io.input_dtype == np.float16 else ""
    detail = f"{spec.title} on {io.provider} (input {x.shape[3]}x{x.shape[2]}{fp16})"
    return d, detail, {"load": t1 - t0, "preprocess": t2 - t1, "inference": t3 - t2, "postprocess": t4 - t3}
