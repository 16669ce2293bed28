"""XMP: the record of what refocus did, merged with the source's XMP, and Google GDepth.

The record lives in its own namespace (prefix ``refocus``, URI :data:`NS_REFOCUS`); exiftool
shows it as ``XMP-refocus:*``.  Properties of the source's XMP are carried over except those
that describe the pixels (which changed): orientation and pixel dimensions, face/region
boxes, embedded depth maps and images (GDepth/GImage/GFocus, Apple/Google depth), and the
link to extended XMP.
"""
from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

NS_REFOCUS = "http://ns.refocus.app/1.0/"
NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "refocus": NS_REFOCUS,
    "GDepth": "http://ns.google.com/photos/1.0/depthmap/",
    "GImage": "http://ns.google.com/photos/1.0/image/",
    "GFocus": "http://ns.google.com/photos/1.0/focus/",
    "xmpNote": "http://ns.adobe.com/xmp/note/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
}
for _p, _u in NS.items():
    ET.register_namespace(_p, _u)

# namespaces / properties of the source that no longer describe the output
DROP_NS = {NS["GDepth"], NS["GImage"], NS["GFocus"], "http://www.metadataworkinggroup.com/schemas/regions/",
           "http://ns.microsoft.com/photo/1.2/", "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
           "http://ns.apple.com/depthData/1.0/", "http://ns.apple.com/pixeldatainfo/1.0/",
           "http://ns.google.com/photos/dd/1.0/device/", "http://ns.google.com/photos/1.0/container/",
           "http://ns.google.com/photos/1.0/camera/"}
DROP_PROPS = {(NS["tiff"], "Orientation"), (NS["tiff"], "ImageWidth"), (NS["tiff"], "ImageLength"),
              (NS["exif"], "PixelXDimension"), (NS["exif"], "PixelYDimension"), (NS["exif"], "Orientation"),
              (NS["xmpNote"], "HasExtendedXMP")}

XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
EXT_APP1 = b"http://ns.adobe.com/xmp/extension/\x00"


def _q(prefix, name):
    return f"{{{NS[prefix]}}}{name}"


def _split(tag):
    uri, _, local = tag[1:].partition("}")
    return uri, local


def _source_properties(xmp: bytes | None) -> list:
    """Top-level properties (elements and attributes) of the source's rdf:Descriptions."""
    if not xmp:
        return []
    try:
        data = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
        start = data.find("<x:xmpmeta")
        if start < 0:
            start = data.find("<rdf:RDF")
        end = data.rfind("</x:xmpmeta>")
        end = end + len("</x:xmpmeta>") if end >= 0 else data.rfind("</rdf:RDF>") + len("</rdf:RDF>")
        # keep the source's prefixes for readable output
        for ev, (prefix, uri) in ET.iterparse(io.StringIO(data[start:end]), events=["start-ns"]):
            if prefix and uri not in NS.values() and not prefix.startswith("ns"):
                try:
                    ET.register_namespace(prefix, uri)
                except ValueError:
                    pass
        root = ET.fromstring(data[start:end])
    except Exception:
        return []
    props = []
    for desc in root.iter(_q("rdf", "Description")):
        for k, v in desc.attrib.items():
            if k.startswith("{"):
                uri, local = _split(k)
                if uri != NS["rdf"] and uri not in DROP_NS and (uri, local) not in DROP_PROPS:
                    props.append(("attr", k, v))
        for child in desc:
            uri, local = _split(child.tag)
            if uri not in DROP_NS and (uri, local) not in DROP_PROPS:
                props.append(("elem", child.tag, child))
    return props


