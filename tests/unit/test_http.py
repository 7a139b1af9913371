"""The shared HTTP layer over real loopback sockets: keep-alive, streaming
both ways, chunked bodies, client hang-ups, aborted responses, limits."""

from __future__ import annotations

import hashlib
import re
import socket
from functools import partial

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from common._http_wire import frame_chunk
from common.http import (
    ClientDisconnect,
    HTTPClient,
    Request,
    Response,
    UpstreamError,
    frame_parts,
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
    if request.path == "/short":
        async def short():
            yield b"s" * 100
        return Response(200, {"content-length": "200"}, short())
    if request.path == "/noread":
        return Response(202, {"x-bytes": str(request.content_length)}, b"not read")
    if request.path == "/head":
        return Response(200, {"content-length": "1234", "x-method": request.method}, b"")
    if request.path == "/unframed":
        async def gen10():
            yield b"hello "
            yield b"world"
        return Response(200, {}, gen10())
    if request.path == "/evil":
        return Response(200, {"x-evil": "a\r\nx-injected: yes"}, b"evil")
    if request.path.startswith("/method"):
        return Response(200, {"x-method": request.method, "x-path": request.path.encode().hex()}, b"")
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


async def _read_until_closed(stream: trio.abc.Stream) -> bytes:
    out = b""
    with trio.move_on_after(5):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            out += chunk
    return out


async def test_pipelined_requests_are_answered_in_order(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(
        b"GET /echo?a=1 HTTP/1.1\r\nhost: x\r\n\r\n"
        b"PUT /echo?a=2 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
        b"PUT /trailers HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        b"GET /nothing HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    out = await _read_until_closed(stream)
    await stream.aclose()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
    assert statuses == [b"200", b"200", b"200", b"404"]
    assert out.index(b"X-Q: 1") < out.index(b"X-Q: 2") < out.index(b"X-Trailers: x-t=1")
    assert b"\r\n\r\nhello" in out and out.endswith(b"could not be found.</p></html>")


async def test_trailers_sent_in_small_pieces_reach_request_trailers(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    data = (b"PUT /trailers HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Backend-Obj-Etag: abc\r\nX-Second: d e\r\n\r\n")
    for i in range(0, len(data), 7):
        await stream.send_all(data[i : i + 7])
        await trio.sleep(0.001)
    got = b""
    while b"hello world" not in got:
        got += await stream.receive_some(1000)
    await stream.aclose()
    assert got.startswith(b"HTTP/1.1 200")
    assert b"X-Trailers: x-backend-obj-etag=abc;x-second=d e\r\n" in got
    assert b"X-Before: 0\r\n" in got


async def test_100_continue_only_when_the_body_is_read(server):
    # the handler answers without reading: no 100, the answer, then close
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /noread HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n")
    out = await _read_until_closed(stream)
    await stream.aclose()
    assert out.startswith(b"HTTP/1.1 202 ") and b"HTTP/1.1 100" not in out
    assert b"Connection: close\r\n" in out and out.endswith(b"not read")
    # the body came with the head: the client is not waiting, no 100 either
    stream = await trio.open_tcp_stream("127.0.0.1", server)
    await stream.send_all(b"PUT /md5 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\nabc")
    got = b""
    while b"\r\n\r\n" not in got:
        got += await stream.receive_some(1000)
    assert got.startswith(b"HTTP/1.1 201 ") and hashlib.md5(b"abc").hexdigest().encode() in got
    # the same connection, now waiting: exactly one 100 before the 201
    await stream.send_all(b"PUT /md5 HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
    first = await stream.receive_some(1000)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    await stream.send_all(b"ab")
    await trio.sleep(0.05)
    await stream.send_all(b"cd")
    got = b""
    while b"\r\n\r\n" not in got:
        got += await stream.receive_some(1000)
    assert got.startswith(b"HTTP/1.1 201 ") and b"X-Bytes: 4" in got
    await stream.aclose()


async def _send_in_pieces(port: int, data: bytes, size: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        for i in range(0, len(data), size):
            await stream.send_all(data[i : i + size])
            await trio.sleep(0.001)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the server answered and closed before the end
    out = await _read_until_closed(stream)
    await stream.aclose()
    return out


async def test_431_for_a_long_line_and_for_a_big_block_in_small_pieces(server):
    # one line over max_header_line (16 KiB), well under the block limit
    out = await _raw(server, b"GET /echo HTTP/1.1\r\nhost: x\r\nx-long: " + b"a" * 20000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in out
    # one line that never ends, dripped: memory stays bounded
    out = await _send_in_pieces(server, b"GET /echo HTTP/1.1\r\nhost: x\r\nx-long: " + b"a" * 200_000, 4096)
    assert out.startswith(b"HTTP/1.1 431 ")
    # many small lines, over 64 KiB in all, in small pieces
    many = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 100) for i in range(1000))
    out = await _send_in_pieces(server, b"GET /echo HTTP/1.1\r\nhost: x\r\n" + many + b"\r\n", 1000)
    assert out.startswith(b"HTTP/1.1 431 ") and out.endswith(b"Request header too large")
    # just under the limits is served
    out = await _raw(server, b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-long: " + b"a" * 16000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ")


async def test_bad_requests_say_why(server):
    out = await _raw(server, b"PUT /echo HTTP/1.1\r\nhost: x\r\ncontent-length: hi mom\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and out.endswith(b"Bad request: content-length header must be an integer")
    out = await _raw(server, b"GET /echo HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"Host" in out
    out = await _raw(server, b"GET /echo HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs no Host; one request, then close
    assert out.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in out
    out = await _raw(server, b"PUT /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501 ")


async def test_backend_methods_and_raw_utf8_paths(server):
    for method in (b"REPLICATE", b"SUFFIXES", b"COPY", b"DELETE"):
        out = await _raw(server, method + b" /method/caf\xc3\xa9 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 "), out
        assert b"X-Method: " + method + b"\r\n" in out
        assert b"X-Path: " + "/method/café".encode().hex().encode() in out
    # a method split over two reads is still seen whole
    out = await _send_in_pieces(server, b"REPLICATE /method HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", 4)
    assert b"X-Method: REPLICATE\r\n" in out


async def test_head_with_content_length_then_another_request_on_the_pooled_connection(server):
    with trio.fail_after(10):
        await _head_then_more(server)


async def _head_then_more(server: int) -> None:
    client = HTTPClient()
    conn = await client.open("127.0.0.1", server)
    await conn.send_request("HEAD", "/head")
    await conn.end_body()
    status, headers = await conn.read_response()
    assert status == 200 and headers["content-length"] == "1234" and headers["x-method"] == "HEAD"
    assert await conn.read_body() == b""
    assert conn.reusable
    await conn.release()
    again = await client.open("127.0.0.1", server)
    assert again is conn and again.reused
    await again.release()
    r = await client.request("PUT", "127.0.0.1", server, "/echo", body=b"after head")
    assert r.status == 200 and r.body == b"after head"
    assert client._idle[("127.0.0.1", server)] == [conn]
    r = await client.request("HEAD", "127.0.0.1", server, "/head")
    assert r.status == 200 and r.body == b"" and r.headers["content-length"] == "1234"
    r = await client.request("GET", "127.0.0.1", server, "/stream")
    assert r.body == b"x" * 5000
    assert client._idle[("127.0.0.1", server)] == [conn]
    await client.aclose()


async def test_truncated_streamed_response_is_an_error(server):
    client = HTTPClient()
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", server, "/short", timeout=5)
    # the raw bytes: the promised length, fewer bytes, then the end of the connection
    out = await _raw(server, b"GET /short HTTP/1.1\r\nhost: x\r\n\r\n")
    assert b"Content-Length: 200\r\n" in out and out.endswith(b"\r\n\r\n" + b"s" * 100)
    await client.aclose()


async def test_unframed_body_is_chunked_for_http11_and_close_delimited_for_http10(server):
    out = await _raw(server, b"GET /unframed HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked\r\n" in out and out.endswith(b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")
    out = await _raw(server, b"GET /unframed HTTP/1.0\r\n\r\n")
    assert b"Transfer-Encoding" not in out and b"Content-Length" not in out
    assert b"Connection: close\r\n" in out and out.endswith(b"\r\n\r\nhello world")
    client = HTTPClient()
    r = await client.request("GET", "127.0.0.1", server, "/unframed")
    assert r.body == b"hello world"
    await client.aclose()


async def test_header_injection_is_refused(server):
    client = HTTPClient()
    for headers in ({"x-evil": "a\r\nx-injected: yes"}, {"x-evil": "a\nb"}, {"x-evil": "a\x00b"},
                    {"x-evil\r\nx-injected": "yes"}, {"bad name": "v"}):
        with pytest.raises(UpstreamError):
            await client.request("GET", "127.0.0.1", server, "/echo", headers=headers)
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", server, "/echo HTTP/1.1\r\nx-injected: yes\r\n\r\nGET /echo")
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", server, "/euro-\u20ac")  # never sent as "/euro-?"
    conn = await client.open("127.0.0.1", server)
    await conn.send_request("PUT", "/trailers", [("transfer-encoding", "chunked")])
    await conn.send_data(b"x")
    with pytest.raises(UpstreamError):
        await conn.end_body([("x-trailer", "a\r\n\r\nGET / HTTP/1.1")])
    assert conn.closed
    # a handler's bad header: logged, the connection closed with no answer
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", server, "/evil")
    out = await _raw(server, b"GET /evil HTTP/1.1\r\nhost: x\r\n\r\n")
    assert out == b""
    r = await client.request("GET", "127.0.0.1", server, "/echo")
    assert r.status == 200
    await client.aclose()


async def test_request_body_must_match_its_content_length(server):
    client = HTTPClient()
    conn = await client.open("127.0.0.1", server)
    await conn.send_request("PUT", "/md5", [("content-length", "3")])
    with pytest.raises(UpstreamError):
        await conn.send_data(b"abcd")
    assert conn.closed
    conn = await client.open("127.0.0.1", server)
    await conn.send_request("PUT", "/md5", [("content-length", "3")])
    await conn.send_data(b"ab")
    with pytest.raises(UpstreamError):
        await conn.end_body()
    assert conn.closed
    conn = await client.open("127.0.0.1", server)
    await conn.send_request("PUT", "/md5", [("content-length", "3")])
    await conn.send_data(b"ab")
    await conn.send_data(b"c")
    await conn.end_body()
    status, headers = await conn.read_response()
    await conn.read_body()
    assert status == 201 and headers["x-bytes"] == "3" and conn.reusable
    await conn.release()
    await client.aclose()


@pytest.fixture
async def raw_server(nursery):
    """A server that answers each connection with the next canned bytes, then closes."""
    answers: list[bytes] = []

    async def handle(stream: trio.SocketStream) -> None:
        got = b""
        while b"\r\n\r\n" not in got:
            data = await stream.receive_some(65536)
            if not data:
                return
            got += data
        await stream.send_all(answers.pop(0))
        await stream.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1], answers


async def test_client_framing_from_a_foreign_server(raw_server):
    port, answers = raw_server
    client = HTTPClient()
    answers.append(b"HTTP/1.1 200 OK\r\nX-A: b  \r\n\r\nbody until the end")
    r = await client.request("GET", "127.0.0.1", port, "/")
    assert r.body == b"body until the end" and r.headers["x-a"] == "b"
    assert not client._idle.get(("127.0.0.1", port))
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort")
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", port, "/")
    answers.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n")
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", port, "/")
    answers.append(b"NOT HTTP\r\n\r\n")
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", port, "/")
    answers.append(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 507 Insufficient Storage\r\nContent-Length: 4\r\n\r\nfull")
    conn = await client.open("127.0.0.1", port)
    await conn.send_request("PUT", "/", [("transfer-encoding", "chunked"), ("expect", "100-continue")])
    assert (await conn.read_head(allow_informational=True))[0] == 100
    status, headers = await conn.read_head(allow_informational=True)
    assert status == 507 and headers["content-length"] == "4"
    assert await conn.read_body() == b"full"
    assert not conn.reusable  # the request body never ended
    await conn.aclose()
    answers.append(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    r = await client.request("DELETE", "127.0.0.1", port, "/")
    assert r.status == 204 and r.body == b""
    await client.aclose()


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6))
def test_frame_parts_is_one_chunk_of_all_the_parts(parts):
    joined = b"".join(parts)
    assert frame_parts(parts) == frame_chunk(joined) == b"%x\r\n" % len(joined) + joined + b"\r\n"
