"""Listing queries and their output (sans-I/O), as Swift's container and
account servers answer them.

L1. Query: ``prefix``, ``delimiter``, ``marker``, ``end_marker``, ``limit``
    (default and max 10,000; over the max -> 412 "Maximum limit is 10000";
    a non-numeric limit is ignored, as Swift does), ``reverse`` (Swift's true
    values). With ``reverse`` the listing runs descending and, as in Swift,
    ``marker`` bounds it from above and ``end_marker`` from below.
L2. ``list_entries`` walks rows in name order through a ``scan`` callable
    (a cursor range scan in the LMDB shell, a sorted list in tests), skips
    tombstones, rolls names up to ``Subdir`` entries at the first delimiter
    after the prefix and then seeks past that whole subdir (it never walks it),
    and never returns a subdir equal to the lower bound (the marker; with
    ``reverse``, the end_marker), as Swift. Names are compared by code
    point, which is UTF-8 byte order (what LMDB keys sort by).
L3. Output format from ``format=`` (json|xml|plain, unknown -> plain) or the
    ``Accept`` header, best match among text/plain, application/json,
    application/xml, text/xml; no Accept -> plain; none acceptable -> 406; a
    malformed Accept -> 400. Field names and XML shape are Swift's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from common.timestamp import TICKS_PER_SECOND, Timestamp
from storage_node.rows_core import ContainerRow, ObjectRow, Row, RowError

LISTING_LIMIT = 10_000
TRUE_VALUES = frozenset(("true", "1", "yes", "on", "t", "y"))
OFFERS = ("text/plain", "application/json", "application/xml", "text/xml")
FORMATS = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}


@dataclass(frozen=True, slots=True)
class Subdir:
    """A rolled-up name prefix ending in the delimiter (Swift's ``subdir``)."""

    name: str


Entry = Row | Subdir
# scan(start, inclusive, reverse): rows in name order (descending when reverse)
# beginning at ``start`` (None: from the first/last row).
Scan = Callable[[str | None, bool, bool], Iterable[Row]]


@dataclass(frozen=True, slots=True)
class ListingQuery:
    prefix: str = ""
    delimiter: str = ""
    marker: str = ""
    end_marker: str = ""
    limit: int = LISTING_LIMIT
    reverse: bool = False
    path: str | None = None  # Swift's legacy ?path=: one directory level, no subdirs


def _text_param(query: dict[str, str], key: str) -> str:
    value = query.get(key, "")
    # markers may hold NUL: a bound, never stored (tests.py *SortingByMarkersInclusive)
    if "\x00" in value and key not in ("marker", "end_marker"):
        raise RowError(f"{key} contains NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RowError(f"{key} is not valid UTF-8") from exc
    return value


def parse_listing_query(query: dict[str, str]) -> ListingQuery:
    """L1; raises RowError (400/412) saying why."""
    limit = LISTING_LIMIT
    given = query.get("limit", "")
    if given and given.isdigit():
        limit = int(given)
        if limit > LISTING_LIMIT:
            raise RowError(f"Maximum limit is {LISTING_LIMIT}", status=412)
    if "path" in query:  # Swift: prefix = path with one trailing "/", delimiter "/"
        path = _text_param(query, "path")
        prefix = path.rstrip("/") + "/" if path else ""
        return ListingQuery(prefix=prefix, delimiter="/", marker=_text_param(query, "marker"),
                            end_marker=_text_param(query, "end_marker"), limit=limit,
                            reverse=query.get("reverse", "").strip().lower() in TRUE_VALUES, path=prefix)
    return ListingQuery(
        prefix=_text_param(query, "prefix"),
        delimiter=_text_param(query, "delimiter"),
        marker=_text_param(query, "marker"),
        end_marker=_text_param(query, "end_marker"),
        limit=limit,
        reverse=query.get("reverse", "").strip().lower() in TRUE_VALUES,
    )


def prefix_successor(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix``
    (None when there is none: the prefix is all U+10FFFF, or empty)."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000  # surrogates are not names; next code point in UTF-8 order
    return stripped[:-1] + chr(nxt)


def _start(q: ListingQuery) -> tuple[str | None, bool]:
    """Where the scan begins (L1): (name, inclusive)."""
    if not q.reverse:
        if q.marker and q.marker >= q.prefix:
            return q.marker, False
        return (q.prefix or None), True
    upper = prefix_successor(q.prefix) if q.prefix else None
    if q.marker and (upper is None or q.marker < upper):
        return q.marker, False
    return upper, False


def list_entries(scan: Scan, q: ListingQuery) -> list[Entry]:
    """L2: the listing for ``q``; at most ``q.limit`` entries."""
    out: list[Entry] = []
    if q.limit <= 0:
        return out
    start, inclusive = _start(q)
    lower = q.end_marker if q.reverse else q.marker  # Swift's orig_marker, after its swap
    while True:
        restart: tuple[str | None, bool] | None = None
        for row in scan(start, inclusive, q.reverse):
            name = row.name
            if q.end_marker and (name <= q.end_marker if q.reverse else name >= q.end_marker):
                return out
            if not name.startswith(q.prefix):
                return out  # the scan began inside the prefix range: now past it
            if row.deleted:
                continue
            if q.path is not None:
                # tests.py TestContainerPaths: the directory's own marker is left
                # out, deeper names are skipped, "dir/" markers are listed as objects
                if name == q.path:
                    continue
                end = name.find("/", len(q.prefix))
                if end >= 0 and len(name) > end + 1:
                    dir_name = name[: end + 1]
                    restart = (dir_name, True) if q.reverse else (prefix_successor(dir_name), True)
                    break
            elif q.delimiter:
                end = name.find(q.delimiter, len(q.prefix))
                if end >= 0:
                    dir_name = name[: end + len(q.delimiter)]
                    if dir_name != lower:
                        out.append(Subdir(dir_name))
                        if len(out) >= q.limit:
                            return out
                    restart = (dir_name, False) if q.reverse else (prefix_successor(dir_name), True)
                    break
            out.append(row)
            if len(out) >= q.limit:
                return out
        if restart is None or (restart[0] is None and not q.reverse):
            return out
        start, inclusive = restart


def scan_sorted(rows: Sequence[Row]) -> Scan:
    """A ``Scan`` over an in-memory list (tests and small listings)."""
    ordered = sorted(rows, key=lambda r: r.name)

    def scan(start: str | None, inclusive: bool, reverse: bool) -> Iterator[Row]:
        seq = reversed(ordered) if reverse else iter(ordered)
        for row in seq:
            if start is not None:
                if reverse and (row.name > start or (row.name == start and not inclusive)):
                    continue
                if not reverse and (row.name < start or (row.name == start and not inclusive)):
                    continue
            yield row

    return scan


# -- content negotiation (L3) ------------------------------------------------

def negotiate(query: dict[str, str], accept: str | None) -> str:
    """The listing's media type; raises RowError 400 (bad Accept) / 406."""
    fmt = query.get("format")
    if fmt:
        accept = FORMATS.get(fmt.strip().lower(), "text/plain")
    if not accept or not accept.strip():
        return OFFERS[0]
    patterns: list[tuple[float, bool, bool, int, str, str]] = []
    for i, part in enumerate(accept.split(",")):
        part = part.strip()
        if not part:
            continue
        media, *params = (p.strip() for p in part.split(";"))
        if media.count("/") != 1:
            raise RowError("Invalid Accept header")
        typ, sub = media.lower().split("/")
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError as exc:
                    raise RowError("Invalid Accept header") from exc
        if q > 0:
            patterns.append((-q, typ == "*", sub == "*", i, typ, sub))
    for _, _, _, _, typ, sub in sorted(patterns):
        for offer in OFFERS:
            otyp, osub = offer.split("/")
            if typ in ("*", otyp) and sub in ("*", osub):
                return offer
    raise RowError("no acceptable listing format (text/plain, application/json, "
                   "application/xml, text/xml)", status=406)


_ISO_SECONDS: dict[int, str] = {}
STORAGE_POLICY = "Policy-0"


def iso_last_modified(ts: Timestamp) -> str:
    """Swift's ``Timestamp.isoformat``: ``2024-01-02T03:04:05.123450`` (UTC)."""
    secs, ticks = divmod(ts.ticks, TICKS_PER_SECOND)
    head = _ISO_SECONDS.get(secs)
    if head is None:
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=secs)
        head = dt.strftime("%Y-%m-%dT%H:%M:%S")
        if len(_ISO_SECONDS) > 65536:
            _ISO_SECONDS.clear()
        _ISO_SECONDS[secs] = head
    return f"{head}.{ticks * 10:06d}"


def _object_dict(row: ObjectRow) -> dict[str, object]:
    return {"name": row.name, "hash": row.etag, "bytes": row.size,
            "content_type": row.content_type,
            "last_modified": iso_last_modified(row.ctype_ts)}  # newest of data and content type, as Swift


def _container_dict(row: ContainerRow) -> dict[str, object]:
    # one storage policy per cluster so far; Swift names each container's
    # (swift_test_client's account XML parser requires the element: tests.py TestAccount)
    return {"name": row.name, "count": row.object_count, "bytes": row.bytes_used,
            "last_modified": iso_last_modified(row.put_timestamp), "storage_policy": STORAGE_POLICY}


def format_listing(kind: str, owner: str, entries: Sequence[Entry], media: str) -> bytes | None:
    """Render a listing of a container (kind "container": object rows) or an
    account (kind "account": container rows) named ``owner``. Returns None for
    an empty plain-text listing (the server answers 204, as Swift does)."""
    as_dict = _object_dict if kind == "container" else _container_dict
    item_tag = "object" if kind == "container" else "container"
    if media == "application/json":
        return json.dumps([{"subdir": e.name} if isinstance(e, Subdir) else as_dict(e)  # type: ignore[arg-type]
                           for e in entries]).encode("ascii")
    if media.endswith("/xml"):
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f"<{kind} name={quoteattr(owner)}>"]
        for e in entries:
            if isinstance(e, Subdir):
                parts.append(f"<subdir name={quoteattr(e.name)}><name>{escape(e.name)}</name></subdir>")
                continue
            fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in as_dict(e).items())  # type: ignore[arg-type]
            parts.append(f"<{item_tag}>{fields}</{item_tag}>")
        parts.append(f"</{kind}>")
        return "".join(parts).encode("utf-8")
    if not entries:
        return None
    return "".join(e.name + "\n" for e in entries).encode("utf-8")