def build_xmp(record: dict | None, source_xmp: bytes | None = None, extra: dict | None = None) -> bytes:
    """An XMP packet with the refocus record (``refocus:*``), the carried-over source properties
    and `extra` attributes ({(prefix, name): value}, e.g. GDepth fields)."""
    from .._version import __version__
    xmpmeta = ET.Element(_q("x", "xmpmeta"))
    rdf = ET.SubElement(xmpmeta, _q("rdf", "RDF"))
    desc = ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    seen = set()
    for kind, tag, val in _source_properties(source_xmp):
        if tag in seen or tag == _q("xmp", "CreatorTool"):
            continue
        seen.add(tag)
        if kind == "attr":
            desc.set(tag, val)
        else:
            desc.append(val)
    desc.set(_q("xmp", "CreatorTool"), f"refocus {__version__}")
    rec = {"Version": __version__}
    rec.update({k: v for k, v in (record or {}).items() if v is not None})
    for k, v in rec.items():
        name = "".join(p[:1].upper() + p[1:] for p in str(k).split("_"))
        if isinstance(v, float):
            v = f"{v:.6g}"
        desc.set(_q("refocus", name), str(v))
    for (prefix, name), v in (extra or {}).items():
        desc.set(_q(prefix, name), str(v))
    body = ET.tostring(xmpmeta, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body +
            '\n<?xpacket end="w"?>').encode("utf-8")


def read_record(xmp: bytes | str) -> dict:
    """The refocus:* properties of an XMP packet, as a dict of strings (for tests and tools)."""
    data = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    start = data.find("<x:xmpmeta")
    end = data.rfind("</x:xmpmeta>") + len("</x:xmpmeta>")
    root = ET.fromstring(data[start:end])
    out = {}
    for desc in root.iter(_q("rdf", "Description")):
        for k, v in desc.attrib.items():
            uri, local = _split(k) if k.startswith("{") else ("", k)
            if uri == NS_REFOCUS:
                out[local] = v
    return out


# -- JPEG segments --------------------------------------------------------------------------

def jpeg_xmp_segments(main: bytes, extended: bytes | None = None) -> bytes:
    """APP1 segments: the main XMP packet and, if given, the extended XMP split into chunks
    (Adobe XMP spec part 3: GUID = MD5 of the extended packet, in upper-case hex)."""
    body = XMP_APP1 + main
    if len(body) + 2 > 0xFFFF:
        raise ValueError(f"main XMP packet too large for a JPEG segment ({len(main)} bytes)")
    out = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    if extended:
        import hashlib                       # (not at import: 3.5 ms of every command)
        guid = hashlib.md5(extended).hexdigest().upper().encode("ascii")
        chunk = 65400
        for off in range(0, len(extended), chunk):
            part = extended[off:off + chunk]
            body = EXT_APP1 + guid + len(extended).to_bytes(4, "big") + off.to_bytes(4, "big") + part
            out += b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    return out


def gdepth_packets(depth_png: bytes, *, near: float, far: float, record: dict | None, source_xmp=None,
                   image_jpeg: bytes | None = None):
    """(main, extended) XMP packets of a GDepth JPEG: GDepth:Format RangeInverse with Near/Far in
    the main packet, GDepth:Data (and GImage:Data, the unblurred photo, when given) in the
    extended one, linked by xmpNote:HasExtendedXMP."""
    ext_root = ET.Element(_q("x", "xmpmeta"))
    rdf = ET.SubElement(ext_root, _q("rdf", "RDF"))
    d = ET.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    d.set(_q("GDepth", "Data"), base64.b64encode(depth_png).decode("ascii"))
    if image_jpeg:
        d.set(_q("GImage", "Data"), base64.b64encode(image_jpeg).decode("ascii"))
    extended = ET.tostring(ext_root, encoding="unicode").encode("utf-8")
    import hashlib
    guid = hashlib.md5(extended).hexdigest().upper()
    extra = {("GDepth", "Format"): "RangeInverse", ("GDepth", "Near"): f"{near:.6g}",
             ("GDepth", "Far"): f"{far:.6g}", ("GDepth", "Mime"): "image/png",
             ("xmpNote", "HasExtendedXMP"): guid}
    if image_jpeg:
        extra[("GImage", "Mime")] = "image/jpeg"
    main = build_xmp(record, source_xmp, extra)
    return main, extended
