"""Static Large Object rules (sans-I/O): manifest validation, the SLO ETag,
the stored manifest format, and which byte ranges of which segments make up
a read.

The stored manifest is Swift's: a JSON list of
``{"name": "/c/o", "bytes": N, "hash": md5, "content_type": ..., "last_modified":
..., ["range": "M-N"], ["sub_slo": true]}``; the client's PUT format is
``{"path", "etag", "size_bytes", ["range"]}`` (or ``{"data": base64}``).
The SLO ETag is the MD5 of the concatenated segment ETags (``hash:range;``
for ranged segments, the MD5 of the bytes for inline data) and is returned
quoted, as Swift does. Errors carry Swift's texts (invariant 5: bad input
gets a clear 400 and nothing is stored).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

from proxy._slo_ranges import (  # re-exported: the SLO rules in one namespace
    ByteRange,
    Piece,
    conditional_status,
    etag_matches,
    parse_byte_ranges,
    pieces_of,
    slice_pieces,
)

MAX_MANIFEST_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
SYSMETA_SLO_ETAG = "x-object-sysmeta-slo-etag"
SYSMETA_SLO_SIZE = "x-object-sysmeta-slo-size"

__all__ = [
    "ByteRange", "Piece", "conditional_status", "etag_matches", "parse_byte_ranges", "pieces_of", "slice_pieces",
]

_XML_OBJECT = re.compile(rb"<object>.*?</object>", re.S)
_XML_FIELD = re.compile(rb"<(bytes|content_type)>([^<]*)</\1>")


class SloError(Exception):
    """A request SLO refuses; ``status`` and a plain-text ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """One entry of a manifest PUT body."""

    index: int
    path: str | None = None  # "/container/object" (decoded)
    etag: str | None = None
    size_bytes: int | None = None
    range: ByteRange | None = None
    data: bytes | None = None  # inline data segment


