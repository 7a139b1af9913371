"""HTTP messages shared by the server and the client: headers, requests,
responses and the errors a handler can raise. No I/O here except the body
source (and body pump) a server or a subrequest plugs into a ``Request``."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import trio

CHUNK_SIZE = 65536


class HTTPError(Exception):
    """An error with a status hint; servers turn it into a response whose
    plain-text body is the message (Swift style)."""

    status = 500

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message


class BodyTooLarge(HTTPError):
    status = 413


class ClientDisconnect(HTTPError):
    """The client hung up before sending the whole body (Swift answers 499)."""

    status = 499


class BodyTimeout(HTTPError):
    """The client stopped sending the body for longer than the read timeout."""

    status = 408


class Headers:
    """Case-insensitive multi-valued headers. Names are kept lower-case;
    values are ``str`` (latin-1, as HTTP/1.1 carries them)."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: Iterable[tuple[str, str]] | dict[str, str] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._map: dict[str, str] | None = None
        if items is None:
            return
        pairs = items.items() if isinstance(items, dict) else items
        self._items = [(k.lower(), v) for k, v in pairs]

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        h = cls()
        h._items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
        return h

    def _lookup(self) -> dict[str, str]:
        if self._map is None:
            m: dict[str, str] = {}
            for k, v in self._items:
                m[k] = f"{m[k]}, {v}" if k in m and k != "set-cookie" else v
            self._map = m
        return self._map

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lookup().get(name.lower(), default)

    def getall(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self._items if k == n]

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def set(self, name: str, value: str) -> None:
        n = name.lower()
        self._items = [(k, v) for k, v in self._items if k != n]
        self._items.append((n, value))
        self._map = None

    def add(self, name: str, value: str) -> None:
        self._items.append((name.lower(), value))
        self._map = None

    def pop(self, name: str, default: str | None = None) -> str | None:
        value = self.get(name, default)
        n = name.lower()
        self._items = [(k, v) for k, v in self._items if k != n]
        self._map = None
        return value

    def copy(self) -> Headers:
        return Headers(self._items)

    def with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        p = prefix.lower()
        return [(k, v) for k, v in self._items if k.startswith(p)]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def is_valid_utf8(text: str) -> bool:
    """True when a path decoded with ``surrogateescape`` was valid UTF-8 and
    has no NUL (Swift answers 412 otherwise)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_path(raw: bytes) -> str:
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")


def quote_path(path: str) -> str:
    """Percent-encode a decoded path for the wire (keeps ``/``)."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def parse_query(query_string: str) -> dict[str, str]:
    """Parse a query string; last value wins; a bare key maps to ``""``."""
    out: dict[str, str] = {}
    if not query_string:
        return out
    for part in query_string.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        k = unquote_to_bytes(key.replace("+", " ")).decode("utf-8", "surrogateescape")
        out[k] = unquote_to_bytes(value.replace("+", " ")).decode("utf-8", "surrogateescape") if sep else ""
    return out


BodySource = Callable[[], Awaitable[bytes]]  # returns b"" at the end of the body
BodySink = Callable[[memoryview], None]  # blocking: takes the body's bytes in order, in a worker thread
BodyPump = Callable[[BodySink], Awaitable[None]]  # feeds a whole body to a sink (the server's fast path)
RunBlocking = Callable[..., Awaitable[Any]]  # ``await run(fn, *args)`` in a worker thread
PUMP_BATCH = 1 << 20  # bytes a sink gets per thread hop when the body is read on the event loop


def _sink_all(sink: BodySink, chunks: list[bytes]) -> None:
    for chunk in chunks:
        sink(memoryview(chunk))


async def pump_batches(receive: BodySource, sink: BodySink, run: RunBlocking) -> None:
    """Read a body on the event loop and hand it to ``sink`` through ``run``
    in batches of about ``PUMP_BATCH`` bytes (the path for bodies a server
    cannot read in a worker thread, and for subrequests)."""
    batch: list[bytes] = []
    size = 0
    while True:
        chunk = await receive()
        if not chunk:
            break
        batch.append(chunk)
        size += len(chunk)
        if size >= PUMP_BATCH:
            await run(_sink_all, sink, batch)
            batch, size = [], 0
    if batch:
        await run(_sink_all, sink, batch)


async def _iter_bytes(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK_SIZE):
        yield data[i : i + CHUNK_SIZE]


