"""Subrequests from a middleware to the app below it, as Swift's
``make_subrequest``: the caller's ``context`` (identity, ``authorize``,
transaction id) rides along, so a subrequest is authorized as the caller
(invariant 6) and logged under the caller's transaction id. The
``swift_owner`` flag and cached ``container_info`` are not inherited:
``authorize`` decides again for the subrequest's own path."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from common.http import REASONS as _REASONS
from common.http import Headers, Request, Response
from proxy._slo_ranges import conditional_status

REASONS: dict[int, str] = dict(_REASONS)
NOT_INHERITED = ("swift_owner", "container_info")
INHERITED_HEADERS = ("x-trans-id", "user-agent", "x-auth-token", "x-storage-token", "referer")


def subrequest(
    parent: Request,
    method: str,
    path: str,
    headers: Headers | dict[str, str] | None = None,
    body: bytes | AsyncIterable[bytes] = b"",
    query_string: str = "",
) -> Request:
    if isinstance(headers, Headers):
        hdrs = headers.copy()
    else:
        hdrs = Headers(headers or {})
        for name in INHERITED_HEADERS:
            value = parent.headers.get(name)
            if value is not None and name not in hdrs:
                hdrs.set(name, value)
    sub = Request.make(method, path, hdrs, body, query_string)
    sub.context.update({k: v for k, v in parent.context.items() if k not in NOT_INHERITED})
    sub.client = parent.client
    return sub


async def body_chunks(resp: Response) -> AsyncIterator[bytes]:
    """Iterate a response body (bytes or async iterable), closing it on exit."""
    body: Any = resp.body
    if isinstance(body, (bytes, bytearray)):
        if body:
            yield bytes(body)
        return
    try:
        async for chunk in body:
            if chunk:
                yield chunk
    finally:
        await aclose(body)


async def aclose(body: Any) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result


async def discard(resp: Response) -> None:
    """Release a response whose body we do not want (closes a stream)."""
    if not isinstance(resp.body, (bytes, bytearray)):
        await aclose(resp.body)


def conditional_response(request: Request, headers: Headers, etag: str, last_modified: str) -> Response | None:
    """The 304/412 a large object's GET/HEAD answers to If-* headers against
    its own ETag (not the manifest's), or None to serve it. Shared by SLO
    and DLO."""
    cond = conditional_status(request.headers, etag, last_modified, request.method)
    if cond == 304:
        return Response(304, headers)
    if cond == 412:
        return Response.text(412, headers=headers)
    return None