def parse_manifest_put(body: bytes, manifest_path: str) -> list[SegmentSpec]:
    """Validate a ``?multipart-manifest=put`` body (Swift's
    ``parse_and_validate_input``). ``manifest_path`` is ``/v1/a/c/o``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        raise SloError(400, "Manifest must be valid JSON.\n") from None
    if not isinstance(parsed, list):
        raise SloError(400, "Manifest must be a list.\n")
    parts = manifest_path.split("/", 3)
    vrs, account = parts[1], parts[2]
    errors: list[str] = []
    specs: list[SegmentSpec] = []
    last = len(parsed) - 1
    for i, seg in enumerate(parsed):
        if not isinstance(seg, dict):
            errors.append(f"Index {i}: not a JSON object")
            continue
        if "data" in seg:
            kind, allowed = "data", {"data"}
        elif "path" in seg:
            kind, allowed = "path", {"path", "range", "etag", "size_bytes"}
        else:
            errors.append(f"Index {i}: expected keys to include one of 'data' or 'path'")
            continue
        extra = sorted(k for k in seg if k not in allowed)
        if extra:
            errors.append(f"Index {i}: extraneous keys " + ", ".join(json.dumps(k) for k in extra))
            continue
        if kind == "data":
            try:
                data = base64.b64decode(seg["data"], validate=True) if isinstance(seg["data"], str) else None
            except (binascii.Error, ValueError):
                data = None
            if data is None:
                errors.append(f"Index {i}: data must be valid base64")
                continue
            if not data:
                errors.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
            specs.append(SegmentSpec(i, data=data))
            continue
        path = seg["path"]
        if not isinstance(path, str):
            errors.append(f'Index {i}: "path" must be a string')
            continue
        etag = seg.get("etag")
        if etag is not None and not isinstance(etag, str):
            errors.append(f'Index {i}: "etag" must be a string or null (if provided)')
            continue
        if "/" not in path.strip("/"):
            errors.append(
                f"Index {i}: path does not refer to an object. Path must be of the form /container/object."
            )
            continue
        size = seg.get("size_bytes")
        if size is not None:
            try:
                size = int(size)
            except (TypeError, ValueError):
                errors.append(f"Index {i}: invalid size_bytes")
                continue
            if size < 1 and i != last:
                errors.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
        if f"/{vrs}/{account}/{path.lstrip('/')}" == manifest_path:
            errors.append(f"Index {i}: manifest must not include itself as a segment")
            continue
        rng: ByteRange | None = None
        if seg.get("range"):
            ranges = parse_byte_ranges(f"bytes={seg['range']}") if isinstance(seg["range"], str) else None
            if ranges is None:
                errors.append(f"Index {i}: invalid range")
                continue
            if len(ranges) > 1:
                errors.append(f"Index {i}: multiple ranges (only one allowed)")
                continue
            rng = ranges[0]
            if size is not None and rng.resolve(size) is None:
                errors.append(f"Index {i}: unsatisfiable range")
                continue
        specs.append(SegmentSpec(i, "/" + path.lstrip("/"), etag, size, rng))
    if specs and all(s.data is not None for s in specs) and not errors:
        errors.append("Inline data segments require at least one object-backed segment.")
    if errors:
        raise SloError(400, "".join(e + "\n" for e in errors))
    n_objects = sum(1 for s in specs if s.path is not None)
    if n_objects > MAX_MANIFEST_SEGMENTS:
        raise SloError(413, f"Number of object-backed segments must be <= {MAX_MANIFEST_SEGMENTS}")
    return specs


@dataclass(frozen=True, slots=True)
class SegmentHead:
    """What a HEAD of a segment answered."""

    status: int
    status_line: str  # "404 Not Found"
    content_length: int = 0
    etag: str = ""  # unquoted
    content_type: str = "application/octet-stream"
    last_modified: str = ""  # HTTP date
    is_slo: bool = False


def _iso(http_date: str) -> str:
    try:
        return parsedate_to_datetime(http_date).strftime("%Y-%m-%dT%H:%M:%S.%f")
    except (TypeError, ValueError):
        return "1970-01-01T00:00:00.000000"


def build_manifest(
    specs: Sequence[SegmentSpec], heads: dict[str, SegmentHead]
) -> tuple[list[dict[str, Any]], int, list[list[str]]]:
    """Check each segment against its HEAD; returns (stored manifest, total
    size, problems as ``[quoted name, reason]``)."""
    stored: list[dict[str, Any]] = []
    problems: list[list[str]] = []
    total = 0
    last = specs[-1].index if specs else -1
    for spec in specs:
        if spec.data is not None:
            stored.append({"data": base64.b64encode(spec.data).decode("ascii")})
            total += len(spec.data)
            continue
        assert spec.path is not None
        name = quote(spec.path.lstrip("/"))
        head = heads[spec.path]
        if not 200 <= head.status < 300:
            problems.append([name, head.status_line])
            continue
        length = head.content_length
        seg_range: str | None = None
        if spec.range is not None:
            resolved = spec.range.resolve(head.content_length)
            if resolved is None:
                problems.append([name, "Unsatisfiable Range"])
            elif resolved != (0, head.content_length - 1):
                seg_range = f"{resolved[0]}-{resolved[1]}"
                length = resolved[1] - resolved[0] + 1
        if length < 1 and spec.index != last:
            problems.append([name, "Too small; each segment must be at least 1 byte."])
        if spec.size_bytes is not None and spec.size_bytes != head.content_length:
            problems.append([name, "Size Mismatch"])
        if spec.etag is not None and spec.etag.strip('"') != head.etag:
            problems.append([name, "Etag Mismatch"])
        entry: dict[str, Any] = {
            "name": spec.path,
            "bytes": head.content_length,
            "hash": head.etag,
            "content_type": head.content_type,
            "last_modified": _iso(head.last_modified),
        }
        if seg_range is not None:
            entry["range"] = seg_range
        if head.is_slo:
            entry["sub_slo"] = True
        stored.append(entry)
        total += length
    return stored, total, problems


def slo_etag(stored: Sequence[dict[str, Any]]) -> str:
    """MD5 of the concatenated segment ETags (unquoted hex)."""
    h = hashlib.md5(usedforsecurity=False)
    for seg in stored:
        if "data" in seg:
            part = hashlib.md5(base64.b64decode(seg["data"]), usedforsecurity=False).hexdigest()
        elif seg.get("range"):
            part = f"{seg['hash']}:{seg['range']};"
        else:
            part = seg["hash"]
        h.update(part.encode("ascii"))
    return h.hexdigest()


def segment_length(seg: dict[str, Any]) -> int:
    if "data" in seg:
        return len(base64.b64decode(seg["data"]))
    if seg.get("range"):
        first, last = (int(x) for x in str(seg["range"]).split("-"))
        return last - first + 1
    return int(seg["bytes"])


def heartbeat_body(content_type: str, summary: dict[str, Any], errors: list[list[str]]) -> bytes:
    """Swift's bulk/SLO summary body (``get_heartbeat_response_body``): JSON,
    XML, or ``Key: value`` lines sorted by key then ``Errors:`` lines."""
    if content_type == "application/json":
        return json.dumps({**summary, "Errors": errors}).encode()
    if content_type.endswith("/xml"):
        out = ["<upload>\n"]
        for key in sorted(summary):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{xml_escape(str(summary[key]))}</{tag}>\n")
        out.append("<errors>\n")
        out += [f"<object><name>{xml_escape(n)}</name><status>{xml_escape(s)}</status></object>\n"
                for n, s in errors]
        out.append("</errors>\n</upload>\n")
        return "".join(out).encode()
    lines = [f"{key}: {summary[key]}\n" for key in sorted(summary)] + ["Errors:\n"]
    lines += [f"{n}, {s}\n" for n, s in errors]
    return "".join(lines).encode()


def problems_body(problems: list[list[str]], content_type: str) -> bytes:
    """Swift's error body for a refused manifest PUT."""
    return heartbeat_body(content_type, {}, problems)