class Request:
    """A request as a handler sees it. The body is read once, either whole
    (``read``) or streamed (``iter_body``); reading raises
    ``ClientDisconnect`` (499) when the client hangs up before the end and
    ``BodyTimeout`` (408) when it stalls. ``trailers``: the fields of a
    chunked body's trailer section, set once the body was read to its end
    (empty before, and for bodies without one)."""

    __slots__ = (
        "method", "target", "raw_path", "path", "query_string", "_query", "headers",
        "client", "content_length", "chunked", "context", "trailers", "_receive", "_consumed", "_pump",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: Headers,
        receive: BodySource,
        *,
        client: tuple[str, int] = ("", 0),
        content_length: int | None = None,
        chunked: bool = False,
        pump: BodyPump | None = None,
    ) -> None:
        self.method = method
        self.target = target
        raw_path, _, qs = target.partition(b"?")
        self.raw_path = raw_path
        self.path = decode_path(raw_path)
        self.query_string = qs.decode("latin-1")
        self._query: dict[str, str] | None = None
        self.headers = headers
        self.client = client
        self.content_length = content_length
        self.chunked = chunked
        self.context: dict[str, Any] = {}
        self.trailers = Headers()
        self._receive = receive
        self._consumed = False
        self._pump = pump

    @classmethod
    def make(
        cls,
        method: str,
        path: str,
        headers: Headers | dict[str, str] | list[tuple[str, str]] | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
        query_string: str = "",
    ) -> Request:
        """Build an internal subrequest (middleware -> app)."""
        hdrs = headers.copy() if isinstance(headers, Headers) else Headers(headers)
        target = quote_path(path).encode("ascii")
        if query_string:
            target += b"?" + query_string.encode("latin-1")
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            it: AsyncIterator[bytes] = _iter_bytes(data)
            length: int | None = len(data)
            hdrs.set("content-length", str(len(data)))
        else:
            it = aiter(body)
            cl = hdrs.get("content-length")
            length = int(cl) if cl is not None and cl.isdigit() else None

        async def receive() -> bytes:
            try:
                return await anext(it)
            except StopAsyncIteration:
                return b""

        req = cls(method.upper(), target, hdrs, receive, content_length=length, chunked=length is None)
        req.path = path
        return req

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = parse_query(self.query_string)
        return self._query

    async def read(self, limit: int | None = None) -> bytes:
        if self.content_length is not None and limit is not None and self.content_length > limit:
            raise BodyTooLarge(f"Request body too large (limit {limit} bytes)")
        parts: list[bytes] = []
        total = 0
        async for chunk in self.iter_body():
            total += len(chunk)
            if limit is not None and total > limit:
                raise BodyTooLarge(f"Request body too large (limit {limit} bytes)")
            parts.append(chunk)
        return b"".join(parts)

    async def iter_body(self) -> AsyncIterator[bytes]:
        if self._consumed:
            return
        self._consumed = True
        while True:
            chunk = await self._receive()
            if not chunk:
                return
            yield chunk

    async def pump_body(self, sink: BodySink) -> None:
        """Feed the whole body to ``sink``, a blocking callable run in worker
        threads (each ``memoryview`` is valid only during its call). An
        exception from ``sink`` stops the read and propagates; the body
        errors are those of ``iter_body``. Servers read the socket in the
        thread itself when they can (``_bodypump``): one hand-off per body."""
        if self._consumed:
            return
        if self._pump is not None:
            self._consumed = True
            await self._pump(sink)
            return
        chunks = aiter(self.iter_body())
        await pump_batches(lambda: anext(chunks, b""), sink, trio.to_thread.run_sync)

    @property
    def body_consumed(self) -> bool:
        return self._consumed

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r}>"


class Response:
    """What a handler returns. ``body`` is bytes (Content-Length set for you)
    or an async iterable streamed to the client (chunked unless the handler
    sets Content-Length). When a streamed body raises, the server aborts the
    connection so the client sees a truncated response, never a clean end."""

    __slots__ = ("status", "headers", "body", "reason")

    def __init__(
        self,
        status: int,
        headers: Headers | list[tuple[str, str]] | dict[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
        reason: str = "",
    ) -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body
        self.reason = reason

    @classmethod
    def text(cls, status: int, message: str = "", headers: Any = None) -> Response:
        """A Swift-style error or status response: the message as plain text,
        or Swift's default HTML page for the status when there is none."""
        resp = cls(status, headers)
        if status in (204, 304) or (100 <= status < 200):
            return resp
        if message:
            resp.body = message.encode("utf-8")
            ctype = "text/plain; charset=UTF-8"
        else:
            reason = REASONS.get(status, "Error")
            resp.body = f"<html><h1>{reason}</h1><p>{DEFAULT_BODIES.get(status, reason)}</p></html>".encode()
            ctype = "text/html; charset=UTF-8"
        if "content-type" not in resp.headers:
            resp.headers.set("content-type", ctype)
        return resp

    async def read_body(self) -> bytes:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        return b"".join([c async for c in self.body])

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


REASONS: dict[int, str] = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    206: "Partial Content", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    408: "Request Timeout", 409: "Conflict", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity", 431: "Request Header Fields Too Large", 499: "Client Disconnect",
    500: "Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    507: "Insufficient Storage",
}

DEFAULT_BODIES: dict[int, str] = {
    401: "This server could not verify that you are authorized to access the document you requested.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method is not allowed for this resource.",
    409: "There was a conflict when trying to complete your request.",
    411: "Length Required.",
    412: "A precondition for this request was not met.",
    413: "The body of your request was too large for this server.",
    416: "The Range requested is not available.",
    422: "The data sent in your request could not be processed.",
    499: "The client disconnected during request.",
    500: "An error occurred while processing this request.",
    503: "The server is currently unavailable. Please try again at a later time.",
    507: "There was not enough space to save the resource.",
}
