"""Dynamic Large Objects, as Swift's ``dlo`` middleware (served by
``proxy.slo``, which owns large-object reads).

A manifest is any object with ``X-Object-Manifest: <container>/<prefix>``;
a GET/HEAD of it (without ``?multipart-manifest=get``) lists the container
with that prefix, as the caller (invariant 6), and serves the listed objects
in name order, streamed (invariant 4), with the ETag Swift gives: the quoted
MD5 of the concatenated segment ETags, and the total Content-Length. Range
and conditional requests apply to the whole. A PUT with a malformed
``X-Object-Manifest`` is refused with Swift's 400 text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote, unquote

from common.http import Headers, Request, Response
from proxy import _slo_core as core
from proxy._subrequest import conditional_response, discard, subrequest

LISTING_LIMIT = 10000
MAX_PAGES = 100


def is_dlo(resp: Response) -> bool:
    return 200 <= resp.status < 300 and "x-object-manifest" in resp.headers


def check_put_header(request: Request) -> Response | None:
    """Swift's ``_validate_x_object_manifest_header``."""
    value = request.headers.get("x-object-manifest")
    if value is None:
        return None
    container, _, prefix = value.partition("/")
    if not container or not prefix or "?" in value or "&" in value or prefix.startswith("/"):
        return Response.text(400, "X-Object-Manifest must be in the format container/prefix")
    return None


async def _listing(
    mw: Any, request: Request, account: str, container: str, prefix: str
) -> tuple[list[dict[str, Any]] | None, Response | None]:
    rows: list[dict[str, Any]] = []
    marker = ""
    for _ in range(MAX_PAGES):
        qs = f"format=json&prefix={quote(prefix)}" + (f"&marker={quote(marker)}" if marker else "")
        resp = await mw.app(subrequest(request, "GET", f"/v1/{account}/{container}", None, b"", qs))
        if not 200 <= resp.status < 300:
            await discard(resp)
            return None, Response.text(resp.status) if request.method != "HEAD" else Response(resp.status)
        body = await resp.read_body()
        page = json.loads(body) if resp.status == 200 and body else []
        rows += [r for r in page if "name" in r]
        if len(page) < LISTING_LIMIT:
            return rows, None
        marker = page[-1].get("name") or page[-1].get("subdir") or ""
    return rows, None


def _wsgi_to_str(value: str) -> str:
    """Header values arrive as latin-1 text of the raw bytes (as WSGI's);
    a manifest naming a UTF-8 container or prefix is UTF-8 underneath."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


async def respond(mw: Any, request: Request, account: str, manifest: Response) -> Response:
    """The DLO answer for a GET/HEAD whose object carries X-Object-Manifest."""
    await discard(manifest)
    value = unquote(_wsgi_to_str(manifest.headers["x-object-manifest"]))
    container, _, prefix = value.partition("/")
    rows, error = await _listing(mw, request, account, container, prefix)
    if error is not None or rows is None:
        return error or Response.text(500)
    h = manifest.headers
    etag = hashlib.md5(
        "".join(str(r.get("hash", "")).strip('"') for r in rows).encode(), usedforsecurity=False
    ).hexdigest()
    size = sum(int(r.get("bytes", 0)) for r in rows)
    headers = Headers([(k, v) for k, v in h.items() if not mw._dropped(k)])
    headers.set("etag", f'"{etag}"')
    headers.set("accept-ranges", "bytes")
    if (cond := conditional_response(request, headers, etag, h.get("last-modified") or "")) is not None:
        return cond
    headers.set("content-length", str(size))
    if request.method == "HEAD":
        return Response(200, headers, b"")
    rng = request.headers.get("range")
    if rng and len(core.parse_byte_ranges(rng) or []) > 1:
        request.headers.pop("range")  # Swift's DLO serves all of it, 200 (test_dlo test_get_multiple_ranges)
    pieces = [
        core.Piece(f"/{container}/{r['name']}", 0, int(r["bytes"]) - 1, None, int(r["bytes"]))
        for r in rows
        if int(r.get("bytes", 0)) > 0
    ]
    result: Response = await mw.serve_pieces(request, account, headers, pieces, size)
    return result
