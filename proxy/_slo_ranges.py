"""Byte ranges over a large object's segments and conditional requests
against its SLO ETag (sans-I/O; used by ``proxy.slo``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``M-N`` / ``M-`` / ``-N`` as written (None for an open end)."""

    start: int | None
    end: int | None

    def resolve(self, length: int) -> tuple[int, int] | None:
        """(first, last) inclusive within ``length`` bytes, or None if unsatisfiable."""
        if self.start is None:
            if not self.end or length == 0:
                return None
            return max(length - self.end, 0), length - 1
        if self.start >= length:
            return None
        last = length - 1 if self.end is None else min(self.end, length - 1)
        return self.start, last


def parse_byte_ranges(spec: str) -> list[ByteRange] | None:
    """``bytes=0-9,20-`` -> ranges; None when the header is malformed (Swift then ignores it)."""
    unit, sep, rest = spec.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    out: list[ByteRange] = []
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        first, dash, last = item.partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
            return None
        start = int(first) if first else None
        end = int(last) if last else None
        if start is not None and end is not None and end < start:
            return None
        out.append(ByteRange(start, end))
    return out or None


@dataclass(frozen=True, slots=True)
class Piece:
    """A contiguous run of bytes of the large object: ``first..last``
    (inclusive) of segment object ``path`` (checked against ``etag``), or of
    inline ``data``."""

    path: str | None
    first: int
    last: int
    etag: str | None = None
    size: int = 0  # the whole segment object's size
    data: bytes | None = None

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def pieces_of(stored: Sequence[dict[str, Any]]) -> list[Piece]:
    """One piece per top-level segment (sub-SLOs are expanded by the caller)."""
    out: list[Piece] = []
    for seg in stored:
        if "data" in seg:
            data = base64.b64decode(seg["data"])
            out.append(Piece(None, 0, len(data) - 1, data=data))
            continue
        size = int(seg["bytes"])
        first, last = 0, size - 1
        if seg.get("range"):
            first, last = (int(x) for x in str(seg["range"]).split("-"))
        out.append(Piece(seg["name"], first, last, seg.get("hash"), size))
    return out


def slice_pieces(pieces: Sequence[Piece], first: int, last: int) -> list[Piece]:
    """The pieces covering bytes ``first..last`` (inclusive) of the concatenation."""
    out: list[Piece] = []
    offset = 0
    for p in pieces:
        p_first, p_last = offset, offset + p.length - 1
        offset += p.length
        if p.length <= 0 or p_last < first or p_first > last:
            continue
        lo = max(first, p_first) - p_first + p.first
        hi = min(last, p_last) - p_first + p.first
        out.append(Piece(p.path, lo, hi, p.etag, p.size, p.data))
    return out


def etag_matches(header: str, etag: str) -> bool:
    """If-Match / If-None-Match list against an (unquoted) ETag."""
    for item in header.split(","):
        item = item.strip()
        if item == "*" or item.strip('"') == etag:
            return True
    return False


def conditional_status(headers: Any, etag: str, last_modified: str, method: str) -> int | None:
    """304/412 for a large object's conditional headers, or None to proceed."""
    if_match = headers.get("if-match")
    if if_match is not None and not etag_matches(if_match, etag):
        return 412
    if_none = headers.get("if-none-match")
    if if_none is not None and etag_matches(if_none, etag):
        return 304 if method in ("GET", "HEAD") else 412
    try:
        lm = parsedate_to_datetime(last_modified) if last_modified else None
    except (TypeError, ValueError):
        lm = None
    if lm is not None:
        ius = headers.get("if-unmodified-since")
        if ius is not None and if_match is None:
            try:
                if lm > parsedate_to_datetime(ius):
                    return 412
            except (TypeError, ValueError):
                pass
        ims = headers.get("if-modified-since")
        if ims is not None and if_none is None:
            try:
                if lm <= parsedate_to_datetime(ims):
                    return 304
            except (TypeError, ValueError):
                pass
    return None
