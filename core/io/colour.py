"""Colour: ICC profiles, linearisation and conversion between RGB working spaces.

Working space (the choice, and why)
-----------------------------------
Inside the core an image is **linear light in the file's own primaries**: an sRGB photo is
linear sRGB, an Adobe RGB photo linear Adobe RGB, a ProPhoto TIFF from a raw developer linear
ProPhoto.  Only the transfer curve (the profile's TRC) is undone at read and redone at write,
and the output carries the input's profile.  Reasons:

* Lens blur and guided upsampling are linear per channel and the same kernel is applied to
  the three channels, so they commute with any 3x3 change of primaries: blurring in linear
  Adobe RGB and converting afterwards gives the same picture as converting first.  Nothing
  is gained by a common space for the maths.
* Converting to a smaller space (linear sRGB) would push wide-gamut colours outside [0, 1]
  and the highlight stage, which looks for clipped values (1.0), would misread them;
  converting to a larger one (Rec.2020) costs two matrix passes and rounding for nothing.
* A round trip with zero blur is exact: the file comes back with the same code values and
  the same profile, which is what photographers check first.

Conversion to sRGB (``to_srgb`` on write) is a matrix in linear light through the ICC
profile connection space (D50 XYZ), clipped to [0, 1].

Profiles handled: matrix/TRC RGB profiles (sRGB, Adobe RGB (gamma 563/256), Display P3
(sRGB curve), ProPhoto (1.8), Rec.2020, linear profiles, ...) with ``curv`` (gamma or table)
or ``para`` (ICC parametric types 0-4) curves, and grey profiles (``kTRC``).  A profile that
cannot be parsed, or a LUT-based profile without TRC tags, is kept as opaque bytes and the
pixels are treated as sRGB-encoded (documented in ``docs/io.md``); ``ColourSpace.note`` says so.
A file without a profile is sRGB.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from .. import color as _srgb

# sRGB primaries adapted to D50 (the ICC PCS), as in every sRGB ICC profile
SRGB_TO_XYZ_D50 = np.array([[0.4360747, 0.3850649, 0.1430804],
                            [0.2225045, 0.7168786, 0.0606169],
                            [0.0139322, 0.0971045, 0.7141733]])


class Curve:
    """One tone reproduction curve: encoded value in [0, 1] <-> linear light."""

    def __init__(self, kind: str, params=(), table=None):
        self.kind = kind                 # "srgb", "gamma", "para", "table", "linear"
        self.params = tuple(float(p) for p in params)
        self.table = None if table is None else np.maximum.accumulate(np.asarray(table, np.float64))

    def __repr__(self):
        return f"Curve({self.kind}, {self.params})" if self.kind != "table" else f"Curve(table[{len(self.table)}])"

    # encoded -> linear
    def to_linear(self, x):
        x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
        k, p = self.kind, self.params
        if k == "srgb":
            return _srgb.srgb_to_linear(x)
        if k == "linear":
            return x
        if k == "gamma":
            return x ** p[0]
        if k == "table":
            return np.interp(x, np.linspace(0, 1, len(self.table)), self.table)
        g, a, b, c, d, e, f = (p + (0.0,) * 7)[:7]
        if len(p) == 3:                                   # type 1
            return np.where(x >= -b / a, np.maximum(a * x + b, 0) ** g, 0.0)
        if len(p) == 4:                                   # type 2
            return np.where(x >= -b / a, np.maximum(a * x + b, 0) ** g + c, c)
        if len(p) == 5:                                   # type 3
            return np.where(x >= d, np.maximum(a * x + b, 0) ** g, c * x)
        return np.where(x >= d, np.maximum(a * x + b, 0) ** g + e, c * x + f)   # type 4

    # linear -> encoded
    def to_encoded(self, y):
        y = np.clip(np.asarray(y, np.float64), 0.0, 1.0)
        k, p = self.kind, self.params
        if k == "srgb":
            return _srgb.linear_to_srgb(y)
        if k == "linear":
            return y
        if k == "gamma":
            return y ** (1.0 / p[0])
        if k == "table":
            return np.interp(y, self.table, np.linspace(0, 1, len(self.table)))
        g, a, b, c, d, e, f = (p + (0.0,) * 7)[:7]
        if len(p) in (3, 4):                              # types 1, 2: invert the power branch
            off = c if len(p) == 4 else 0.0
            return np.clip((np.maximum(y - off, 0) ** (1 / g) - b) / a, 0, 1)
        yd = (a * d + b) ** g + e if len(p) == 7 else (a * d + b) ** g
        lin = (y - f) / c if c else np.zeros_like(y)
        pw = (np.maximum(y - e, 0) ** (1 / g) - b) / a
        return np.clip(np.where(y >= yd, pw, lin), 0, 1)

    def is_srgb(self) -> bool:
        if self.kind == "srgb":
            return True
        x = np.linspace(0, 1, 1025)
        return bool(np.abs(self.to_linear(x) - _srgb.srgb_to_linear(x)).max() < 2e-3)


SRGB_CURVE = Curve("srgb")


@dataclass
class ColourSpace:
    """The RGB (or grey) space of a photo: its curves, its primaries, its profile bytes."""
    name: str = "sRGB"
    curves: tuple = (SRGB_CURVE, SRGB_CURVE, SRGB_CURVE)
    to_xyz: np.ndarray | None = field(default_factory=lambda: SRGB_TO_XYZ_D50.copy())   # None for grey
    icc: bytes | None = None
    note: str = ""

    @property
    def is_srgb(self) -> bool:
        """True when the pixels are sRGB (curve and primaries): the exact sRGB tables are used."""
        curves_ok = all(c.kind == "srgb" for c in self.curves)
        prim_ok = self.to_xyz is None or np.abs(self.to_xyz - SRGB_TO_XYZ_D50).max() < 2e-3
        return curves_ok and prim_ok

    @property
    def grey(self) -> bool:
        return self.to_xyz is None


SRGB = ColourSpace()


def _s15(b: bytes) -> float:
    return struct.unpack(">i", b)[0] / 65536.0


def _parse_curve(data: bytes) -> Curve:
    sig = data[:4]
    if sig == b"curv":
        n = struct.unpack(">I", data[8:12])[0]
        if n == 0:
            return Curve("linear")
        if n == 1:
            g = struct.unpack(">H", data[12:14])[0] / 256.0
            return Curve("linear") if abs(g - 1) < 1e-6 else Curve("gamma", (g,))
        table = np.frombuffer(data[12:12 + 2 * n], ">u2").astype(np.float64) / 65535.0
        return Curve("table", table=table)
    if sig == b"para":
        ftype = struct.unpack(">H", data[8:10])[0]
        nparams = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(ftype)
        if nparams is None:
            raise ValueError(f"unknown parametric curve type {ftype}")
        params = [_s15(data[12 + 4 * i:16 + 4 * i]) for i in range(nparams)]
        if ftype == 0:
            return Curve("linear") if abs(params[0] - 1) < 1e-6 else Curve("gamma", params)
        return Curve("para", params)
    raise ValueError(f"unsupported curve type {sig!r}")


def profile_description(icc: bytes) -> str:
    """The profile's description (``desc`` tag), '' if it has none."""
    try:
        tags = _tag_table(icc)
        if b"desc" not in tags:
            return ""
        d = tags[b"desc"]
        if d[:4] == b"desc":
            n = struct.unpack(">I", d[8:12])[0]
            return d[12:12 + n].split(b"\0")[0].decode("latin-1").strip()
        if d[:4] == b"mluc":
            n, size = struct.unpack(">II", d[8:16])
            length, off = struct.unpack(">II", d[20:28])
            return d[off:off + length].decode("utf-16-be", "replace").strip("\0 ").strip()
    except Exception:
        pass
    return ""


