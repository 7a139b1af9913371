"""Static Large Objects, as Swift's ``slo`` middleware.

- ``PUT ?multipart-manifest=put``: the JSON body is validated
  (``proxy._slo_core``), every segment is HEADed through this middleware (so
  a nested SLO reports its total size and SLO ETag), problems are refused
  with 400 and Swift's text, and the manifest is stored with
  ``X-Static-Large-Object: True``; the client gets the quoted SLO ETag.
- ``GET``/``HEAD`` of a manifest: the segments are streamed in order, one
  subrequest at a time, in bounded chunks (invariant 4), with the SLO ETag,
  the total ``Content-Length``, ``Range`` over the whole object and
  conditional headers evaluated against the SLO ETag. Each segment's ETag is
  checked against the manifest; a segment that changed or vanished after the
  headers went out aborts the response (the client sees a truncated body,
  never wrong bytes); before that, it is a 409.
- Dynamic Large Objects (``X-Object-Manifest``) are served here too
  (``proxy._dlo``).
- ``?multipart-manifest=get`` returns the stored manifest (``&format=raw``:
  the PUT format); ``DELETE ?multipart-manifest=delete`` deletes the segments
  (nested ones too) and then the manifest, answering with Swift's bulk-delete
  summary.

Every subrequest carries the caller's ``context`` (identity and
``authorize``), so segments are read and deleted with the caller's rights
(invariant 6).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from common.http import Headers as _Headers
from common.http import Request, Response
from proxy import _dlo
from proxy import _slo_core as core
from proxy._slo_delete import delete_manifest
from proxy._slo_put import put_manifest
from proxy._subrequest import body_chunks, conditional_response, discard, subrequest
from proxy.acl import split_swift_path

COND_HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
HEAD_CONCURRENCY = 4
MAX_NESTING = 10
MAX_LISTING_REWRITE = 16 * 1024 * 1024


class SegmentError(Exception):
    """A segment that is missing or no longer matches its manifest entry."""


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def _is_slo(resp: Response) -> bool:
    return 200 <= resp.status < 300 and _true(resp.headers.get("x-static-large-object"))


def _slo_meta(headers: Any) -> tuple[str, int] | None:
    """(SLO ETag, size) from a manifest's headers without reading it: sysmeta
    when the proxy kept it, else our Content-Type parameters."""
    etag, size = headers.get(core.SYSMETA_SLO_ETAG), headers.get(core.SYSMETA_SLO_SIZE) or ""
    if etag and size.isdigit():
        return etag, int(size)
    _, swift_bytes, slo_etag = core.clean_content_type(headers.get("content-type") or "")
    if swift_bytes is not None and slo_etag:
        return slo_etag, swift_bytes
    return None


def _out_type(request: Request) -> str:
    accept = request.headers.get("accept") or ""
    return "application/json" if "application/json" in accept else "text/plain"


class StaticLargeObject:
    def __init__(self, app: Callable[[Request], Any], conf: Any = None) -> None:
        self.app = app

    async def __call__(self, request: Request) -> Response:
        parts = split_swift_path(request.path)
        if parts is not None and parts[1] is not None and parts[2] is None and request.method == "GET":
            return await self._listing(request)
        if parts is None or parts[2] is None:
            return await self.app(request)
        mm = request.query.get("multipart-manifest")
        try:
            if request.method == "PUT" and mm == "put":
                return await put_manifest(self, request)
            if request.method == "DELETE" and mm == "delete":
                return await delete_manifest(self.app, request, parts[0])
            if request.method in ("GET", "HEAD"):
                return await self._get_or_head(request, parts[0])
        except core.SloError as exc:
            return Response.text(exc.status, exc.message)
        if request.method in ("PUT", "POST") and request.headers.get("content-type"):
            # our size/etag parameters are ours alone: a client cannot fake an SLO listing row
            request.headers.set("content-type", core.clean_content_type(request.headers["content-type"])[0])
        if request.method == "PUT" and (bad := _dlo.check_put_header(request)) is not None:
            return bad
        if request.method in ("PUT", "POST") and "x-static-large-object" in request.headers:
            return Response.text(
                400,
                "X-Static-Large-Object is a reserved header. "
                "To create a static large object add query param multipart-manifest=put.",
            )
        return await self.app(request)

    async def _listing(self, request: Request) -> Response:
        """Container listings show an SLO with its total size and quoted
        ``slo_etag`` (read from the manifest row's Content-Type parameters)."""
        resp: Response = await self.app(request)
        ctype = resp.headers.get("content-type") or ""
        length = resp.headers.get("content-length") or ""
        if resp.status != 200 or not ("json" in ctype or "xml" in ctype):
            return resp
        if not length.isdigit() or int(length) > MAX_LISTING_REWRITE:
            return resp  # as Swift: only listings of a known, bounded size are rewritten
        body = await resp.read_body()
        if b"swift_bytes=" in body:
            body = core.rewrite_listing(body, "json" in ctype)
        resp.body = body
        resp.headers.set("content-length", str(len(body)))
        return resp

    # -- GET / HEAD ---------------------------------------------------------
    async def _get_or_head(self, request: Request, account: str) -> Response:
        if request.query.get("multipart-manifest") == "get":
            resp = await self.app(request)
            if not _is_slo(resp) or resp.status != 200:
                return resp
            resp.headers.set("content-type", core.clean_content_type(resp.headers.get("content-type") or "")[0])
            if request.query.get("format") == "raw":
                raw = core.raw_format(json.loads(await resp.read_body()))
                resp.headers.set("etag", hashlib.md5(raw, usedforsecurity=False).hexdigest())
                resp.headers.set("content-length", str(len(raw)))
                resp.body = raw if request.method == "GET" else b""
            else:
                resp.headers.set("content-type", "application/json; charset=utf-8")
            for name in list(resp.headers):
                if name.startswith("x-object-sysmeta-"):
                    resp.headers.pop(name)
            return resp
        special = any(n in request.headers for n in (*COND_HEADERS, "range"))
        resp = await self.app(request)
        if _dlo.is_dlo(resp):
            return await _dlo.respond(self, request, account, resp)
        if not _is_slo(resp):
            if not (special and resp.status in (304, 412, 416)):
                return resp
            h = resp.headers
            flagged = _true(h.get("x-static-large-object")) or "x-object-manifest" in h
            if not flagged and ("etag" in h or "x-timestamp" in h):
                return resp  # the object's own metadata came back: not a large object
            # the storage node judged Range/conditions against a manifest: look again
            probe = await self.app(self._plain(request, "HEAD"))
            await discard(probe)
            if _dlo.is_dlo(probe):
                await discard(resp)
                return await _dlo.respond(self, request, account, probe)
            if not _is_slo(probe):
                return resp
            await discard(resp)
            if request.method == "HEAD" and _slo_meta(probe.headers):
                return await self._slo_response(request, account, probe)
            resp = await self.app(self._plain(request, "GET"))
            if not _is_slo(resp):
                return resp
        elif (special or request.method == "HEAD" or resp.status != 200) and not (
            request.method == "HEAD" and resp.status == 200 and _slo_meta(resp.headers)
        ):
            await discard(resp)  # a ranged/conditional answer about the manifest: read it plainly
            resp = await self.app(self._plain(request, "GET"))
            if not _is_slo(resp):
                return resp
        return await self._slo_response(request, account, resp)

    def _plain(self, request: Request, method: str) -> Request:
        headers = request.headers.copy()
        for name in (*COND_HEADERS, "range"):
            headers.pop(name)
        return subrequest(request, method, request.path, headers)

    async def _slo_response(self, request: Request, account: str, resp: Response) -> Response:
        part = request.query.get("part-number")
        if part is not None and not (part.isdigit() and int(part) > 0):
            await discard(resp)
            if request.method == "HEAD":
                return Response(400, {"content-length": "0"}, b"")
            return Response.text(400, "Part number must be an integer greater than 0")
        if part is not None and request.method == "HEAD":
            await discard(resp)  # the segment sizes are in the manifest body
            resp = await self.app(self._plain(request, "GET"))
            if not _is_slo(resp):
                return resp
        h = resp.headers
        stored: list[dict[str, Any]] | None = None
        meta = _slo_meta(h) if request.method == "HEAD" and part is None else None
        if meta is not None:
            etag, size = meta
            await discard(resp)
        else:
            try:
                stored = json.loads(await resp.read_body())
                etag = core.slo_etag(stored)
                size = sum(core.segment_length(s) for s in stored)
            except (ValueError, KeyError, TypeError):
                return Response.text(500, "Unable to load SLO manifest")
        headers = _Headers([(k, v) for k, v in h.items() if not self._dropped(k)])
        if headers.get("content-type"):
            headers.set("content-type", core.clean_content_type(headers["content-type"])[0])
        headers.set("etag", f'"{etag}"')
        if h.get("etag"):
            headers.set("x-manifest-etag", h["etag"].strip('"'))
        headers.set("x-static-large-object", "True")
        headers.set("accept-ranges", "bytes")
        if (cond := conditional_response(request, headers, etag, h.get("last-modified") or "")) is not None:
            return cond
        headers.set("content-length", str(size))
        if part is not None and stored is not None:
            return await self._part_response(request, account, headers, stored, int(part), size)
        if request.method == "HEAD":
            return Response(200, headers, b"")
        assert stored is not None
        try:
            pieces = await self._expand(request, account, stored, 0)
        except SegmentError as exc:
            return Response.text(409, str(exc))
        return await self.serve_pieces(request, account, headers, pieces, size)

    async def _part_response(
        self, request: Request, account: str, headers: _Headers, stored: list[dict[str, Any]], part: int, size: int
    ) -> Response:
        """``?part-number=N``: segment N (1-based) of the manifest as a 206 of
        the whole object's bytes; 416 past the last (test_slo *part_number*)."""
        lengths = [core.segment_length(s) for s in stored]
        headers.set("x-parts-count", str(len(lengths)))
        if part > len(lengths):
            headers.set("content-range", f"bytes */{size}")
            if request.method == "HEAD":
                headers.set("content-length", "0")
                return Response(416, headers, b"")
            headers.pop("content-length")
            return Response.text(416, "The requested part number is not satisfiable", headers=headers)
        first = sum(lengths[: part - 1])
        last = first + lengths[part - 1] - 1
        headers.set("content-range", f"bytes {first}-{last}/{size}")
        headers.set("content-length", str(last - first + 1))
        if request.method == "HEAD":
            return Response(206, headers, b"")
        try:
            pieces = await self._expand(request, account, stored, 0)
        except SegmentError as exc:
            return Response.text(409, str(exc))
        return await self._stream_response(request, account, 206, headers, [core.slice_pieces(pieces, first, last)])

    async def serve_pieces(
        self, request: Request, account: str, headers: _Headers, pieces: list[core.Piece], size: int
    ) -> Response:
        """GET of a large object made of ``pieces`` (``size`` bytes in all):
        whole, one range (206) or several (multipart/byteranges), or 416."""
        ranges = None
        if request.headers.get("range"):
            ranges = core.parse_byte_ranges(request.headers["range"])
        if ranges is None:
            return await self._stream_response(request, account, 200, headers, [pieces])
        resolved = [r for r in (x.resolve(size) for x in ranges) if r is not None]
        if not resolved:
            headers.set("content-range", f"bytes */{size}")
            headers.pop("content-length")
            return Response.text(416, headers=headers)
        if len(resolved) == 1:
            first, last = resolved[0]
            headers.set("content-range", f"bytes {first}-{last}/{size}")
            headers.set("content-length", str(last - first + 1))
            return await self._stream_response(
                request, account, 206, headers, [core.slice_pieces(pieces, first, last)]
            )
        boundary = uuid.uuid4().hex
        inner_type = headers.get("content-type") or "application/octet-stream"
        parts: list[tuple[bytes, list[core.Piece]]] = []
        length = 0
        for first, last in resolved:
            head = (
                f"--{boundary}\r\nContent-Type: {inner_type}\r\n"
                f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
            ).encode()
            parts.append((head, core.slice_pieces(pieces, first, last)))
            length += len(head) + (last - first + 1) + 2
        tail = f"--{boundary}--".encode()
        length += len(tail)
        headers.set("content-type", f"multipart/byteranges;boundary={boundary}")
        headers.set("content-length", str(length))
        return Response(206, headers, self._multipart(request, account, parts, tail))

    @staticmethod
    def _dropped(name: str) -> bool:
        return name in ("content-length", "etag", "content-range", "transfer-encoding") or name.startswith(
            "x-object-sysmeta-"
        )

    async def _expand(
        self, request: Request, account: str, stored: list[dict[str, Any]], depth: int
    ) -> list[core.Piece]:
        """Top-level pieces, with nested SLOs replaced by their own pieces."""
        pieces: list[core.Piece] = []
        for seg, piece in zip(stored, core.pieces_of(stored), strict=True):
            if not seg.get("sub_slo"):
                pieces.append(piece)
                continue
            if depth >= MAX_NESTING:
                raise SegmentError(f"Max recursion depth exceeded on {seg['name']}")
            sub = await self.app(subrequest(request, "GET", f"/v1/{account}{seg['name']}"))
            if not _is_slo(sub):
                await discard(sub)
                raise SegmentError(f"Object segment no longer valid: {seg['name']}")
            inner = await self._expand(request, account, json.loads(await sub.read_body()), depth + 1)
            pieces.extend(core.slice_pieces(inner, piece.first, piece.last))
        return pieces

    async def _open(self, request: Request, account: str, piece: core.Piece) -> Response:
        headers = {}
        if piece.first != 0 or piece.last != piece.size - 1:
            headers["range"] = f"bytes={piece.first}-{piece.last}"
        resp: Response = await self.app(subrequest(request, "GET", f"/v1/{account}{piece.path}", headers))
        etag = (resp.headers.get("etag") or "").strip('"')
        if resp.status not in (200, 206) or (piece.etag and etag != piece.etag):
            await discard(resp)
            raise SegmentError(
                f"Object segment no longer valid: {piece.path} (status {resp.status}, etag {etag})"
            )
        return resp

    async def _pieces_body(
        self, request: Request, account: str, pieces: list[core.Piece], first: Response | None
    ) -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            if piece.data is not None:
                yield piece.data[piece.first : piece.last + 1]
                continue
            resp = first if (i == 0 and first is not None) else await self._open(request, account, piece)
            got = 0
            async for chunk in body_chunks(resp):
                got += len(chunk)
                yield chunk
            if got != piece.length:
                raise SegmentError(f"segment {piece.path}: got {got} bytes, expected {piece.length}")

    async def _stream_response(
        self, request: Request, account: str, status: int, headers: _Headers, groups: list[list[core.Piece]]
    ) -> Response:
        pieces = groups[0]
        first = None
        if pieces and pieces[0].data is None:
            try:
                first = await self._open(request, account, pieces[0])
            except SegmentError as exc:
                return Response.text(409, str(exc))
        return Response(status, headers, self._pieces_body(request, account, pieces, first))

    async def _multipart(
        self, request: Request, account: str, parts: list[tuple[bytes, list[core.Piece]]], tail: bytes
    ) -> AsyncIterator[bytes]:
        for head, pieces in parts:
            yield head
            async for chunk in self._pieces_body(request, account, pieces, None):
                yield chunk
            yield b"\r\n"
        yield tail

def filter_factory(app: Callable[[Request], Any], conf: Any) -> StaticLargeObject:
    return StaticLargeObject(app, conf)
