"""Metadata containers inside JPEG files: APPn segments, XMP (standard and extended), MPF.

Plain functions over ``bytes``; nothing here decodes pixels.  Parsing follows

* JPEG (ITU-T T.81): markers, segment lengths, entropy-coded data after SOS;
* XMP part 3 (Adobe): the standard packet in an APP1 segment headed
  ``http://ns.adobe.com/xap/1.0/\\0``; an extended packet split over APP1 segments headed
  ``http://ns.adobe.com/xmp/extension/\\0`` + 32-byte GUID + 4-byte full length + 4-byte
  offset, reassembled by offset for the GUID named in ``xmpNote:HasExtendedXMP``;
* CIPA DC-007 (Multi-Picture Format): APP2 ``MPF\\0`` + a TIFF-style IFD whose MP Entry tag
  (0xB002) lists every image of the file with its size and offset (offsets relative to the
  MPF TIFF header; the first image at 0).

Errors are :class:`MetadataError` (a ``ValueError``); the callers turn them into
:class:`refocus.errors.BadInputError` naming the file.
"""
from __future__ import annotations

import hashlib
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

XMP_STD = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"
MPF_SIG = b"MPF\x00"

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_NOTE = "http://ns.adobe.com/xmp/note/"


class MetadataError(ValueError):
    """A metadata block is present but damaged."""


# -- JPEG structure ------------------------------------------------------------------------


@dataclass
class JpegLayout:
    """The segments of one JPEG image inside a byte string."""
    start: int                                      # offset of the SOI marker
    end: int                                        # offset just past EOI (len(data) if absent)
    segments: list = field(default_factory=list)    # (marker, payload offset, payload bytes) up to SOS
    size: tuple | None = None                       # (width, height) from the SOF marker
    complete: bool = True                           # False when no EOI was found


def is_jpeg(data: bytes, start: int = 0) -> bool:
    return data[start:start + 3] == b"\xff\xd8\xff"


def scan_jpeg(data: bytes, start: int = 0) -> JpegLayout:
    """Walk the markers of the JPEG starting at `start`: metadata segments, size, end of image.

    The end is found by following segment lengths and skipping entropy-coded data (where a
    0xFF byte is always followed by 0x00 or a restart marker), not by searching for the first
    FF D9 pair, which can occur inside embedded thumbnails and metadata.
    """
    if not is_jpeg(data, start):
        raise MetadataError(f"no JPEG start-of-image marker at offset {start}")
    n = len(data)
    lay = JpegLayout(start=start, end=n)
    i = start + 2
    in_header = True
    while i < n:
        if data[i] != 0xFF:
            raise MetadataError(f"expected a JPEG marker at offset {i}, found byte 0x{data[i]:02X}")
        m = data[i + 1] if i + 1 < n else 0xD9
        if m == 0xFF:                               # fill byte
            i += 1
            continue
        if m == 0xD9:                               # EOI
            lay.end = i + 2
            return lay
        if m == 0x01 or 0xD0 <= m <= 0xD7 or m == 0xD8:
            i += 2
            continue
        if i + 4 > n:
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if length < 2 or i + 2 + length > n:
            raise MetadataError(f"JPEG segment 0xFF{m:02X} at offset {i} has length {length}, "
                                f"beyond the end of the data ({n} bytes)")
        payload_at = i + 4
        if in_header:
            lay.segments.append((m, payload_at, data[payload_at:i + 2 + length]))
        if (0xC0 <= m <= 0xCF) and m not in (0xC4, 0xC8, 0xCC) and lay.size is None and length >= 7:
            h, w = struct.unpack(">HH", data[payload_at + 1:payload_at + 5])
            lay.size = (w, h)
        i += 2 + length
        if m == 0xDA:                               # start of scan: skip entropy-coded data
            in_header = False
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    i = n
                    break
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    i = j + (1 if nxt == 0xFF else 2)
                    continue
                i = j
                break
    lay.complete = False
    return lay


def app_segments(lay: JpegLayout, marker: int, prefix: bytes) -> list:
    """Payloads (without `prefix`) of the APPn segments with that marker and prefix, in order."""
    return [(off + len(prefix), p[len(prefix):]) for m, off, p in lay.segments
            if m == marker and p.startswith(prefix)]


# -- XMP -------------------------------------------------------------------------------------


def standard_xmp(lay: JpegLayout) -> bytes | None:
    segs = app_segments(lay, 0xE1, XMP_STD)
    return segs[0][1] if segs else None


