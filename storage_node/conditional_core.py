"""Conditional requests and byte ranges, sans I/O (RFC 7232/7233, as Swift).

- Conditionals are evaluated in RFC order: If-Match (412), else
  If-Unmodified-Since (412); then If-None-Match (304 for GET/HEAD, 412
  otherwise), else If-Modified-Since (304). ``*`` matches any existing object.
- ``Range``: a header that does not parse (no ``bytes=``, bad numbers, more
  than ``MAX_RANGES`` specs) is ignored and the whole object is served (200),
  as Swift does; a header that parses but where no spec is satisfiable is
  ``416`` with ``Content-Range: bytes */<size>``. Several satisfiable specs are
  served as ``multipart/byteranges`` in request order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

MAX_RANGES = 100


class Unsatisfiable(Exception):
    status = 416


def _etags(value: str) -> list[str]:
    out = []
    for part in value.split(","):
        p = part.strip()
        if p.startswith("W/"):
            p = p[2:]
        out.append(p.strip('"'))
    return [p for p in out if p]


def _http_seconds(value: str) -> float | None:
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt.timestamp()


def evaluate_conditions(headers: Mapping[str, str], etag: str, last_modified: int, method: str) -> int:
    """The status a conditional request gets: 200 (go ahead), 304 or 412.

    ``headers`` keys are lower-case; ``last_modified`` is whole seconds."""
    im = headers.get("if-match")
    if im is not None:
        tags = _etags(im)
        if "*" not in tags and etag not in tags:
            return 412
    # Swift checks If-Unmodified-Since even beside a matching If-Match
    # (tests.py TestFileComparison.testIfMatchAndUnmodified).
    ius = headers.get("if-unmodified-since")
    if ius is not None:
        t = _http_seconds(ius)
        if t is not None and last_modified > t:
            return 412
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = _etags(inm)
        if "*" in tags or etag in tags:
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD"):
        ims = headers.get("if-modified-since")
        if ims is not None:
            t = _http_seconds(ims)
            if t is not None and last_modified <= t:
                return 304
    return 200


def parse_range(value: str | None, size: int) -> list[tuple[int, int]] | None:
    """Satisfiable ``(start, end_inclusive)`` ranges, ``None`` to serve the
    whole object, or raise ``Unsatisfiable``."""
    if value is None:
        return None
    unit, eq, rest = value.partition("=")
    if not eq or unit.strip().lower() != "bytes":  # "bytes = 0-9" is fine (testRangedGetsWithLWSinHeader)
        return None
    specs = [s.strip() for s in rest.split(",")]
    if not specs or len(specs) > MAX_RANGES or any(not s for s in specs):
        return None
    parsed: list[tuple[int | None, int | None]] = []
    for s in specs:
        first, dash, last = s.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
            return None
        if not first and not last:
            return None
        a = int(first) if first else None
        b = int(last) if last else None
        if a is not None and b is not None and b < a:
            return None
        parsed.append((a, b))
    out: list[tuple[int, int]] = []
    for a, b in parsed:
        if a is None:
            assert b is not None
            if b == 0 or size == 0:
                continue
            out.append((max(0, size - b), size - 1))
        elif a < size:
            out.append((a, size - 1 if b is None else min(b, size - 1)))
    if not out:
        raise Unsatisfiable(f"no satisfiable range for {size} bytes")
    return out


@dataclass(frozen=True, slots=True)
class Part:
    head: bytes  # boundary line and part headers, sent before the bytes
    start: int
    end: int  # inclusive


@dataclass(frozen=True, slots=True)
class Multipart:
    content_type: str
    parts: tuple[Part, ...]
    tail: bytes

    @property
    def length(self) -> int:
        return sum(len(p.head) + p.end - p.start + 1 for p in self.parts) + len(self.tail)


def multipart_layout(ranges: list[tuple[int, int]], size: int, content_type: str, boundary: str) -> Multipart:
    """The multipart/byteranges framing for ``ranges`` of a ``size``-byte body."""
    parts = []
    for i, (a, b) in enumerate(ranges):
        head = (
            ("\r\n" if i else "")
            + f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            + f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n"
        ).encode("latin-1")
        parts.append(Part(head, a, b))
    return Multipart(f"multipart/byteranges;boundary={boundary}", tuple(parts),
                     f"\r\n--{boundary}--".encode("latin-1"))
