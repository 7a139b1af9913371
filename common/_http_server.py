"""The HTTP/1.1 server: httptools (llhttp) on any trio stream.

Chosen over an ASGI server for CPU per request (DESIGN.md: a minimal h11 loop
served ~4x the requests/s of hypercorn here; llhttp then cut the parser's
share again, docs/DECISIONS.md). The wire format is ``_http_wire``. Contract:

- One task per connection; requests on a connection are served in order
  (keep-alive; pipelined requests wait their turn). A handler gets a
  ``Request`` whose body it may stream. HTTP/1.0 clients get one request per
  connection, as h11 gave them.
- Malformed HTTP gets 400, headers over ``max_header_bytes`` (or one line
  over ``max_header_line``) 431, an exception escaping the handler 500
  (logged); ``HTTPError`` becomes its status with its message as a
  plain-text body.
- ``Expect: 100-continue``: ``100 Continue`` goes out once, when the handler
  starts reading the body and none of it has arrived; a handler that answers
  without reading never asks for it.
- A client that hangs up mid-body (or breaks the framing) makes the body
  read raise ``ClientDisconnect`` (the handler decides what to keep:
  nothing, invariant 5); one that stalls longer than ``body_timeout`` raises
  ``BodyTimeout``.
- A response body that raises mid-stream, or gives fewer bytes than its
  Content-Length, aborts the connection, so the client sees a truncated
  response rather than a clean end (invariant 3: a corrupt replica is never
  served as if whole). Its ``aclose`` is always called.
- A streamed body that has ``relay_to`` (``RelayBody``: a peer's response
  passed on) and a Content-Length is handed the stream and the head, so it
  can move the bytes kernel-side; the same abort rules hold.
- ``Request.pump_body(sink)``: on a real socket, when the body has a
  Content-Length (the bytes the parser already has go first) or none of a
  chunked body reached the parser yet (the usual case after ``Expect:
  100-continue``), a worker thread of this process's pump pool reads the
  body from the socket and feeds ``sink`` (``_bodypump``; at most
  ``PUMP_THREADS`` bodies at once, the rest wait their turn); the parser is
  then replaced and takes up any bytes read past the body. Otherwise the
  body is read here and fed to ``sink`` in the pool in batches. Cancelling
  the handler shuts the socket down for reading, which ends the pump at once.
- If a handler answers without reading the whole request body, the
  connection is closed after the response rather than drained.
- A handler's response headers with CR, LF or NUL in them are logged and the
  connection closed without an answer.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate

import trio

from ._bodypump import Stats as PumpStats
from ._bodypump import pump
from ._chunked import ChunkedDecoder, LengthDecoder
from ._http_message import (
    REASONS,
    BodySink,
    BodyTimeout,
    ClientDisconnect,
    HTTPError,
    Request,
    Response,
    pump_batches,
)
from ._http_wire import (
    END,
    End,
    HeaderError,
    RequestHead,
    RequestReader,
    WireError,
    decode_headers,
    frame_chunk,
    response_head,
)
from ._sockio import Receiver
from .threadpool import ThreadPool

Handler = Callable[[Request], Awaitable[Response]]

# Large receives: a 4 MiB body in 256 KiB reads is 16 trips through the
# parser and trio rather than 64 (the per-read overhead dominated large PUTs).
# A read returns what the socket holds, so small requests are unaffected.
MAX_RECV = 262144
# A streamed body's first chunk up to this size goes out with the head.
_COALESCE = 65536
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_log = logging.getLogger("ringstack.http")
PUMP_THREADS = 64  # request bodies read in worker threads at once, per process
_pumps: tuple[int, ThreadPool] | None = None


def _pump_pool() -> ThreadPool:
    """This process's pump pool (made after a fork, not inherited)."""
    global _pumps
    pid = os.getpid()
    if _pumps is None or _pumps[0] != pid:
        _pumps = (pid, ThreadPool(PUMP_THREADS, "body-pump"))
    return _pumps[1]