def raw_format(stored: Sequence[dict[str, Any]]) -> bytes:
    """``?multipart-manifest=get&format=raw``: the PUT format again."""
    out = []
    for seg in stored:
        if "data" in seg:
            out.append(dict(seg))
            continue
        item = {"path": seg.get("name"), "size_bytes": seg.get("bytes"), "etag": seg.get("hash")}
        if seg.get("range"):
            item["range"] = seg["range"]
        out.append(item)
    return json.dumps(out, sort_keys=True).encode()


def manifest_content_type(content_type: str, total: int, etag: str) -> str:
    """The stored manifest's Content-Type carries the large object's size
    and ETag as parameters (Swift's ``swift_bytes``), so the container row
    the storage node writes from it can be shown as Swift shows an SLO."""
    return f"{content_type};swift_bytes={total};slo_etag={etag}"


def clean_content_type(content_type: str) -> tuple[str, int | None, str | None]:
    """(Content-Type without our parameters, swift_bytes, slo_etag)."""
    if "swift_bytes=" not in content_type and "slo_etag=" not in content_type:
        return content_type, None, None
    keep: list[str] = []
    size: int | None = None
    etag: str | None = None
    for i, part in enumerate(content_type.split(";")):
        key, _, value = part.strip().partition("=")
        if i and key == "swift_bytes" and value.isdigit():
            size = int(value)
        elif i and key == "slo_etag":
            etag = value
        else:
            keep.append(part)
    return ";".join(keep), size, etag


def rewrite_listing(body: bytes, is_json: bool) -> bytes:
    """Container listing rows of SLO manifests: ``bytes`` becomes the large
    object's size, ``content_type`` loses our parameters, and ``slo_etag``
    (quoted) is added, as in Swift's listings (JSON or XML)."""
    if not is_json:
        return _XML_OBJECT.sub(_rewrite_xml_object, body)
    try:
        items = json.loads(body)
    except ValueError:
        return body
    if not isinstance(items, list):
        return body
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("content_type"), str):
            continue
        ctype, size, etag = clean_content_type(item["content_type"])
        if size is None and etag is None:
            continue
        item["content_type"] = ctype
        if size is not None:
            item["bytes"] = size
        if etag is not None:
            item["slo_etag"] = f'"{etag}"'
    return json.dumps(items).encode()


def _rewrite_xml_object(m: re.Match[bytes]) -> bytes:
    block = m.group(0)
    fields = {k.decode(): v.decode("utf-8", "replace") for k, v in _XML_FIELD.findall(block)}
    ctype, size, etag = clean_content_type(fields.get("content_type", ""))
    if size is None and etag is None:
        return block
    block = block.replace(f"<content_type>{fields['content_type']}</content_type>".encode(),
                          f"<content_type>{ctype}</content_type>".encode())
    if size is not None and "bytes" in fields:
        block = block.replace(f"<bytes>{fields['bytes']}</bytes>".encode(), f"<bytes>{size}</bytes>".encode())
    if etag is not None:
        block = block.replace(b"</object>", f'<slo_etag>"{etag}"</slo_etag></object>'.encode())
    return block
