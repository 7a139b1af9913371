"""A request body read in a worker thread, straight from the socket into a
blocking consumer: one hand-off with the event loop per body.

Why: a storage node receives a 4 MiB replica in about 60 reads. Read on the
event loop, each read is a pass through trio, llhttp copies the bytes into a
new ``bytes`` for its body callback, and every ~1 MiB a batch crosses to a
drive thread to be hashed and written. That interpreter work was about half
of a node's CPU per large PUT. Here one thread polls the socket, reads into
a reused buffer, cuts the framing out (``_chunked``, pure) and hands each
piece of body to ``sink`` as a ``memoryview`` (hash and write: no copy
before them, no GIL held while they run).

Contract of ``pump(fd, decoder, sink, timeout)``:

- ``fd``: a connected, non-blocking socket that nothing else reads until the
  pump returns; ``decoder``: a ``LengthDecoder`` or ``ChunkedDecoder``
  positioned at the body's first byte.
- ``sink(view)`` gets the body's bytes in order; ``view`` is only valid
  during the call (copy what you keep). An exception from ``sink`` stops the
  pump and propagates unchanged (a full disk stays an ``OSError``).
- A sink may also lend its own buffer: ``sink.space()`` returns a
  non-empty writable ``memoryview`` and ``sink.filled(n)`` takes its first
  ``n`` bytes as the body's next ones. Then body bytes with no framing
  among them are read straight into it (a storage node's direct-I/O buffer:
  no copy between the socket and the disk write); framing is read in small
  reads, and any body bytes that come with it go to ``sink(view)``. Either
  way the sink sees the body's bytes once, in order.
- Returns the bytes read past the body's end (the start of a pipelined next
  request; never any for a length-framed body, which is read exactly).
- The peer closing or resetting the connection, or breaking the framing,
  raises ``ClientDisconnect``; a stall raises ``BodyTimeout``: nothing to
  read after waiting ``timeout`` seconds. The wait is for the bytes the
  framing says must come (``decoder.due``, up to ``LOWAT``, through
  ``SO_RCVLOWAT``), so a stall after a few bytes is seen within twice
  ``timeout``. The connection cannot carry another request after that.
- Cancelling is the caller's business: shutting the socket down for reading
  ends the pump promptly with ``ClientDisconnect``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import time
from collections.abc import Callable

from ._chunked import ChunkedDecoder, LengthDecoder
from ._http_message import BodyTimeout, ClientDisconnect
from ._http_wire import WireError
from .memory import BufferPool

__all__ = ["SCRATCH", "SendTimeout", "Stats", "pump", "send_all_blocking"]

SCRATCH = 1 << 20  # bytes per read at most
LOWAT = 1 << 19  # wait for up to this many bytes before a read (SO_RCVLOWAT)
# Why this large: each read is a pass through the loop below, the sink
# (hash, write or fan out) and a few GIL hand-offs with the event loop and
# the other pumps; with 256 KiB reads (128 KiB low mark) a 4 MiB PUT cost
# the cluster ~60 such passes and their futex wake-ups, now ~20.
_SCRATCH = BufferPool(SCRATCH, keep=8)  # one buffer per running pump
FRAMING_READ = 512  # bytes per read between a lending sink's stretches of body
_DISCONNECT = "Client disconnected before sending the whole body"


class Stats:
    """Bodies this process's HTTP server read in a pump thread (counted on
    the event loop; for tests and /metrics)."""

    bodies = 0


def pump(fd: int, decoder: LengthDecoder | ChunkedDecoder, sink: Callable[[memoryview], None],
         timeout: float) -> bytes:
    """Feed the body on ``fd`` to ``sink``; see the module contract."""
    buf = _SCRATCH.take()
    try:
        return _pump(fd, decoder, sink, timeout, buf)
    finally:
        _SCRATCH.give(buf)


def _pump(fd: int, decoder: LengthDecoder | ChunkedDecoder, sink: Callable[[memoryview], None],
          timeout: float, buf: mmap.mmap) -> bytes:
    view = memoryview(buf)
    lend: Callable[[], memoryview] | None = getattr(sink, "space", None)
    filled: Callable[[int], None] = getattr(sink, "filled", None) or (lambda n: None)
    readv = os.readv
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    wait_ms = max(1, int(timeout * 1000))
    spans: list[tuple[int, int]] = []
    feed = decoder.feed
    n = used = 0
    lowat = 1
    sock = socket.socket(fileno=fd)  # for setsockopt; detached (not closed) at the end
    try:
        while not decoder.done:
            # Body bytes with no framing among them go straight into a
            # lending sink's buffer; the rest (framing, and any body bytes
            # read with it) through the scratch buffer to ``sink``.
            left = decoder.data_left if lend is not None else 0
            into = None
            if left:
                into = lend()  # type: ignore[misc]
                if left < len(into):
                    into = into[:left]
                due = min(len(into), LOWAT)
            else:
                due = min(decoder.due, LOWAT)
            # Wake only when a good part of what must come is there: fewer,
            # larger reads (each costs a pass through this loop and the sink).
            if due != lowat:
                with contextlib.suppress(OSError):  # a broken socket: the read says so
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, due)
                lowat = due
            woke = poller.poll(wait_ms)
            try:
                if into is not None:
                    got = readv(fd, [into])
                else:
                    want = decoder.want if lend is None else min(decoder.want, FRAMING_READ)
                    got = readv(fd, [view[:want] if want < SCRATCH else view])
            except BlockingIOError:
                if not woke:  # not a byte in ``timeout`` (below the low mark: see the module doc)
                    raise BodyTimeout("Timed out reading the request body") from None
                continue
            except OSError as exc:
                raise ClientDisconnect(_DISCONNECT) from exc
            if not got:
                raise ClientDisconnect(_DISCONNECT)
            if into is not None:
                decoder.skip_data(got)
                filled(got)
                n = used = 0  # nothing of this read lies past the body
                continue
            n = got
            try:
                used = feed(buf, 0, n, spans)
            except WireError as exc:
                raise ClientDisconnect(_DISCONNECT) from exc
            for start, stop in spans:
                sink(view[start:stop])
            spans.clear()
    finally:
        if lowat != 1:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)  # the next request: any byte wakes
        sock.detach()
        view.release()
    return bytes(buf[used:n])


class SendTimeout(OSError):
    """``send_all_blocking`` waited longer than its timeout for room to write."""


def send_all_blocking(fd: int, parts: list[bytes | memoryview], timeout: float) -> None:
    """(thread) Write all of ``parts`` to the non-blocking socket ``fd`` in
    order (``writev``: no joining copy), waiting at most ``timeout`` seconds
    in all; ``SendTimeout`` after that, the socket's ``OSError`` on failure.
    What went out before a failure is gone: the caller drops the connection."""
    deadline = 0.0
    poller: select.poll | None = None
    views = parts
    while views:
        try:
            n = os.writev(fd, views)
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
                deadline = time.monotonic() + timeout
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000))):
                raise SendTimeout("timed out sending") from None
            continue
        while n:
            first = len(views[0])
            if n >= first:
                n -= first
                views = views[1:]
            else:
                views = [memoryview(views[0])[n:], *views[1:]]
                n = 0