def _tag_table(icc: bytes) -> dict:
    n = struct.unpack(">I", icc[128:132])[0]
    if n > 1000:
        raise ValueError("implausible tag count")
    tags = {}
    for i in range(n):
        sig, off, size = struct.unpack(">4sII", icc[132 + 12 * i:144 + 12 * i])
        tags[sig] = icc[off:off + size]
    return tags


def parse_icc(icc: bytes | None) -> ColourSpace:
    """The working space described by an ICC profile (sRGB when `icc` is None).

    Never raises: a profile that cannot be used is kept (bytes) and sRGB encoding is assumed,
    with the reason in ``note``.
    """
    if not icc:
        return SRGB
    try:
        if len(icc) < 132 or icc[36:40] != b"acsp":
            raise ValueError("not an ICC profile (no 'acsp' signature)")
        space = icc[16:20]
        tags = _tag_table(icc)
        name = profile_description(icc) or "unnamed profile"
        if space == b"GRAY":
            if b"kTRC" not in tags:
                raise ValueError("grey profile without kTRC")
            c = _parse_curve(tags[b"kTRC"])
            c = SRGB_CURVE if c.is_srgb() else c
            return ColourSpace(name, (c, c, c), None, icc)
        if space != b"RGB ":
            raise ValueError(f"colour space {space.decode('latin-1').strip()!r} is not RGB or grey")
        need = [b"rTRC", b"gTRC", b"bTRC", b"rXYZ", b"gXYZ", b"bXYZ"]
        missing = [t.decode() for t in need if t not in tags]
        if missing:
            raise ValueError(f"LUT-based profile (no {', '.join(missing)} tags)")
        curves = tuple(_parse_curve(tags[t]) for t in need[:3])
        curves = tuple(SRGB_CURVE if c.is_srgb() else c for c in curves)
        cols = [[_s15(tags[t][8 + 4 * i:12 + 4 * i]) for i in range(3)] for t in need[3:]]
        m = np.array(cols).T                         # columns = XYZ of R, G, B
        return ColourSpace(name, curves, m, icc)
    except Exception as e:
        return ColourSpace("sRGB (assumed)", icc=icc, note=f"profile not used ({e}); pixels treated as sRGB")


