"""The shared HTTP layer over real loopback sockets: keep-alive, streaming
both ways, chunked bodies, client hang-ups, aborted responses, limits."""

from __future__ import annotations

import hashlib
import socket
from functools import partial

import pytest
import trio

from common.http import (
    ClientDisconnect,
    HTTPClient,
    Request,
    Response,
    UpstreamError,
    is_valid_utf8,
    parse_query,
    serve_http,
)

seen: list[object] = []


async def app(request: Request) -> Response:
    if request.path == "/echo":
        body = await request.read()
        return Response(200, {"x-method": request.method, "x-q": request.query.get("a", "-")}, body)
    if request.path == "/md5":
        h = hashlib.md5()
        n = 0
        try:
            async for chunk in request.iter_body():
                h.update(chunk)
                n += len(chunk)
        except ClientDisconnect:
            seen.append("disconnect")
            raise
        return Response(201, {"etag": h.hexdigest(), "x-bytes": str(n)})
    if request.path == "/trailers":
        before = request.trailers.items()
        body = await request.read()
        got = ";".join(f"{k}={v}" for k, v in request.trailers.items())
        return Response(200, {"x-before": str(len(before)), "x-trailers": got}, body)
    if request.path == "/stream":
        async def gen():
            for _ in range(5):
                yield b"x" * 1000
        return Response(200, {"content-length": "5000"}, gen())
    if request.path == "/abort":
        async def bad():
            yield b"a" * 100
            raise RuntimeError("corrupt")
        return Response(200, {"content-length": "200"}, bad())
    if request.path == "/boom":
        raise ValueError("boom")
    return Response.text(404)


@pytest.fixture
async def server(nursery):
    port = await nursery.start(partial(serve_http, app, host="127.0.0.1", port=0))
    return port


async def test_round_trip_and_keepalive(server):
    client = HTTPClient()
    for i in range(3):
        r = await client.request("PUT", "127.0.0.1", server, "/echo?a=%C3%A9", body=b"hello %d" % i)
        assert r.status == 200 and r.body == b"hello %d" % i
        assert r.headers["x-q"] == "é"
    # the same pooled connection served all three
    assert len(client._idle[("127.0.0.1", server)]) == 1
    r = await client.request("HEAD", "127.0.0.1", server, "/echo")
    assert r.status == 200 and r.body == b""
    r = await client.request("GET", "127.0.0.1", server, "/nothing")
    assert r.status == 404 and b"could not be found" in r.body
    await client.aclose()


async def test_streaming_chunked_upload_and_download(server):
    client = HTTPClient()
    payload = [bytes([i]) * 70000 for i in range(10)]

    async def body():
        for p in payload:
            yield p

    r = await client.request("PUT", "127.0.0.1", server, "/md5", body=body())
    assert r.status == 201
    assert r.headers["etag"] == hashlib.md5(b"".join(payload)).hexdigest()
    async with client.stream("GET", "127.0.0.1", server, "/stream") as resp:
        got = b"".join([c async for c in resp.iter_body()])
    assert got == b"x" * 5000


async def test_aborted_response_is_not_a_clean_end(server):
    client = HTTPClient()
    with pytest.raises(UpstreamError):
        async with client.stream("GET", "127.0.0.1", server, "/abort") as resp:
            assert resp.status == 200
            await resp.read()


async def test_handler_exception_is_500_and_server_survives(server):
    client = HTTPClient()
    r = await client.request("GET", "127.0.0.1", server, "/boom")
    assert r.status == 500
    r = await client.request("GET", "127.0.0.1", server, "/echo")
    assert r.status == 200


async def _raw(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(data)
    if half_close:
        await stream.aclose()
        return b""
    out = b""
    with trio.move_on_after(5):
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            out += chunk
    await stream.aclose()
    return out


async def test_client_hangup_mid_body(server):
    seen.clear()
    await _raw(server, b"PUT /md5 HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n" + b"a" * 10, half_close=True)
    with trio.fail_after(5):
        while "disconnect" not in seen:
            await trio.sleep(0.01)


async def test_malformed_and_huge_headers(server):
    out = await _raw(server, b"GARBAGE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    out = await _raw(server, b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431")


async def test_expect_100_continue(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /md5 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n")
    first = await stream.receive_some(1000)
    assert first.startswith(b"HTTP/1.1 100")
    await stream.send_all(b"abc")
    rest = b""
    while b"\r\n\r\n" not in rest:
        rest += await stream.receive_some(1000)
    assert rest.startswith(b"HTTP/1.1 201")
    await stream.aclose()


async def test_chunked_trailers_reach_the_handler_after_the_body(server):
    client = HTTPClient()
    for trailers in ([("X-Backend-Obj-Etag", "abc"), ("X-Backend-Obj-Root", "def")], None):
        conn = await client.open("127.0.0.1", server)
        await conn.send_request("PUT", "/trailers", [("transfer-encoding", "chunked")])
        await conn.send_data(b"hello ")
        await conn.send_data(b"world")
        await conn.end_body(trailers)
        status, headers = await conn.read_response()
        body = await conn.read_body()
        await conn.release()
        assert status == 200 and body == b"hello world" and headers["x-before"] == "0"
        want = "x-backend-obj-etag=abc;x-backend-obj-root=def" if trailers else ""
        assert headers.get("x-trailers", "") == want
    # raw: a trailer section on the wire, then the connection stays usable
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /trailers HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                          b"3\r\nabc\r\n0\r\nX-One: 1\r\n\r\n")
    got = b""
    while b"abc" not in got:
        got += await stream.receive_some(1000)
    assert got.startswith(b"HTTP/1.1 200") and b"X-Trailers: x-one=1" in got
    await stream.aclose()
    await client.aclose()


async def test_connect_refused_is_upstream_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(UpstreamError):
        await HTTPClient().request("GET", "127.0.0.1", port, "/")


def test_query_and_utf8_helpers():
    assert parse_query("a=1&b&c=%2F&a=2") == {"a": "2", "b": "", "c": "/"}
    assert is_valid_utf8("héllo")
    assert not is_valid_utf8("a\x00b")
    assert not is_valid_utf8(b"\xff".decode("utf-8", "surrogateescape"))


async def test_subrequest_make():
    req = Request.make("put", "/v1/a/c/ö", {"X-Foo": "1"}, body=b"data")
    assert req.method == "PUT" and req.path == "/v1/a/c/ö"
    assert req.raw_path == b"/v1/a/c/%C3%B6"
    assert await req.read() == b"data"
    assert req.headers["content-length"] == "4"