def extended_xmp(lay: JpegLayout, guid: str) -> bytes:
    """Reassemble the extended XMP packet of `guid` from its APP1 chunks (by offset)."""
    want = guid.strip().upper().encode("ascii", "replace")
    chunks = []
    total = None
    for _, p in app_segments(lay, 0xE1, XMP_EXT):
        if len(p) < 40:
            raise MetadataError("extended XMP chunk shorter than its 40-byte header")
        if p[:32].upper() != want:
            continue                                # chunks of another packet: ignored (XMP part 3)
        full, offset = struct.unpack(">II", p[32:40])
        if total is None:
            total = full
        elif full != total:
            raise MetadataError(f"extended XMP chunks disagree on the packet length ({total} vs {full})")
        chunks.append((offset, p[40:]))
    if total is None:
        raise MetadataError(f"the XMP names extended XMP {guid} but no APP1 chunk carries it")
    buf = bytearray(total)
    covered = 0
    for offset, part in sorted(chunks):
        if offset + len(part) > total:
            raise MetadataError(f"extended XMP chunk at offset {offset} (+{len(part)} bytes) runs past "
                                f"the declared length {total}")
        buf[offset:offset + len(part)] = part
        covered += len(part)
    if covered != total:
        raise MetadataError(f"extended XMP is incomplete: {covered} of {total} bytes present "
                            f"in {len(chunks)} chunk(s)")
    return bytes(buf)


def extended_guid_matches(packet: bytes, guid: str) -> bool:
    """XMP part 3: the GUID is the MD5 digest of the extended packet (upper-case hex)."""
    return hashlib.md5(packet).hexdigest().upper() == guid.strip().upper()


def parse_xmp(packet: bytes) -> ET.Element:
    """Parse an XMP packet; DTDs and entity declarations are refused (XMP has none)."""
    head = packet[:4096] if len(packet) > 4096 else packet
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in head:
        raise MetadataError("XMP packet contains a DTD or entity declaration")
    text = packet.rstrip(b"\x00 \r\n\t")
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        raise MetadataError(f"XMP is not well-formed XML ({e})") from None


def descriptions(root: ET.Element) -> list:
    """The top-level rdf:Description elements of a parsed packet."""
    if root.tag == f"{{{RDF}}}RDF":
        rdf = [root]
    else:
        rdf = root.findall(f".//{{{RDF}}}RDF")
    out = []
    for r in rdf:
        out.extend(r.findall(f"{{{RDF}}}Description"))
    return out


def struct_node(el: ET.Element) -> ET.Element:
    """The node holding the fields of a struct value: the element itself
    (rdf:parseType="Resource" or attributes on it) or its rdf:Description child."""
    d = el.find(f"{{{RDF}}}Description")
    return d if d is not None else el


def prop(node: ET.Element, ns: str, name: str) -> str | None:
    """A simple property of `node`: attribute ``ns:name`` or the text of child ``ns:name``."""
    key = f"{{{ns}}}{name}"
    v = node.get(key)
    if v is not None:
        return v
    c = node.find(key)
    if c is not None:
        if c.get(f"{{{RDF}}}resource") is not None:
            return c.get(f"{{{RDF}}}resource")
        return c.text or ""
    return None


def child(node: ET.Element, ns: str, name: str) -> ET.Element | None:
    """The struct value of property ``ns:name`` of `node`, or None."""
    c = node.find(f"{{{ns}}}{name}")
    return struct_node(c) if c is not None else None


def seq(node: ET.Element, ns: str, name: str) -> list:
    """The items (rdf:li elements) of the rdf:Seq/Bag/Alt value of ``ns:name``."""
    c = node.find(f"{{{ns}}}{name}")
    if c is None:
        return []
    for kind in ("Seq", "Bag", "Alt"):
        s = c.find(f"{{{RDF}}}{kind}")
        if s is not None:
            return s.findall(f"{{{RDF}}}li")
    return []


def find_prop(nodes: list, ns: str, name: str) -> str | None:
    """The first value of ``ns:name`` among several description nodes."""
    for n in nodes:
        v = prop(n, ns, name)
        if v is not None:
            return v
    return None


def mentions(packet: bytes | None, *namespaces: str) -> bool:
    return bool(packet) and any(ns.encode() in packet for ns in namespaces)


# -- MPF -------------------------------------------------------------------------------------


@dataclass
class MpEntry:
    index: int
    attribute: int
    size: int
    offset: int            # absolute offset in the file


def mpf_entries(lay: JpegLayout) -> list:
    """The images listed by the MPF APP2 segment (the first is the primary image)."""
    segs = app_segments(lay, 0xE2, MPF_SIG)
    if not segs:
        return []
    base, p = segs[0]                               # base: file offset of the TIFF header
    if len(p) < 8 or p[:2] not in (b"II", b"MM"):
        raise MetadataError("MPF segment without a valid TIFF header")
    e = "<" if p[:2] == b"II" else ">"
    try:
        ifd = struct.unpack(e + "I", p[4:8])[0]
        count = struct.unpack(e + "H", p[ifd:ifd + 2])[0]
        entries_at = None
        n_images = None
        for k in range(count):
            tag, typ, cnt, val = struct.unpack(e + "HHII", p[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
            if tag == 0xB001:
                n_images = val
            elif tag == 0xB002:
                entries_at, entries_len = val, cnt
        if entries_at is None:
            return []
        n = entries_len // 16 if n_images is None else min(n_images, entries_len // 16)
        out = []
        for k in range(n):
            attr, size, off, _, _ = struct.unpack(e + "IIIHH", p[entries_at + 16 * k:entries_at + 16 * k + 16])
            out.append(MpEntry(k, attr, size, 0 if k == 0 else base + off))
        return out
    except struct.error:
        raise MetadataError("MPF index is truncated") from None
