"""``PUT ?multipart-manifest=put``: validate a manifest and store it (Swift's
``handle_multipart_put``).

Every distinct segment is HEADed through the SLO middleware itself (so a
nested SLO reports its total size and SLO ETag), a few at a time. Any problem
refuses the whole manifest with 400 and Swift's text (invariant 5: nothing is
stored); a client ``Etag`` that is not the SLO ETag gets 422. The stored
manifest carries ``X-Static-Large-Object: True``, the MD5 of its JSON as its
ETag, and the large object's size and SLO ETag as Content-Type parameters
(for listings and HEAD). With ``?heartbeat=on`` the answer is ``202`` at once
and whitespace every ``YIELD_FREQUENCY`` seconds, then Swift's summary
(``Response Status: 201 Created`` ...), so slow validations keep the client
connection alive.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import AsyncIterator
from typing import Any

import trio

from common.http import Request, Response
from proxy import _slo_core as core
from proxy._subrequest import REASONS, discard, subrequest

HEAD_CONCURRENCY = 4
YIELD_FREQUENCY = 10.0
BAD_REQUEST_TEXT = ("Bad Request\nThe server could not comply with the request since it is either "
                    "malformed or otherwise incorrect.")


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def out_type(request: Request) -> str:
    accept = request.headers.get("accept") or ""
    if "application/json" in accept:
        return "application/json"
    if "/xml" in accept:
        return "application/xml"
    return "text/plain"


async def head_segment(slo: Any, request: Request, account: str, path: str) -> core.SegmentHead:
    resp = await slo(subrequest(request, "HEAD", f"/v1/{account}{path}"))
    await discard(resp)
    h = resp.headers
    line = f"{resp.status} {REASONS.get(resp.status, 'Error')}"
    if not 200 <= resp.status < 300:
        return core.SegmentHead(resp.status, line)
    return core.SegmentHead(
        resp.status,
        line,
        int(h.get("content-length") or 0),
        (h.get("etag") or "").strip('"'),
        h.get("content-type") or "application/octet-stream",
        h.get("last-modified") or "",
        _true(h.get("x-static-large-object")),
    )


async def head_batches(
    slo: Any, request: Request, account: str, paths: list[str], heads: dict[str, core.SegmentHead]
) -> AsyncIterator[None]:
    """HEAD ``paths`` a batch at a time, yielding between batches (never
    inside the nursery) so a heartbeat can be sent."""
    for i in range(0, len(paths), HEAD_CONCURRENCY):

        async def one(path: str) -> None:
            heads[path] = await head_segment(slo, request, account, path)

        async with trio.open_nursery() as nursery:
            for path in paths[i : i + HEAD_CONCURRENCY]:
                nursery.start_soon(one, path)
        yield


async def put_manifest(slo: Any, request: Request) -> Response:
    if request.headers.get("x-copy-from"):
        return Response.text(405, "Multipart Manifest PUTs cannot be COPY requests")
    if request.content_length is None and not request.chunked:
        return Response.text(411)
    too_big = f"Manifest File > {core.MAX_MANIFEST_SIZE} bytes"
    if request.content_length is not None and request.content_length > core.MAX_MANIFEST_SIZE:
        return Response.text(413, too_big)
    body = await request.read(core.MAX_MANIFEST_SIZE + 1)
    if len(body) > core.MAX_MANIFEST_SIZE:
        return Response.text(413, too_big)
    specs = core.parse_manifest_put(body, request.path)
    account = request.path.split("/", 3)[2]
    paths = list(dict.fromkeys(s.path for s in specs if s.path is not None))
    heads: dict[str, core.SegmentHead] = {}
    out = out_type(request)
    if _true(request.query.get("heartbeat")):
        return Response(202, {"content-type": out}, _heartbeat(slo, request, account, specs, paths, heads, out))
    async for _ in head_batches(slo, request, account, paths, heads):
        pass
    stored, total, problems = core.build_manifest(specs, heads)
    if problems:
        return Response(400, {"content-type": out}, core.heartbeat_body(out, {}, problems))
    etag = core.slo_etag(stored)
    client_etag = (request.headers.get("etag") or "").strip('"')
    if client_etag and client_etag != etag:
        return Response.text(422)
    resp = await store(slo, request, stored, total, etag)
    if 200 <= resp.status < 300:
        resp.headers.set("etag", f'"{etag}"')
    return resp


async def store(slo: Any, request: Request, stored: list[dict[str, Any]], total: int, etag: str) -> Response:
    data = json.dumps(stored).encode()
    headers = request.headers.copy()
    for name in ("content-length", "transfer-encoding", "etag", "expect"):
        headers.pop(name)
    if not headers.get("content-type"):
        guessed = mimetypes.guess_type(request.path)[0]
        headers.set("content-type", guessed or "application/octet-stream")
    headers.set("x-static-large-object", "True")
    headers.set("etag", hashlib.md5(data, usedforsecurity=False).hexdigest())
    headers.set(core.SYSMETA_SLO_ETAG, etag)
    headers.set(core.SYSMETA_SLO_SIZE, str(total))
    # the container row shows the large object's size and SLO ETag (as Swift)
    headers.set("content-type", core.manifest_content_type(headers["content-type"], total, etag))
    resp: Response = await slo.app(subrequest(request, "PUT", request.path, headers, data))
    return resp


async def _heartbeat(
    slo: Any, request: Request, account: str, specs: list[core.SegmentSpec], paths: list[str],
    heads: dict[str, core.SegmentHead], out: str,
) -> AsyncIterator[bytes]:
    yield b" "
    last = trio.current_time()
    async for _ in head_batches(slo, request, account, paths, heads):
        if trio.current_time() - last > YIELD_FREQUENCY:
            last = trio.current_time()
            yield b" "
    stored, total, problems = core.build_manifest(specs, heads)
    if problems:
        summary = {"Response Status": "400 Bad Request", "Response Body": BAD_REQUEST_TEXT}
        yield b"\r\n\r\n" + core.heartbeat_body(out, summary, problems)
        return
    etag = core.slo_etag(stored)
    client_etag = (request.headers.get("etag") or "").strip('"')
    if client_etag and client_etag != etag:
        summary = {"Response Status": "422 Unprocessable Entity",
                   "Response Body": "Unprocessable Entity\nUnable to process the contained instructions"}
        yield b"\r\n\r\n" + core.heartbeat_body(out, summary, [])
        return
    resp = await store(slo, request, stored, total, etag)
    text = (await resp.read_body()).decode("utf-8", "replace")
    summary = {"Response Status": f"{resp.status} {REASONS.get(resp.status, '')}".strip(), "Response Body": text}
    if 200 <= resp.status < 300:
        summary["Etag"] = f'"{etag}"'
        summary["Last Modified"] = resp.headers.get("last-modified") or ""
    yield b"\r\n\r\n" + core.heartbeat_body(out, summary, [])
