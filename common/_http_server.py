"""The HTTP/1.1 server: h11 on any trio stream.

Chosen over an ASGI server for CPU per request (DESIGN.md: a minimal h11 loop
served ~4x the requests/s of hypercorn here). Contract:

- One task per connection; requests on a connection are served in order
  (keep-alive). A handler gets a ``Request`` whose body it may stream.
- Malformed HTTP gets 400, headers over ``max_header_bytes`` 431, an
  exception escaping the handler 500 (logged); ``HTTPError`` becomes its
  status with its message as a plain-text body.
- A client that hangs up mid-body makes the body read raise
  ``ClientDisconnect`` (the handler decides what to keep: nothing, invariant 5);
  one that stalls longer than ``body_timeout`` raises ``BodyTimeout``.
- A response body that raises mid-stream aborts the connection, so the client
  sees a truncated response rather than a clean end (invariant 3: a corrupt
  replica is never served as if whole).
- If a handler answers without reading the whole request body, the
  connection is closed after the response rather than drained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate

import h11
import trio

from ._http_message import (
    REASONS,
    BodyTimeout,
    ClientDisconnect,
    Headers,
    HTTPError,
    Request,
    Response,
)

Handler = Callable[[Request], Awaitable[Response]]

# Large receives: a 4 MiB body in 256 KiB reads is 16 trips through h11 and
# trio rather than 64 (the per-read overhead dominated large PUTs). A read
# returns what the socket holds, so small requests are unaffected.
MAX_RECV = 262144
_log = logging.getLogger("ringstack.http")


class _DateCache:
    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


_DATE = _DateCache()


def _encode_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    # Title-cased names on the wire, as Swift's swob sends them (clients that
    # compare header names exactly, like Swift's functional tests, see
    # ``X-Object-Meta-Color``); HTTP itself is case-insensitive.
    return [(k.title().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]


class _Connection:
    """One server-side connection: the h11 state machine and its stream."""

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
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_header_bytes = max_header_bytes
        self.max_header_line = min(max_header_line, max_header_bytes)
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self.server_header = server_name.encode()
        self.client: tuple[str, int] = ("", 0)
        self._line_done = False  # the current request line has been seen whole
        self._request: Request | None = None  # the one being served (its trailers)
        sock = getattr(stream, "socket", None)
        if sock is not None:
            try:
                peer = sock.getpeername()
                self.client = (str(peer[0]), int(peer[1]))
            except OSError:
                pass

    async def _next_event(self, timeout: float) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if self.conn.they_are_waiting_for_100_continue:
                    await self._send(h11.InformationalResponse(status_code=100, headers=[]))
                with trio.fail_after(timeout):
                    data = await self.stream.receive_some(MAX_RECV)
                if not self._line_done and self.conn.their_state is h11.IDLE:
                    data = self._quote_request_line(data)
                self.conn.receive_data(data)
                continue
            return event

    def _quote_request_line(self, data: bytes) -> bytes:
        """Percent-encode raw non-ASCII bytes of the request line (h11 refuses
        them; Swift's clients may send raw UTF-8 paths). ``Request.path`` is
        percent-decoded, so handlers see the same name either way."""
        end = data.find(b"\r\n")
        head, tail = (data, b"") if end < 0 else (data[:end], data[end:])
        if end >= 0:
            self._line_done = True
        if head.isascii():
            return data
        return b"".join(b"%%%02X" % c if c >= 0x80 else bytes((c,)) for c in head) + tail

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def _receive_body(self) -> bytes:
        """The next body chunk, b"" at the end (the ``Request`` body source)."""
        if self.conn.their_state is not h11.SEND_BODY:
            return b""
        try:
            event = await self._next_event(self.body_timeout)
        except trio.TooSlowError as exc:
            raise BodyTimeout("Timed out reading the request body") from exc
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientDisconnect("Client disconnected before sending the whole body") from exc
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            if event.headers and self._request is not None:
                self._request.trailers = Headers.from_raw(event.headers)
            return b""
        raise ClientDisconnect("Client disconnected before sending the whole body")

    async def serve(self) -> None:
        try:
            while True:
                try:
                    event = await self._next_event(self.idle_timeout)
                except trio.TooSlowError:
                    return
                except h11.RemoteProtocolError as exc:
                    await self._send_protocol_error(exc)
                    return
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed or garbage between requests
                keep_going = await self._handle(event)
                if not keep_going:
                    return
                try:
                    self.conn.start_next_cycle()
                    self._line_done = False
                except h11.LocalProtocolError:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await self.stream.aclose()

    async def _send_protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint or 400
        message = "Request header too large" if status == 431 else f"Bad request: {exc}"
        if str(exc) == "bad Content-Length":  # h11's words; say why, as Placement/webob do
            message = "Bad request: content-length header must be an integer"
        resp = Response.text(status, message)
        resp.headers.set("connection", "close")
        try:
            await self._send_response(resp, head_only=False)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _handle(self, event: h11.Request) -> bool:
        total = len(event.target)
        for name, value in event.headers:
            line = len(name) + len(value) + 4
            total += line
            if line > self.max_header_line or total > self.max_header_bytes:
                resp = Response.text(431, "Request header too large")
                resp.headers.set("connection", "close")
                await self._send_response(resp, head_only=False)
                return False
        headers = Headers.from_raw(event.headers)
        method = event.method.decode("ascii")
        cl_value = headers.get("content-length")
        content_length = int(cl_value) if cl_value is not None and cl_value.isdigit() else None
        chunked = "chunked" in (headers.get("transfer-encoding") or "").lower()
        if content_length is None and not chunked:
            content_length = 0
        request = Request(
            method,
            bytes(event.target),
            headers,
            self._receive_body,
            client=self.client,
            content_length=content_length,
            chunked=chunked,
        )
        self._request = request
        try:
            response = await self.handler(request)
        except HTTPError as exc:
            response = Response.text(exc.status, exc.message)
        except Exception:
            _log.exception("unhandled error serving %s %r", method, event.target)
            response = Response.text(500, "An error occurred while processing this request.")
        if self.conn.their_state is h11.SEND_BODY and not self._body_already_ended():
            # The handler did not read the whole body: answer, then close
            # rather than drain (the body may be huge or the client gone).
            response.headers.set("connection", "close")
        return await self._send_response(response, head_only=method == "HEAD")

    def _body_already_ended(self) -> bool:
        """A body-less request (no or zero Content-Length) whose end h11 has
        not reported yet: take the EndOfMessage so keep-alive survives."""
        try:
            event = self.conn.next_event()
        except h11.RemoteProtocolError:
            return False
        return isinstance(event, h11.EndOfMessage)

    async def _send_response(self, response: Response, *, head_only: bool) -> bool:
        headers = response.headers
        body = response.body
        status = response.status
        no_body = head_only or status in (204, 304) or status < 200
        if (
            isinstance(body, (bytes, bytearray))
            and (not no_body or (head_only and "content-length" not in headers))
            and status not in (204, 304)
        ):
            headers.set("content-length", str(len(body)))
        raw = _encode_headers(headers)
        raw.append((b"Date", _DATE.get()))
        if "server" not in headers:
            raw.append((b"Server", self.server_header))
        reason = (response.reason or REASONS.get(status, "")).encode()
        try:
            head = self.conn.send(h11.Response(status_code=status, headers=raw, reason=reason))
        except h11.LocalProtocolError:
            _log.exception("bad response headers")
            return False
        assert head is not None
        if no_body:
            tail = self.conn.send(h11.EndOfMessage()) or b""
            await self.stream.send_all(head + tail)
        elif isinstance(body, (bytes, bytearray)):
            data = self.conn.send(h11.Data(data=body)) or b""
            tail = self.conn.send(h11.EndOfMessage()) or b""
            await self.stream.send_all(head + data + tail)
        else:
            await self.stream.send_all(head)
            try:
                async for chunk in body:
                    if chunk:
                        await self._send(h11.Data(data=chunk))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
            except Exception as exc:  # abort: the client must not see a clean end
                _log.warning("response body aborted: %r", exc)
                return False
            finally:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    with trio.CancelScope(shield=True):
                        await aclose()
            try:
                await self._send(h11.EndOfMessage())
            except h11.LocalProtocolError:
                # Content-Length promised more bytes than the body gave.
                return False
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE


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
