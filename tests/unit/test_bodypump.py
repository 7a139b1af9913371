"""Request bodies read in a worker thread straight from the socket
(``Request.pump_body``; common/_bodypump.py, common/_http_server.py), over
real loopback sockets: the bytes, the trailers, the connection afterwards,
and every way a body can go wrong, on the pumped path and on the fallback."""

from __future__ import annotations

import errno
import hashlib
import os
from functools import partial

import pytest
import trio

from common.http import BodyTimeout, ClientDisconnect, PumpStats, Request, Response, serve_http

seen: list[str] = []


class Lender:
    """A sink that lends a small buffer of its own, as a storage node lends
    its direct-I/O buffer; both ways in feed one MD5, so order counts."""

    def __init__(self) -> None:
        self.buf = bytearray(5000)
        self.fill = 0
        self.md5 = hashlib.md5()
        self.lent = self.copied = 0

    def __call__(self, view: memoryview) -> None:
        self.copied += len(view)
        self.md5.update(view)

    def space(self) -> memoryview:
        return memoryview(self.buf)[self.fill:]

    def filled(self, n: int) -> None:
        self.md5.update(memoryview(self.buf)[self.fill:self.fill + n])
        self.lent += n
        self.fill = (self.fill + n) % len(self.buf)


async def app(request: Request) -> Response:
    if request.path == "/echo":
        return Response(200, {}, await request.read())
    lender = Lender() if request.path == "/lend" else None
    h = hashlib.md5()
    n = 0

    def sink(view: memoryview) -> None:
        nonlocal n
        n += len(view)
        if request.path == "/full" and n == 10_000:  # the last byte (unread bytes would reset the answer)
            raise OSError(errno.ENOSPC, "No space left on device")
        h.update(view)

    try:
        await request.pump_body(lender or sink)
    except ClientDisconnect:
        seen.append("disconnect")
        raise
    except BodyTimeout:
        seen.append("timeout")
        raise
    if lender is not None:
        return Response(201, {"x-md5": lender.md5.hexdigest(), "x-lent": str(lender.lent),
                              "x-copied": str(lender.copied), "x-trailers": str(len(request.trailers))})
    got = ";".join(f"{k}={v}" for k, v in request.trailers.items())
    return Response(201, {"x-md5": h.hexdigest(), "x-bytes": str(n), "x-trailers": got})


@pytest.fixture
async def server(nursery):
    return await nursery.start(partial(serve_http, app, host="127.0.0.1", port=0, body_timeout=0.5))


def chunked(body: bytes, step: int, trailers: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                    for i in range(0, len(body), step)) + b"0\r\n" + trailers + b"\r\n"


