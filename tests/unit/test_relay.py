"""RelayBody and common.splice over real loopback sockets: a body passed on
from an upstream server through a relaying server (as the proxy's GET does)
arrives byte-exact, spliced kernel-side when both ends are TCP; an upstream
that dies or stalls, and a client that hangs up, end the response short and
never leave a half-read connection in the pool."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
import trio.testing

from common import splice
from common.http import HTTPClient, RelayBody, Request, Response, UpstreamError, serve_http

BIG = 5 * (1 << 20) + 123
PAYLOAD = os.urandom(BIG)
stall = trio.Event()


async def upstream(request: Request) -> Response:
    n = int(request.query.get("n", str(BIG)))
    if request.path == "/whole":
        return Response(200, {}, PAYLOAD[:n])
    if request.path == "/chunked":  # no Content-Length: chunked framing

        async def gen():
            for i in range(0, n, 300_000):
                yield PAYLOAD[i : min(n, i + 300_000)]

        return Response(200, {}, gen())
    if request.path == "/short":  # promises n, sends a third, then the connection drops

        async def short():
            yield PAYLOAD[: n // 3]
            raise RuntimeError("disk gone")

        return Response(200, {"content-length": str(n)}, short())
    if request.path == "/stall":

        async def stalls():
            yield PAYLOAD[: 1 << 20]
            await stall.wait()
            yield PAYLOAD[1 << 20 : n]

        return Response(200, {"content-length": str(n)}, stalls())
    return Response(404)


class Relay:
    """A minimal proxy: GET the same path upstream, pass the body on."""

    def __init__(self, up_port: int) -> None:
        self.up_port = up_port
        self.client = HTTPClient()
        self.opened = 0

    async def __call__(self, request: Request) -> Response:
        conn = await self.client.open("127.0.0.1", self.up_port)
        self.opened += 0 if conn.reused else 1
        await conn.send_request("GET", request.target.decode(), {})
        await conn.end_body()
        status, headers = await conn.read_response()
        first = await conn.receive_chunk()
        lie = int(request.query.get("lie", "0"))  # a wrong Content-Length for the client
        out = {"content-length": str(int(headers["content-length"]) + lie)} if "content-length" in headers else {}
        return Response(status, out, RelayBody(conn, first, timeout=0.5))

    def idle(self) -> int:
        return sum(len(v) for v in self.client._idle.values())


@pytest.fixture
async def relay(nursery):
    up_port = await nursery.start(serve_http, upstream)
    r = Relay(up_port)
    r.port = await nursery.start(serve_http, r)
    return r


@pytest.mark.parametrize("path, n", [("/whole", BIG), ("/whole", 70_000), ("/whole", 0), ("/chunked", BIG)])
async def test_body_arrives_whole_and_the_upstream_connection_is_reused(relay, path, n):
    client = HTTPClient()
    before = splice.Stats.bytes
    for _ in range(2):
        resp = await client.request("GET", "127.0.0.1", relay.port, f"{path}?n={n}", timeout=10)
        assert resp.status == 200
        assert hashlib.md5(resp.body).digest() == hashlib.md5(PAYLOAD[:n]).digest()
        await trio.testing.wait_all_tasks_blocked()  # the relay finishes after the client has it all
        assert relay.idle() == 1  # the upstream connection went back to the pool...
    assert relay.opened == 1  # ...and served the second request
    spliced = splice.Stats.bytes - before
    if path == "/whole" and n == BIG and hasattr(os, "splice"):
        # The relay took what the first read got as bytes, the rest kernel-side.
        assert 2 * (BIG - (1 << 20)) <= spliced <= 2 * BIG
    elif path != "/whole" or n < 262144:
        assert spliced == 0  # chunked, or all of it in the first read: the copying path
    await client.aclose()


async def test_upstream_that_dies_mid_body_ends_the_response_short(relay):
    client = HTTPClient()
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", relay.port, "/short", timeout=10)
    await trio.testing.wait_all_tasks_blocked()
    assert relay.idle() == 0  # never pooled half-read
    resp = await client.request("GET", "127.0.0.1", relay.port, "/whole?n=300000", timeout=10)
    assert resp.status == 200 and resp.body == PAYLOAD[:300000]
    await client.aclose()


async def test_upstream_that_stalls_is_cut_off_after_the_timeout(relay):
    client = HTTPClient()
    with trio.fail_after(5):
        with pytest.raises(UpstreamError):
            await client.request("GET", "127.0.0.1", relay.port, "/stall", timeout=10)
    assert relay.idle() == 0
    stall.set()
    await client.aclose()


async def test_client_that_hangs_up_mid_relay(relay):
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", relay.port)
        await stream.send_all(f"GET /whole?n={BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = 0
        while got < (1 << 20):
            got += len(await stream.receive_some(65536))
        await stream.aclose()
        await trio.sleep(0.2)  # the relay notices on its next write
        assert relay.idle() == 0  # the upstream body was not read to its end: closed, not pooled
        client = HTTPClient()
        resp = await client.request("GET", "127.0.0.1", relay.port, f"/whole?n={BIG}", timeout=10)
        assert resp.status == 200 and len(resp.body) == BIG and resp.body == PAYLOAD
        await client.aclose()


@pytest.mark.parametrize("lie", [-10, 10])
async def test_a_body_that_does_not_match_the_promised_length_is_cut_short(relay, lie):
    client = HTTPClient()
    with pytest.raises(UpstreamError):
        await client.request("GET", "127.0.0.1", relay.port, f"/whole?n={BIG}&lie={lie}", timeout=10)
    await trio.testing.wait_all_tasks_blocked()
    assert relay.idle() == 0
    await client.aclose()
