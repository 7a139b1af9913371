"""Server-side copy, as Swift's ``copy`` middleware.

``COPY /v1/a/c/o`` with ``Destination: c2/o2`` (and optionally
``Destination-Account``) becomes ``PUT /v1/a2/c2/o2`` with
``X-Copy-From: /c/o`` (and ``X-Copy-From-Account``). A PUT with
``X-Copy-From`` is served by GETting the source (``X-Newest: true``) and
streaming its body into a PUT of the destination: chunk by chunk, never the
whole object in memory (invariant 4). Both subrequests carry the caller's
context, so the source needs read access and the destination write access
(invariant 6).

Metadata: by default the source's user metadata, ``Content-Type``,
``Content-Encoding``, ``Content-Disposition`` and ``X-Delete-At`` are carried
over and the request's own headers override them; with
``X-Fresh-Metadata: true`` only the request's headers apply. The source ETag
is sent with the PUT, so the destination proves it got the same bytes.
Copying an SLO copies its concatenated content; with
``?multipart-manifest=get`` it copies the manifest itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from common.http import Headers, Request, Response
from proxy._subrequest import body_chunks, discard, subrequest
from proxy.acl import split_swift_path

DEFAULT_MAX_FILE_SIZE = 5368709122
CARRIED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
    "x-delete-at",
    "x-robots-tag",
)
SOURCE_ONLY = ("range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
META_PREFIXES = ("x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")
NOT_FORWARDED = (
    "content-length",
    "transfer-encoding",
    "x-copy-from",
    "x-copy-from-account",
    "destination",
    "destination-account",
    "x-fresh-metadata",
    "etag",
    "expect",
    # these select and condition the source, not the destination
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def header_text(value: str) -> str:
    """Header values arrive as latin-1 text of the raw bytes (as WSGI's); a
    raw UTF-8 name is UTF-8 underneath (tests.py TestFileUTF8.testCopyFromHeader)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def parse_path_header(value: str, header: str) -> tuple[str, str]:
    """``c/o`` or ``/c/o`` (percent-encoded allowed) -> (container, object);
    ValueError with Swift's 412 text otherwise."""
    text = unquote(header_text(value))
    if not text.startswith("/"):
        text = "/" + text
    _, container, obj = (text.split("/", 2) + ["", ""])[:3]
    if not container or not obj:
        raise ValueError(f"{header} header must be of the form <container name>/<object name>")
    return container, obj


def is_carried(name: str) -> bool:
    return name.startswith(META_PREFIXES) or name in CARRIED_HEADERS


def sink_headers(source: Headers, request: Headers, fresh: bool) -> Headers:
    """The destination PUT's headers (Swift's copy rules; see module doc)."""
    out = Headers()
    if not fresh:
        for name, value in source.items():
            if is_carried(name):
                out.add(name, value)
    else:
        for name, value in source.items():
            if name.startswith("x-object-sysmeta-"):
                out.add(name, value)
    for name, value in request.items():
        if name in NOT_FORWARDED:
            continue
        out.set(name, value)
    if not request.get("content-type") and source.get("content-type"):
        out.set("content-type", source["content-type"])
    return out


class ServerSideCopy:
    def __init__(self, app: Callable[[Request], Any], conf: Any = None) -> None:
        self.app = app
        self.max_file_size = int(getattr(conf, "max_file_size", DEFAULT_MAX_FILE_SIZE) or DEFAULT_MAX_FILE_SIZE)

    async def __call__(self, request: Request) -> Response:
        parts = split_swift_path(request.path)
        if parts is None or parts[1] is None or parts[2] is None:
            return await self.app(request)
        account, container, obj = parts[0], parts[1], parts[2]
        if request.method == "PUT" and request.headers.get("x-copy-from"):
            return await self._put(request, account)
        if request.method == "COPY":
            return await self._copy(request, account, container, obj)
        return await self.app(request)

    async def _copy(self, request: Request, account: str, container: str, obj: str) -> Response:
        destination = request.headers.get("destination")
        if not destination:
            return Response.text(412, "Destination header required")
        headers = request.headers.copy()
        dest_account = account
        if "destination-account" in request.headers:
            dest_account = unquote(header_text(request.headers["destination-account"]))
            if not dest_account or "/" in dest_account:
                return Response.text(412, "Account name cannot contain slashes")
            headers.set("x-copy-from-account", quote(account))
        try:
            dest_container, dest_obj = parse_path_header(destination, "Destination")
        except ValueError as exc:
            return Response.text(412, str(exc))
        headers.pop("destination")
        headers.pop("destination-account")
        headers.set("x-copy-from", quote(f"/{container}/{obj}"))
        put = subrequest(
            request, "PUT", f"/v1/{dest_account}/{dest_container}/{dest_obj}", headers, b"",
            request.query_string,
        )
        put.context["orig_method"] = "COPY"
        return await self._put(put, dest_account)

    async def _put(self, request: Request, account: str) -> Response:
        if request.content_length:
            return Response.text(400, "Copy requests require a zero byte body")
        src_account = account
        if request.headers.get("x-copy-from-account"):
            src_account = unquote(header_text(request.headers["x-copy-from-account"]))
            if not src_account or "/" in src_account:
                return Response.text(412, "Account name cannot contain slashes")
        try:
            src_container, src_obj = parse_path_header(request.headers["x-copy-from"], "X-Copy-From")
        except ValueError as exc:
            return Response.text(412, str(exc))
        manifest_get = request.query.get("multipart-manifest") == "get"
        get_headers = request.headers.copy()
        for name in NOT_FORWARDED:
            if name not in SOURCE_ONLY:
                get_headers.pop(name)
        for name in list(get_headers):
            if name.startswith(META_PREFIXES) or name == "content-type":
                get_headers.pop(name)
        get_headers.set("x-newest", "true")
        source_query = "multipart-manifest=get&format=raw" if manifest_get else ""
        part = request.query.get("part-number")
        if part is not None and not manifest_get:  # applies to the source (test_slo test_slo_copy_part_number)
            source_query = f"part-number={quote(part)}"
        source = await self.app(
            subrequest(
                request, "GET", f"/v1/{src_account}/{src_container}/{src_obj}", get_headers, b"", source_query,
            )
        )
        if source.status >= 300:
            return source
        length_text = source.headers.get("content-length")
        if length_text is None or not length_text.isdigit() or int(length_text) > self.max_file_size:
            await discard(source)
            return Response.text(413)
        fresh = _true(request.headers.get("x-fresh-metadata"))
        headers = sink_headers(source.headers, request.headers, fresh)
        is_slo = "x-static-large-object" in source.headers
        query = ""
        if manifest_get and is_slo:
            query = "multipart-manifest=put"
        if manifest_get and "x-object-manifest" in source.headers:  # copy the DLO manifest itself
            headers.set("x-object-manifest", source.headers["x-object-manifest"])
        if source.status == 200 and not is_slo and "x-object-manifest" not in source.headers:
            etag = (source.headers.get("etag") or "").strip('"')
            if etag:
                headers.set("etag", etag)
        headers.set("content-length", length_text)
        sink = subrequest(request, "PUT", request.path, headers, body_chunks(source), query)
        sink.content_length = int(length_text)
        sink.chunked = False
        resp: Response = await self.app(sink)
        if 200 <= resp.status < 300:
            resp.headers.set("x-copied-from-account", quote(src_account))
            resp.headers.set("x-copied-from", quote(f"{src_container}/{src_obj}"))
            if source.headers.get("last-modified"):
                resp.headers.set("x-copied-from-last-modified", source.headers["last-modified"])
            for name, value in headers.items():
                if name.startswith(("x-object-meta-", "x-object-transient-sysmeta-")) or name == "x-delete-at":
                    resp.headers.set(name, value)
        else:
            await discard(source)
        return resp


def filter_factory(app: Callable[[Request], Any], conf: Any) -> ServerSideCopy:
    return ServerSideCopy(app, conf)