async def answers(stream: trio.SocketStream, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` responses with Content-Length bodies."""
    buf = b""
    out = []
    with trio.fail_after(5):
        while len(out) < count:
            while b"\r\n\r\n" not in buf:
                got = await stream.receive_some(65536)
                if not got:
                    return out
                buf += got
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            status = int(lines[0].split()[1])
            if status == 100:
                continue
            size = int(headers.get("content-length", "0"))
            while len(buf) < size:
                buf += await stream.receive_some(65536)
            out.append((status, headers, buf[:size]))
            buf = buf[size:]
    return out


async def expect_continue(stream: trio.SocketStream) -> None:
    with trio.fail_after(5):
        assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")


async def test_a_chunked_body_is_pumped_with_its_trailers_and_the_connection_serves_on(server):
    body = os.urandom(3 << 20)
    before = PumpStats.bodies
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /pump HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          b"Expect: 100-continue\r\n\r\n")
    await expect_continue(stream)
    framed = chunked(body, 70_001, b"X-Backend-Obj-Etag: abc\r\nX-Two:  2 \r\n")
    for i in range(0, len(framed), 100_003):  # pieces that cut the framing anywhere
        await stream.send_all(framed[i:i + 100_003])
    # the next request rides on the same segment as the end of this body
    await stream.send_all(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    (s1, h1, _), (s2, _, b2) = await answers(stream, 2)
    assert (s1, h1["x-bytes"], h1["x-md5"]) == (201, str(len(body)), hashlib.md5(body).hexdigest())
    assert h1["x-trailers"] == "x-backend-obj-etag=abc;x-two=2"
    assert (s2, b2) == (200, b"hello")
    assert PumpStats.bodies == before + 1
    await stream.aclose()


@pytest.mark.parametrize("with_head", [0, 70_000])
async def test_a_length_framed_body_is_read_exactly_and_what_follows_is_the_next_request(server, with_head):
    """The head alone (as a client waiting for 100 Continue sends it), or with
    the body's start in the same segment: pumped either way, from where the
    parser stopped, and the parser replaced cleanly for the next request."""
    body = os.urandom(2 << 20)
    before = PumpStats.bodies
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    for _ in range(2):
        await stream.send_all(b"PUT /pump HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                              + body[:with_head])
        await trio.sleep(0.1)
        await stream.send_all(body[with_head:] + b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        (s1, h1, _), (s2, _, _) = await answers(stream, 2)
        assert (s1, h1["x-bytes"], h1["x-md5"]) == (201, str(len(body)), hashlib.md5(body).hexdigest())
        assert s2 == 200
    assert PumpStats.bodies == before + 2
    await stream.aclose()


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_lending_sink_gets_the_body_read_straight_into_its_buffer(server, framing):
    """Body bytes with no framing among them land in the sink's own buffer;
    framing is read apart (the few body bytes read with it are copied): the
    same bytes, in order, and a pipelined request after them."""
    body = os.urandom(1 << 20)
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    if framing == "length":
        await stream.send_all(b"PUT /lend HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        framed = body
    else:
        await stream.send_all(b"PUT /lend HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                              b"Expect: 100-continue\r\n\r\n")
        await expect_continue(stream)
        framed = chunked(body, 70_001, b"X-A: 1\r\n")
    await trio.sleep(0.05)  # the head alone: the body is pumped
    for i in range(0, len(framed), 100_003):
        await stream.send_all(framed[i:i + 100_003])
    await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    (s1, h1, _), (s2, _, _) = await answers(stream, 2)
    assert (s1, h1["x-md5"], s2) == (201, hashlib.md5(body).hexdigest(), 200)
    lent, copied = int(h1["x-lent"]), int(h1["x-copied"])
    assert lent + copied == len(body)
    if framing == "length":
        assert copied == 0
    else:
        assert h1["x-trailers"] == "1"
        assert copied <= 512 * (len(body) // 70_001 + 1)  # only what came with the framing
    await stream.aclose()


async def test_a_chunked_body_that_came_with_its_head_takes_the_fallback_with_the_same_result(server):
    body = os.urandom(300_000)
    before = PumpStats.bodies
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /pump HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + chunked(body, 4096, b"X-A: 1\r\n"))
    ((status, headers, _),) = await answers(stream, 1)
    assert (status, headers["x-md5"], headers["x-trailers"]) == (201, hashlib.md5(body).hexdigest(), "x-a=1")
    assert PumpStats.bodies == before
    await stream.aclose()


@pytest.mark.parametrize("path", ["/pump", "/lend"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_client_hanging_up_mid_body_is_a_disconnect(server, framing, path):
    seen.clear()
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    head = b"Content-Length: 1000000" if framing == "length" else b"Transfer-Encoding: chunked"
    await stream.send_all(b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + head + b"\r\nExpect: 100-continue\r\n\r\n")
    await expect_continue(stream)
    await stream.send_all(b"x" * 5000 if framing == "length" else b"100000\r\n" + b"x" * 5000)
    await stream.aclose()
    with trio.fail_after(5):
        while "disconnect" not in seen:
            await trio.sleep(0.01)


@pytest.mark.parametrize("path", ["/pump", "/lend"])
async def test_a_stalled_body_times_out_with_408(server, path):
    seen.clear()
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
    await expect_continue(stream)
    await stream.send_all(b"12345")
    ((status, _, _),) = await answers(stream, 1)
    assert status == 408 and seen == ["timeout"]
    await stream.aclose()


async def test_broken_framing_ends_the_connection(server):
    seen.clear()
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /pump HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          b"Expect: 100-continue\r\n\r\n")
    await expect_continue(stream)
    await stream.send_all(b"5\r\nhello\r\nzz\r\n")
    ((status, headers, _),) = await answers(stream, 1)
    assert status == 499 and headers.get("connection") == "close" and seen == ["disconnect"]
    with trio.fail_after(5):
        assert await stream.receive_some(100) == b""
    await stream.aclose()


async def test_a_sink_error_reaches_the_handler_unchanged_and_the_connection_closes(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /full HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n"
                          b"Expect: 100-continue\r\n\r\n")
    await expect_continue(stream)
    await stream.send_all(b"y" * 10_000)
    ((status, headers, _),) = await answers(stream, 1)
    assert status == 500 and headers.get("connection") == "close"
    await stream.aclose()


async def test_cancelling_the_server_ends_a_pump_waiting_for_bytes():
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_http, app, host="127.0.0.1", port=0, body_timeout=60))
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"PUT /pump HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        await expect_continue(stream)
        await stream.send_all(b"12345")
        await trio.sleep(0.2)  # the pump now waits for the other five bytes
        started = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - started < 2  # not the 60 s body timeout
    await stream.aclose()
