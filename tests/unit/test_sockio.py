"""``common._sockio.Receiver``: ``receive_some`` semantics on real sockets
(and any other stream), without a scheduler pass or a cancel scope per read."""

from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from common._sockio import Receiver


def _pair() -> tuple[trio.SocketStream, socket.socket]:
    a, b = socket.socketpair()
    return trio.SocketStream(trio.socket.from_stdlib_socket(a)), b


async def test_reads_what_is_there_waits_for_more_and_sees_the_end() -> None:
    stream, peer = _pair()
    rx = Receiver(stream, 4)
    peer.sendall(b"abcdef")
    assert await rx.receive(1) == b"abcd"  # at most max_bytes
    assert await rx.receive(1) == b"ef"

    async def later() -> None:
        await trio.sleep(0.05)
        peer.sendall(b"g")

    async with trio.open_nursery() as n:
        n.start_soon(later)
        assert await rx.receive(5) == b"g"  # waited for it
    peer.close()
    assert await rx.receive(1) == b""
    await stream.aclose()


async def test_timeout_and_failures_are_what_receive_some_raises() -> None:
    stream, peer = _pair()
    rx = Receiver(stream, 1024)
    with pytest.raises(trio.TooSlowError):
        await rx.receive(0.05)
    # A TCP-style reset: the read fails, which the stream reports as broken.
    tcp = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(tcp.getsockname())
    s, _ = tcp.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    broken = Receiver(trio.SocketStream(trio.socket.from_stdlib_socket(s)), 1024)
    with pytest.raises(trio.BrokenResourceError):
        await broken.receive(1)
    await stream.aclose()
    for y in (peer, tcp, s):
        y.close()


async def test_a_peer_that_always_has_bytes_cannot_starve_others_or_cancellation() -> None:
    stream, peer = _pair()
    peer.sendall(b"x" * 4096)
    rx = Receiver(stream, 1)
    ran = 0

    async def other() -> None:
        nonlocal ran
        while True:
            ran += 1
            await trio.lowlevel.checkpoint()

    reads = 0
    async with trio.open_nursery() as n:
        n.start_soon(other)
        for _ in range(32):
            await rx.receive(1)
            reads += 1
        n.cancel_scope.cancel()
    assert ran >= 30  # the other task ran between reads, though bytes were always ready
    with trio.CancelScope() as scope:
        scope.cancel()
        await rx.receive(1)
        reads += 1
    assert scope.cancelled_caught and reads == 32  # a cancelled read raises, even with bytes ready
    rest = Receiver(stream, 8192)
    assert len(await rest.receive(1)) == 4096 - 32  # and consumed nothing
    await stream.aclose()
    peer.close()


async def test_other_streams_use_their_own_receive_some() -> None:
    a, b = trio.testing.memory_stream_pair()
    rx = Receiver(a, 3)
    await b.send_all(b"hello")
    assert await rx.receive(1) == b"hel"
    with pytest.raises(trio.TooSlowError):
        await Receiver(b, 3).receive(0.02)
