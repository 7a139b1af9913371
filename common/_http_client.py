"""The pooled HTTP/1.1 client: httptools (llhttp) over any trio stream.

Used for every internal hop (proxy -> storage node, node -> node). The wire
format is ``_http_wire``. Contract:

- Connections are kept alive and pooled per (host, port); a connection goes
  back to the pool only when both sides finished their message cleanly, and
  an idle one is checked for a peer hang-up before reuse.
- Failures to connect, protocol errors, a peer that hangs up and a request
  that breaks its own framing (more or fewer body bytes than its
  Content-Length; CR, LF or NUL in a header) raise ``UpstreamError``;
  timeouts raise ``trio.TooSlowError`` (callers wrap in ``fail_after`` or
  pass ``timeout``). A cancelled request closes its connection: it is never
  reused half-way.
- A request body is framed by its headers: ``transfer-encoding: chunked``
  (chunks and a trailer section), else its Content-Length (none: no body).
- ``connect`` is injectable (real TCP by default) so the whole cluster can run
  over in-memory streams in the simulation.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass

import trio

from . import splice
from ._http_message import Headers
from ._http_wire import (
    End,
    HeaderError,
    ResponseReader,
    WireError,
    chunk_parts,
    decode_headers,
    frame_chunk,
    request_head,
    trailer_block,
)
from ._sockio import Receiver

Connector = Callable[[str, int], Awaitable[trio.abc.Stream]]
HeaderArg = Headers | dict[str, str] | Iterable[tuple[str, str]] | None
MAX_RECV = 262144  # as the server's: fewer parser/trio trips per large body
JOIN_MAX = 65536  # ``send_whole`` joins head and body up to this body size


class UpstreamError(Exception):
    """Could not complete an exchange with a peer (connect refused, reset,
    protocol error, early close). Never means "the peer did not apply it"."""


async def tcp_connect(host: str, port: int) -> trio.abc.Stream:
    return await trio.open_tcp_stream(host, port)


def _header_list(headers: HeaderArg) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.items()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


class ClientConnection:
    """One client connection; a request/response cycle at a time.

    Low-level use (the proxy's fan-out PUT): ``send_request`` with headers,
    ``send_data`` per chunk, ``end_body``, ``read_response`` (or
    ``read_head(allow_informational=True)`` to see ``100 Continue``), then
    ``iter_body``/``read_body`` and ``release``."""

    def __init__(self, stream: trio.abc.Stream, host: str, port: int, pool: HTTPClient | None) -> None:
        self.stream = stream
        self.host = host
        self.port = port
        self.pool = pool
        self.closed = False
        self.reused = False
        self._reader = ResponseReader()
        self._rx = Receiver(stream, MAX_RECV)
        self._host_header = f"{host}:{port}"
        self._left = 0  # body bytes the request still owes (its Content-Length)
        self._chunked = False
        self._sent = False  # the whole request went out
        self._received = False  # the whole response came in
        self._keep = True  # the request did not ask to close

    def alive(self) -> bool:
        """Cheap check that an idle pooled connection was not closed by the peer."""
        tsock = getattr(self.stream, "socket", None)
        sock = getattr(tsock, "_sock", None)  # the stdlib socket under trio's
        if sock is None:
            return True
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        del data  # EOF (peer closed) or unexpected bytes on an idle connection: drop it
        return False

    async def _fail(self, what: str, exc: BaseException | None = None) -> UpstreamError:
        await self.aclose()
        error = UpstreamError(what)
        error.__cause__ = exc
        return error

    async def _write(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise await self._fail(f"send to {self.host}:{self.port} failed: {exc!r}", exc) from exc

    async def _head(self, method: str, path: str, headers: HeaderArg) -> bytes:
        """A new exchange's request head; the body's framing is noted."""
        try:
            head, length, close = request_head(method, path, _header_list(headers), self._host_header)
        except HeaderError as exc:
            raise await self._fail(f"send to {self.host}:{self.port} failed: {exc}", exc) from exc
        self._reader.start(method == "HEAD")
        self._chunked = length < 0
        self._left = max(length, 0)
        self._sent = self._received = False
        self._keep = not close
        return head

    async def send_request(self, method: str, path: str, headers: HeaderArg = None) -> None:
        await self._write(await self._head(method, path, headers))

    async def send_whole(self, method: str, path: str, headers: HeaderArg, body: bytes) -> None:
        """Head, body and end: in one write when the body is small (one
        syscall), else each part as it is (joining would copy the body into
        fresh memory, ~1 ms per MiB here with the page faults)."""
        head = await self._head(method, path, headers)
        if self._chunked:
            parts = [head, *(chunk_parts([body]) if body else []), b"0\r\n\r\n"]
        elif len(body) != self._left:
            raise await self._fail(
                f"send to {self.host}:{self.port} failed: {len(body)} body bytes for Content-Length {self._left}")
        else:
            parts = [head, body]
        self._left = 0
        self._sent = True
        if len(body) <= JOIN_MAX:
            await self._write(b"".join(parts))
            return
        for part in parts:
            await self._write(part)

    async def send_data(self, data: bytes) -> None:
        if not data:
            return
        if self._chunked:
            await self._write(frame_chunk(data))
            return
        if len(data) > self._left:
            raise await self._fail(f"send to {self.host}:{self.port} failed: too much data for declared Content-Length")
        self._left -= len(data)
        await self._write(data)

    async def send_framed(self, framed: bytes) -> None:
        """A chunk already framed (``frame_parts``) for a chunked request
        body: one buffer shared by every connection the body goes to."""
        if not self._chunked:
            raise await self._fail(f"send to {self.host}:{self.port} failed: a framed chunk needs a chunked body")
        await self._write(framed)

    async def end_body(self, trailers: list[tuple[str, str]] | None = None) -> None:
        """End the body; ``trailers`` go in the trailer section, which only a
        chunked body (``Transfer-Encoding: chunked`` request) has."""
        if self._chunked:
            try:
                tail = trailer_block(trailers) if trailers else b"0\r\n\r\n"
            except HeaderError as exc:
                raise await self._fail(f"send to {self.host}:{self.port} failed: {exc}", exc) from exc
            self._sent = True
            await self._write(tail)
            return
        if trailers:
            raise await self._fail(f"send to {self.host}:{self.port} failed: Content-Length and trailers don't mix")
        if self._left:
            raise await self._fail(f"send to {self.host}:{self.port} failed: too little data for declared Content-Length")
        self._sent = True

    async def _fill(self) -> None:
        """Read and parse more of the response."""
        try:
            data = await self._rx.receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise await self._fail(f"receive from {self.host}:{self.port} failed: {exc!r}", exc) from exc
        if data:
            self._reader.feed(data)
        elif not self._reader.eof():  # EOF ends only a body without framing
            raise await self._fail(f"{self.host}:{self.port} closed the connection")

    async def read_head(self, *, allow_informational: bool = False) -> tuple[int, Headers]:
        """The next response head: the final one (1xx skipped), or with
        ``allow_informational`` a 1xx too (``100 Continue``)."""
        events = self._reader.events
        while True:
            while not events:
                await self._fill()
            event = events.popleft()
            if type(event) is tuple:
                status, raw = event
                if status < 200 and not allow_informational:
                    continue
                return status, decode_headers(raw)
            if isinstance(event, WireError):
                raise await self._fail(f"bad response from {self.host}:{self.port}: {event}", event)
            raise await self._fail(f"unexpected data from {self.host}:{self.port} before a response head")

    async def read_response(self) -> tuple[int, Headers]:
        """Wait for the final response head (1xx are skipped)."""
        return await self.read_head()

    async def receive_chunk(self) -> bytes:
        """The next body chunk; b"" at the end of the response body."""
        if self._received:
            return b""
        events = self._reader.events
        while not events:
            await self._fill()
        event = events.popleft()
        if type(event) is bytes:
            return event
        if type(event) is End:
            self._received = True
            return b""
        if isinstance(event, WireError):
            raise await self._fail(f"bad response from {self.host}:{self.port}: {event}", event)
        raise await self._fail(f"unexpected response head from {self.host}:{self.port}")

    async def iter_body(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.receive_chunk()
            if not chunk:
                return
            yield chunk

    async def read_body(self, limit: int | None = None) -> bytes:
        parts: list[bytes] = []
        total = 0
        async for chunk in self.iter_body():
            parts.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                await self.aclose()
                raise UpstreamError(f"response from {self.host}:{self.port} over {limit} bytes")
        return b"".join(parts)

    def body_left_in_transport(self) -> int:
        """Body bytes of a length-framed response still in the transport
        (none of them parsed yet); -1 when the parser still holds some,
        the body is not length-framed, or it has ended."""
        reader = self._reader
        if reader.events or self._received:
            return -1
        return reader.body_left if reader.body_left > 0 else -1

    def took_body(self) -> None:
        """The caller took ``body_left_in_transport()`` bytes from the
        transport itself: the response is complete."""
        self._reader.bypass_body()
        self._received = True

    @property
    def reusable(self) -> bool:
        return (not self.closed and self._sent and self._received and self._keep
                and self._reader.keep_alive and not self._reader.closed)

    async def release(self) -> None:
        """Return to the pool when the exchange finished cleanly, else close."""
        if self.reusable and self.pool is not None:
            self.pool._checkin(self)
        else:
            await self.aclose()

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        with trio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


class RelayBody:
    """The rest of a response body, passed on to another peer as it arrives
    (the proxy's GET). ``first`` is what the caller already read of it.

    Iterating gives the chunks as received (each wait bounded by
    ``timeout``). ``relay_to(stream, head, length)`` instead sends ``head``
    and the whole body to ``stream``, the part still in the socket moved
    kernel-side (``common.splice``) when both ends are TCP sockets and the
    body is length-framed; the server uses it for a response with a
    Content-Length. Either way the connection goes back to the pool after a
    complete body and is closed on any failure (UpstreamError or
    TooSlowError for the upstream, BrokenResourceError for ``stream``)."""

    def __init__(self, conn: ClientConnection, first: bytes, timeout: float) -> None:
        self.conn = conn
        self.first = first
        self.timeout = timeout
        self._iter: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iter is None:
            self._iter = self._chunks()
        return self._iter

    async def _next(self) -> bytes:
        with trio.fail_after(self.timeout):
            return await self.conn.receive_chunk()

    async def _chunks(self) -> AsyncIterator[bytes]:
        conn = self.conn
        try:
            if self.first:
                yield self.first
            while chunk := await self._next():
                yield chunk
        except BaseException:
            await conn.aclose()
            raise
        await conn.release()

    async def relay_to(self, stream: trio.abc.Stream, head: bytes, length: int) -> None:
        conn = self.conn
        dst = splice.socket_of(stream)
        src = splice.socket_of(conn.stream)
        try:
            await stream.send_all(head + self.first)  # the head goes out first, whatever follows
            sent = len(self.first)

            async def copy(until_end: bool) -> None:
                nonlocal sent
                while (until_end or conn.body_left_in_transport() < 0) and (chunk := await self._next()):
                    sent += len(chunk)
                    if sent > length:
                        raise UpstreamError(f"{conn.host}:{conn.port} sent more than Content-Length {length}")
                    await stream.send_all(chunk)

            await copy(until_end=False)  # as bytes until the rest waits unparsed in the socket (or the end)
            left = conn.body_left_in_transport()
            if dst is None or src is None or left <= 0 or sent + left != length:
                await copy(until_end=True)  # splicing can't be used: the copying path
            else:
                try:
                    await splice.relay_exact(src, dst, left, self.timeout)
                except splice.SourceError as exc:
                    raise UpstreamError(f"receive from {conn.host}:{conn.port} failed: {exc}") from exc
                sent += left
                conn.took_body()
            if sent != length:
                raise UpstreamError(f"{conn.host}:{conn.port} sent {sent} body bytes for Content-Length {length}")
        except BaseException:
            await conn.aclose()
            raise
        await conn.release()

    async def aclose(self) -> None:
        """Called by the server after the body was sent (or not): a body that
        was not read to its end leaves the connection unusable."""
        if self._iter is not None:
            await self._iter.aclose()
        if not self.conn._received:
            await self.conn.aclose()


@dataclass(slots=True)
class ClientResponse:
    status: int
    headers: Headers
    body: bytes


class StreamResponse:
    """A response whose body is read on demand (``iter_body``/``read``)."""

    def __init__(self, conn: ClientConnection, status: int, headers: Headers) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers

    def iter_body(self) -> AsyncIterator[bytes]:
        return self.conn.iter_body()

    async def read(self, limit: int | None = None) -> bytes:
        return await self.conn.read_body(limit)


class HTTPClient:
    """Pooled keep-alive client. ``max_idle`` connections kept per peer."""

    def __init__(
        self,
        *,
        connect: Connector = tcp_connect,
        connect_timeout: float = 2.0,
        max_idle: int = 64,
    ) -> None:
        self._connect = connect
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[ClientConnection]] = {}

    async def open(self, host: str, port: int, *, fresh: bool = False) -> ClientConnection:
        """A ready connection: a pooled idle one when alive, else a new one."""
        key = (host, port)
        if not fresh:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if conn.alive():
                    conn.reused = True
                    return conn
                await conn.aclose()
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await self._connect(host, port)
        except trio.TooSlowError as exc:
            raise UpstreamError(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise UpstreamError(f"connect to {host}:{port} failed: {errno.errorcode.get(exc.errno or 0, exc)}") from exc
        return ClientConnection(stream, host, port, self)

    def _checkin(self, conn: ClientConnection) -> None:
        idle = self._idle.setdefault((conn.host, conn.port), [])
        if len(idle) < self.max_idle:
            idle.append(conn)
        else:
            conn.closed = True
            trio.lowlevel.spawn_system_task(conn.stream.aclose)

    async def _exchange(
        self, conn: ClientConnection, method: str, path: str, headers: HeaderArg, body: bytes | AsyncIterable[bytes]
    ) -> tuple[int, Headers]:
        hdrs = _header_list(headers)
        names = {k.lower() for k, _ in hdrs}
        if isinstance(body, (bytes, bytearray)):
            if "content-length" not in names and (body or method in ("PUT", "POST")):
                hdrs.append(("content-length", str(len(body))))
            await conn.send_whole(method, path, hdrs, bytes(body))
            return await conn.read_response()
        else:
            if "content-length" not in names and "transfer-encoding" not in names:
                hdrs.append(("transfer-encoding", "chunked"))
            await conn.send_request(method, path, hdrs)
            async for chunk in body:
                await conn.send_data(chunk)
        await conn.end_body()
        return await conn.read_response()

    async def _start(
        self, method: str, host: str, port: int, path: str, headers: HeaderArg, body: bytes | AsyncIterable[bytes]
    ) -> tuple[ClientConnection, int, Headers]:
        conn = await self.open(host, port)
        try:
            status, hdrs = await self._exchange(conn, method, path, headers, body)
        except UpstreamError:
            if not conn.reused or not isinstance(body, (bytes, bytearray)):
                raise
            # A pooled connection the peer closed meanwhile: retry once, fresh.
            conn = await self.open(host, port, fresh=True)
            status, hdrs = await self._exchange(conn, method, path, headers, body)
        except BaseException:
            await conn.aclose()
            raise
        return conn, status, hdrs

    async def request(
        self,
        method: str,
        host: str,
        port: int,
        path: str,
        headers: HeaderArg = None,
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> ClientResponse:
        """Send a request and read the whole response body."""
        with trio.fail_after(timeout) if timeout else nullcontext():
            conn, status, hdrs = await self._start(method, host, port, path, headers, body)
            try:
                data = await conn.read_body(limit)
            except BaseException:
                await conn.aclose()
                raise
            await conn.release()
        return ClientResponse(status, hdrs, data)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        host: str,
        port: int,
        path: str,
        headers: HeaderArg = None,
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamResponse]:
        """Send a request; yield the response with its body unread. Leaving
        the block before the body's end closes the connection."""
        with trio.fail_after(timeout) if timeout else nullcontext():
            conn, status, hdrs = await self._start(method, host, port, path, headers, body)
        try:
            yield StreamResponse(conn, status, hdrs)
        except BaseException:
            await conn.aclose()
            raise
        await conn.release()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                await conn.aclose()
        self._idle.clear()