def _sink_then_pump(first: list[bytes], fd: int, decoder: LengthDecoder | ChunkedDecoder, sink: BodySink,
                    timeout: float) -> bytes:
    """(pump thread) The body bytes the parser already had, then the rest."""
    for piece in first:
        sink(memoryview(piece))
    return pump(fd, decoder, sink, timeout)


class _DateCache:
    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True)
        return self._value


_DATE = _DateCache()


async def _aclose(body: object) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True):
            await aclose()


class _Connection:
    """One server-side connection: the request reader and its stream."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Handler,
        *,
        max_header_bytes: int,
        max_header_line: int = 16384,
        body_timeout: float,
        idle_timeout: float,
        server_name: str,
    ) -> None:
        self.stream = stream
        self.handler = handler
        self.reader = RequestReader(max_header_bytes, max_header_line)
        self.max_header_bytes = max_header_bytes
        self._rx = Receiver(stream, MAX_RECV)
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self.server_name = server_name
        self.client: tuple[str, int] = ("", 0)
        self._request: Request | None = None  # the one being served (its trailers)
        self._body_done = True  # the current request's body was read to its end
        self._expect = False  # its client waits for 100 Continue
        self._http11 = True
        sock = getattr(stream, "socket", None)
        if sock is not None:
            try:
                peer = sock.getpeername()
                self.client = (str(peer[0]), int(peer[1]))
            except OSError:
                pass

    async def _fill(self, timeout: float) -> bool:
        """Read and parse what the client sent; False at end of file."""
        data = await self._rx.receive(timeout)
        if not data:
            return False
        self.reader.feed(data)
        return True

    async def _receive_body(self) -> bytes:
        """The next body chunk, b"" at the end (the ``Request`` body source)."""
        if self._body_done:
            return b""
        events = self.reader.events
        if not events:
            try:
                if self._expect:
                    self._expect = False
                    await self.stream.send_all(_CONTINUE)
                while not events:
                    if self.reader.closed or not await self._fill(self.body_timeout):
                        raise ClientDisconnect("Client disconnected before sending the whole body")
            except trio.TooSlowError as exc:
                raise BodyTimeout("Timed out reading the request body") from exc
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise ClientDisconnect("Client disconnected before sending the whole body") from exc
        event = events.popleft()
        if type(event) is bytes:
            self._expect = False
            return event
        if type(event) is End:
            self._body_done = True
            self._expect = False
            if event.trailers and self._request is not None:
                self._request.trailers = decode_headers(event.trailers)
            return b""
        # A protocol error mid-body (or a head where the body should be).
        raise ClientDisconnect("Client disconnected before sending the whole body")

    async def _pump_body(self, sink: BodySink) -> None:
        """``Request.pump_body`` for the request being served (module contract)."""
        if self._body_done:
            return
        reader = self.reader
        request = self._request
        fd = self._rx.fd
        assert request is not None
        events = reader.events
        first: list[bytes] = []
        decoder: LengthDecoder | ChunkedDecoder | None
        if fd < 0 or reader.closed:
            decoder = None
        elif request.chunked:
            # llhttp may hold part of a chunk-size line: only a body none of
            # which reached it can be read without it.
            untouched = reader.body_untouched and not events
            decoder = ChunkedDecoder(max_trailer=self.max_header_bytes) if untouched else None
        elif all(type(e) is bytes for e in events):
            # With a length, llhttp keeps no framing state: every body byte
            # it was fed is in ``events`` (most clients send the body's start
            # with the head). Those go first, the pump reads the rest.
            first = list(events)  # type: ignore[arg-type]
            events.clear()
            if first:
                self._expect = False
            decoder = LengthDecoder((request.content_length or 0) - sum(len(b) for b in first))
        else:
            decoder = None  # the whole body (and its end) is parsed already
        if decoder is None:
            await pump_batches(self._receive_body, sink, _pump_pool().run)
            return
        sock = self.stream.socket  # type: ignore[attr-defined]

        def hurry() -> None:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

        try:
            if self._expect:
                self._expect = False
                await self.stream.send_all(_CONTINUE)
            PumpStats.bodies += 1
            rest = await _pump_pool().run(_sink_then_pump, first, fd, decoder, sink, self.body_timeout,
                                          on_cancel=hurry)
        except BaseException as exc:
            reader.closed = True  # the body was not read to its end: nothing after it is parsed
            if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
                raise ClientDisconnect("Client disconnected before sending the whole body") from exc
            raise  # the pump's ClientDisconnect or BodyTimeout, or the sink's own error
        self._body_done = True
        if decoder.trailers:
            request.trailers = decode_headers(decoder.trailers)
        reader.bypass_body(rest)

    async def serve(self) -> None:
        reader = self.reader
        events = reader.events
        try:
            while True:
                while not events:
                    if reader.closed:
                        return
                    try:
                        if not await self._fill(self.idle_timeout):
                            if reader.mid_message:
                                await self._send_error(WireError("peer unexpectedly closed connection"))
                            return
                    except trio.TooSlowError:
                        return
                event = events.popleft()
                if type(event) is RequestHead:
                    if not await self._handle(event):
                        return
                elif isinstance(event, WireError):
                    await self._send_error(event)
                    return
                else:
                    return  # body bytes with no request: cannot happen
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await self.stream.aclose()

    async def _send_error(self, error: WireError) -> None:
        status = error.status
        message = "Request header too large" if status == 431 else f"Bad request: {error.message}"
        resp = Response.text(status, message)
        try:
            await self._send_response(resp, head_only=False, close=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def _handle(self, head: RequestHead) -> bool:
        method = head.method
        self._body_done = False
        self._expect = head.expect_continue
        self._http11 = head.http11
        request = Request(
            method,
            head.target,
            head.headers,
            self._receive_body,
            client=self.client,
            content_length=head.content_length,
            chunked=head.chunked,
            pump=self._pump_body,
        )
        self._request = request
        try:
            response = await self.handler(request)
        except HTTPError as exc:
            response = Response.text(exc.status, exc.message)
        except Exception:
            _log.exception("unhandled error serving %s %r", method, head.target)
            response = Response.text(500, "An error occurred while processing this request.")
        self._expect = False  # answering without reading: no 100 Continue any more
        if not self._body_done:
            events = self.reader.events
            if events and events[0] is END:
                # A body-less request whose end is already here: keep-alive.
                events.popleft()
                self._body_done = True
            # Otherwise the handler did not read the whole body: answer,
            # then close rather than drain (the body may be huge or the
            # client gone).
        close = not head.keep_alive or not self._body_done
        return await self._send_response(response, head_only=method == "HEAD", close=close)

    async def _send_response(self, response: Response, *, head_only: bool, close: bool) -> bool:
        """Send ``response``; True when the connection may serve another request."""
        headers = response.headers
        body = response.body
        status = response.status
        no_body = head_only or status in (204, 304) or status < 200
        whole = isinstance(body, (bytes, bytearray))
        length = -1  # a streamed body's promised length; -1: none
        chunked = False
        try:
            if whole:
                if "transfer-encoding" in headers:
                    headers.pop("transfer-encoding")  # the framing is ours to choose
                if (not no_body or (head_only and "content-length" not in headers)) and status not in (204, 304):
                    headers.set("content-length", str(len(body)))  # type: ignore[arg-type]
            elif status not in (204, 304) and status >= 200:
                cl = headers.get("content-length")
                if cl is not None:
                    length = int(cl)
                elif self._http11:
                    headers.set("transfer-encoding", "chunked")
                    chunked = not head_only
                elif not head_only:
                    close = True  # HTTP/1.0: the body ends when the connection does
            conn = headers.get("connection")
            if conn is not None and "close" in conn.lower():
                close = True
            elif close:
                headers.set("connection", "close")
            head = response_head(
                status, response.reason or REASONS.get(status, ""), headers, _DATE.get(),
                None if "server" in headers else self.server_name,
            )
        except (HeaderError, ValueError):
            _log.exception("bad response headers")
            if not whole:
                await _aclose(body)
            return False
        if no_body:
            if not whole:
                await _aclose(body)
            await self.stream.send_all(head)
        elif whole:
            if len(body) <= _COALESCE:  # type: ignore[arg-type]
                await self.stream.send_all(head + body)  # type: ignore[operator]
            else:
                await self.stream.send_all(head)
                await self.stream.send_all(body)  # type: ignore[arg-type]
        else:
            if not await self._send_stream(body, head, length, chunked):  # type: ignore[arg-type]
                return False
        return not close and self._body_done

    async def _send_stream(self, body: object, head: bytes, length: int, chunked: bool) -> bool:
        """Stream an async-iterable body; False when the connection must be
        aborted (the body raised, or gave more or fewer bytes than promised)."""
        stream = self.stream
        sent = 0
        pending: bytes | None = head  # the head goes out with the first chunk
        relay = getattr(body, "relay_to", None)  # a body passed on from a peer (client.RelayBody)
        try:
            if relay is not None and length >= 0 and not chunked:
                pending = None
                await relay(stream, head, length)
                return True
            async for data in body:  # type: ignore[attr-defined]
                if not data:
                    continue
                sent += len(data)
                if length >= 0 and sent > length:
                    raise ValueError(f"body longer than its Content-Length {length}")
                if chunked:
                    data = frame_chunk(data)
                if pending is not None:
                    if len(data) <= _COALESCE:
                        data = pending + data
                    else:
                        await stream.send_all(pending)
                    pending = None
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        except Exception as exc:  # abort: the client must not see a clean end
            _log.warning("response body aborted: %r", exc)
            if pending is not None:
                # Nothing went out yet: the head alone, then the abort.
                try:
                    await stream.send_all(pending)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            return False
        finally:
            await _aclose(body)
        if length >= 0 and sent != length:
            _log.warning("response body aborted: %d of %d bytes", sent, length)
            if pending is not None:
                await stream.send_all(pending)
            return False
        tail = b"0\r\n\r\n" if chunked else b""
        if pending is not None:
            tail = pending + tail
        if tail:
            await stream.send_all(tail)
        return True


async def serve_stream(
    stream: trio.abc.Stream,
    handler: Handler,
    *,
    max_header_bytes: int = 65536,
    body_timeout: float = 60.0,
    idle_timeout: float = 75.0,
    server_name: str = "ringstack",
) -> None:
    """Serve HTTP on one already-connected stream (any transport)."""
    await _Connection(
        stream,
        handler,
        max_header_bytes=max_header_bytes,
        body_timeout=body_timeout,
        idle_timeout=idle_timeout,
        server_name=server_name,
    ).serve()


async def serve_http(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
    server_name: str = "ringstack",
    max_header_bytes: int = 65536,
    body_timeout: float = 60.0,
    idle_timeout: float = 75.0,
) -> None:
    """Listen (or use ``listeners``), report the bound port through
    ``task_status.started(port)``, and serve until cancelled."""
    if listeners is None:
        listeners = await trio.open_tcp_listeners(port, host=host)
    bound = port
    sock = getattr(listeners[0], "socket", None)
    if sock is not None:
        bound = sock.getsockname()[1]

    async def on_connection(stream: trio.abc.Stream) -> None:
        await serve_stream(
            stream,
            handler,
            max_header_bytes=max_header_bytes,
            body_timeout=body_timeout,
            idle_timeout=idle_timeout,
            server_name=server_name,
        )

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, on_connection, list(listeners))
        task_status.started(bound)