def srgb_icc() -> bytes:
    """An sRGB ICC profile (LittleCMS's built-in, via Pillow)."""
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# -- decoding / encoding pixel arrays -------------------------------------------------------

def decode(arr: np.ndarray, space: ColourSpace) -> np.ndarray:
    """uint8/uint16/float encoded (H, W, 3) array -> float32 linear light in `space`."""
    if all(c.kind == "srgb" for c in space.curves):
        return _srgb.decode_srgb(arr)
    out = np.empty(arr.shape, np.float32)
    if arr.dtype in (np.uint8, np.uint16):
        n = 256 if arr.dtype == np.uint8 else 65536
        x = np.arange(n) / (n - 1)
        for ch in range(arr.shape[-1]):
            lut = space.curves[min(ch, 2)].to_linear(x).astype(np.float32)
            out[..., ch] = lut[arr[..., ch]]
        return out
    for ch in range(arr.shape[-1]):
        out[..., ch] = space.curves[min(ch, 2)].to_linear(arr[..., ch])
    return out


_ENC_LUT_BITS = 20          # linear quantised to 2^20 steps before the 8-bit table


def encode(lin: np.ndarray, space: ColourSpace, bits: int) -> np.ndarray:
    """float linear (H, W, C) in `space` -> uint8/uint16 code values with the space's curves."""
    if all(c.kind == "srgb" for c in space.curves):
        return _srgb.encode_srgb16(lin) if bits == 16 else _srgb.encode_srgb8(lin)
    dtype = np.uint16 if bits == 16 else np.uint8
    top = 65535 if bits == 16 else 255
    out = np.empty(lin.shape, dtype)
    for ch in range(lin.shape[-1]):
        c = space.curves[min(ch, 2)]
        if bits == 8:     # a fine table: exact for 8-bit round trips, fast on large images
            n = 2 ** _ENC_LUT_BITS - 1
            lut = np.round(c.to_encoded(np.arange(n + 1) / n) * 255).astype(np.uint8)
            idx = np.clip(lin[..., ch], 0, 1).astype(np.float32) * np.float32(n) + np.float32(0.5)
            out[..., ch] = lut[idx.astype(np.uint32)]
        else:
            out[..., ch] = np.round(c.to_encoded(lin[..., ch]) * top).astype(dtype)
    return out


def convert_linear(lin: np.ndarray, src: ColourSpace, dst: ColourSpace = SRGB) -> np.ndarray:
    """Linear RGB in `src` primaries -> linear RGB in `dst` primaries (through D50 XYZ)."""
    if src.to_xyz is None or dst.to_xyz is None:
        return lin.astype(np.float32, copy=False)          # grey: luminance is kept
    m = np.linalg.inv(dst.to_xyz) @ src.to_xyz
    if np.abs(m - np.eye(3)).max() < 1e-6:
        return lin.astype(np.float32, copy=False)
    out = lin.reshape(-1, 3) @ m.T.astype(np.float32)
    return out.reshape(lin.shape).astype(np.float32, copy=False)
