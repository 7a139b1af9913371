"""Streaming PUT: the client's body goes to N object nodes at once.

Contract (invariants 1, 4, 5; FAULTS 1, 2, 11, 12, 15):

- Connect phase: one slot per replica. Each slot sends its request head with
  ``Expect: 100-continue`` and waits for ``100 Continue``; a node that
  refuses (connection error, timeout, 507 or any early final answer) is
  replaced by the next handoff from the ``NodeIter``. Fewer than W slots
  ready: 503 before a byte of the body is read.
- Stream phase: each client chunk is sent to every live slot in turn
  (memory per PUT is one chunk plus the kernel's socket buffers, whatever
  the object size). For a body over ``THREAD_MIN`` (or of unknown size),
  when every node connection is a socket, this runs in the client body's
  pump thread (``_fan_out_in_thread``: read, hash and ``writev`` to each
  node, one hand-off with the event loop per body); otherwise (small
  bodies, the simulation's in-memory streams) on the event loop. A slot
  whose node fails or stalls longer than ``node_timeout`` is dropped (no
  replacement mid-stream). When fewer than W slots remain alive the PUT
  stops: 503.
- The client hanging up (or stalling past the body timeout) aborts every
  slot by closing its connection mid-body, so no node commits anything; the
  answer is 499 (408 for a stall).
- Hashing: the proxy computes the body's MD5 (the ETag) and the root of its
  chunk checksums once, as it streams (``common.bodyhash``), and sends them
  in the chunked body's trailer (``X-Backend-Obj-Trailer: yes``; the
  checksum's name in ``X-Backend-Obj-Checksum``; the client's length, if
  any, in ``X-Backend-Obj-Content-Length``). Each node computes only the
  chunk checksums and stores the proxy's MD5 once its own root matches (BACKEND_API.md,
  "Proxy-hashed PUT"): one MD5 per PUT instead of one per replica.
- After the body: 201 as soon as W nodes answered 2xx, waiting for the
  others at most ``post_quorum_timeout``; the rest are cut off (their nodes
  either finish or discard; replication evens them out).
- Cancellation closes every node connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import trio

from common.bodyhash import (
    CHECKSUM,
    DECLARED_LENGTH,
    DEFAULT_CHECKSUM,
    PROXY_HASHED,
    TRAILER_ETAG,
    TRAILER_ROOT,
    ChunkHasher,
    root_hash,
)
from common.http import (
    BodyTimeout,
    BodyTooLarge,
    ClientConnection,
    ClientDisconnect,
    Headers,
    Request,
    UpstreamError,
    chunk_parts,
    frame_parts,
    send_all_blocking,
)
from common.log import get_logger, log_event
from proxy.backend import Backend
from proxy.node_iter import NodeIter
from proxy.quorum import WriteOutcome, write_outcome
from ring.ringfile import RingDevice

_log = get_logger("proxy.put")
# Bodies up to this size are fanned out from the event loop: they come in a
# read or two, and a hop to a pump thread would cost more than it saves.
THREAD_MIN = 1 << 20


@dataclass
class PutResult:
    outcome: WriteOutcome
    statuses: list[int | None]
    etags: list[str] = field(default_factory=list)
    headers: list[Headers] = field(default_factory=list)
    client_error: Exception | None = None
    message: str = ""


class _Slot:
    """One replica's connection during a PUT."""

    def __init__(self, node: RingDevice, conn: ClientConnection) -> None:
        self.node = node
        self.conn = conn
        self.alive = True
        self.status: int | None = None
        self.headers = Headers()
        self.done = trio.Event()

    async def fail(self, backend: Backend) -> None:
        if self.alive and self.status is None:
            backend.record(self.node, None)
        self.alive = False
        await self.conn.aclose()
        self.done.set()

    async def send(self, backend: Backend, framed: bytes) -> None:
        """Forward one chunk (already framed); a node that errors or stalls is dropped."""
        try:
            with trio.fail_after(backend.conf.node_timeout):
                await self.conn.send_framed(framed)
        except (UpstreamError, trio.TooSlowError):
            await self.fail(backend)

    async def finish(self, backend: Backend, trailers: list[tuple[str, str]]) -> None:
        """End the body (with ``trailers``) and read the node's answer
        (bounded by node_timeout)."""
        try:
            with trio.fail_after(backend.conf.node_timeout):
                await self.conn.end_body(trailers)
                status, headers = await self.conn.read_response()
                await self.conn.read_body(1 << 20)
        except (UpstreamError, trio.TooSlowError):
            await self.fail(backend)
            return
        self.status, self.headers = status, headers
        backend.observe(headers)
        backend.record(self.node, status)
        if 200 <= status < 300:
            await self.conn.release()
        else:
            self.alive = False
            await self.conn.aclose()
        self.done.set()


async def _expect_continue(conn: ClientConnection) -> tuple[int, Headers] | None:
    """None on ``100 Continue``; the early final answer otherwise."""
    while True:
        status, headers = await conn.read_head(allow_informational=True)
        if status == 100:
            return None
        if status >= 200:
            return status, headers


async def _connect(
    backend: Backend,
    nodes: NodeIter,
    path_for: Callable[[RingDevice], str],
    headers: list[tuple[str, str]],
    expect: bool,
    early: list[int | None],
) -> _Slot | None:
    """The first node of ``nodes`` that accepts the request head."""
    conf = backend.conf
    while True:
        node = nodes.next_node()
        if node is None:
            return None
        conn: ClientConnection | None = None
        try:
            with trio.fail_after(conf.conn_timeout + conf.node_timeout):
                for fresh in (False, True):
                    conn = await backend.client.open(node.address, node.port, fresh=fresh)
                    try:
                        await conn.send_request("PUT", path_for(node), headers)
                        answer = await _expect_continue(conn) if expect else None
                        break
                    except UpstreamError:
                        await conn.aclose()
                        if fresh or not conn.reused:
                            raise  # a pooled connection the node closed meanwhile gets one retry
        except (UpstreamError, trio.TooSlowError) as exc:
            if conn is not None:
                await conn.aclose()
            backend.record(node, None)
            log_event(_log, "put_connect_failed", node=f"{node.address}:{node.port}/{node.device}", error=repr(exc))
            early.append(None)
            continue
        if answer is None:
            assert conn is not None
            return _Slot(node, conn)
        status, rh = answer
        assert conn is not None
        log_event(_log, "put_refused", node=f"{node.address}:{node.port}/{node.device}", status=status)
        await conn.aclose()
        backend.observe(rh)
        backend.record(node, status)
        early.append(status)
        if status < 500:
            # A definite refusal (409 newer data, 4xx): relay, no handoff.
            return None


async def stream_put(
    backend: Backend,
    nodes: NodeIter,
    n: int,
    w: int,
    path_for: Callable[[RingDevice], str],
    headers_for: Callable[[int], Mapping[str, str]],
    request: Request,
    content_length: int | None,
    max_size: int,
) -> PutResult:
    """Fan the body out; see the module contract."""
    conf = backend.conf
    expect = content_length is None or content_length > 0
    early: list[int | None] = []
    slots: list[_Slot | None] = [None] * n

    async def connect(i: int) -> None:
        hdrs = list(headers_for(i).items())
        hdrs.append(("transfer-encoding", "chunked"))  # the trailer needs chunked framing
        hdrs.append((PROXY_HASHED, "yes"))
        hdrs.append((CHECKSUM, DEFAULT_CHECKSUM))
        if content_length is not None:
            hdrs.append((DECLARED_LENGTH, str(content_length)))
        if expect:
            hdrs.append(("expect", "100-continue"))
        slots[i] = await _connect(backend, nodes, path_for, hdrs, expect, early)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(connect, i)
    live = [s for s in slots if s is not None]
    if len(live) < w:
        for s in live:
            await s.conn.aclose()
        refusals = [s for s in early if s is not None and s < 500]
        if refusals and len(refusals) + len(live) >= 1 and all(s == refusals[0] for s in refusals):
            outcome = write_outcome(refusals, len(refusals), 1)
            return PutResult(outcome, early, message="refused by the object servers")
        return PutResult(WriteOutcome(503, ""), early, message=f"only {len(live)} of {w} required object servers reachable")

    client_error: Exception | None = None
    too_few = False
    hasher = ChunkHasher(checksum=DEFAULT_CHECKSUM)
    try:
        large = content_length is None or content_length > THREAD_MIN
        if large and all(isinstance(s.conn.stream, trio.SocketStream) for s in live):
            too_few = await _fan_out_in_thread(backend, live, w, request, hasher, max_size)
        else:
            too_few = await _fan_out(backend, live, w, request, hasher, max_size)
    except (ClientDisconnect, BodyTimeout, BodyTooLarge) as exc:
        client_error = exc
    except BaseException:
        for s in live:
            await s.fail(backend)
        raise
    if client_error is not None or too_few:
        for s in live:
            await s.fail(backend)  # closing mid-body: the nodes discard it (invariant 5)
    else:
        md5, digests = hasher.finish()
        trailers = [(TRAILER_ETAG, md5), (TRAILER_ROOT, root_hash(hasher.checksum, digests, hasher.size))]
        async with trio.open_nursery() as nursery:
            for s in live:
                if s.alive:
                    nursery.start_soon(s.finish, backend, trailers)
            # 201 once W acknowledged; the rest get post_quorum_timeout.
            while True:
                ok = sum(1 for s in live if s.status is not None and 200 <= s.status < 300)
                pending = [s for s in live if s.alive and not s.done.is_set()]
                if not pending:
                    break
                if ok >= w:
                    with trio.move_on_after(conf.post_quorum_timeout):
                        for s in pending:
                            await s.done.wait()
                    break
                await _first_done(pending)
            for s in live:
                if not s.done.is_set():
                    await s.fail(backend)
            nursery.cancel_scope.cancel()
    statuses = [s.status if s.alive or s.status else None for s in live] + [e for e in early]
    if client_error is not None:
        return PutResult(WriteOutcome(client_error.status, ""), statuses, client_error=client_error)  # type: ignore[attr-defined]
    if too_few:
        return PutResult(WriteOutcome(503, ""), statuses, message="too many object servers failed during the upload")
    outcome = write_outcome([s.status for s in live], n, w)
    etags = [s.headers.get("etag", "") or "" for s in live if s.status is not None and 200 <= s.status < 300]
    return PutResult(outcome, statuses, etags, [s.headers for s in live if s.status is not None])


async def _fan_out(backend: Backend, live: list[_Slot], w: int, request: Request, hasher: ChunkHasher,
                   max_size: int) -> bool:
    """The body to every live node from the event loop (any stream); True
    when fewer than W nodes remain."""
    # Chunks go to each live node in turn: the kernel's socket buffers
    # absorb the skew between nodes, and a node that stalls for
    # node_timeout is dropped (no per-chunk task hand-offs: CPU per byte).
    # Client chunks are coalesced up to ``chunk_size`` so each node send
    # carries more bytes per syscall and per parser event (bounded buffer).
    pending: list[bytes] = []
    buffered = received = 0
    async for chunk in request.iter_body():
        received += len(chunk)
        if received > max_size:
            raise BodyTooLarge("Your request is too large.")
        hasher.update(chunk)
        pending.append(chunk)
        buffered += len(chunk)
        if buffered < backend.conf.chunk_size:
            continue
        if not await _forward(backend, live, pending, w):
            return True
        pending, buffered = [], 0
    return bool(pending) and not await _forward(backend, live, pending, w)


class _TooFew(Exception):
    """Fewer than W nodes are left mid-body (raised in the pump thread)."""


async def _fan_out_in_thread(backend: Backend, live: list[_Slot], w: int, request: Request,
                             hasher: ChunkHasher, max_size: int) -> bool:
    """As ``_fan_out`` when every node connection is a socket, but done in
    the body's pump thread (``Request.pump_body``): each piece the client
    sent is hashed, then framed as one chunk and written to each node with
    ``writev``, without the GIL and without a hand-off per piece. A node that
    fails or stalls for node_timeout is dropped, as there; its connection is
    closed back on the event loop."""
    timeout = backend.conf.node_timeout
    targets = [(s, s.conn.stream.socket.fileno()) for s in live if s.alive]  # type: ignore[attr-defined]
    broken: list[_Slot] = []
    received = 0

    def sink(piece: memoryview) -> None:
        nonlocal received, targets
        received += len(piece)
        if received > max_size:
            raise BodyTooLarge("Your request is too large.")
        hasher.update(piece)
        parts = chunk_parts([piece])
        dropped = False
        for slot, fd in targets:
            try:
                send_all_blocking(fd, parts, timeout)
            except OSError:  # SendTimeout included
                broken.append(slot)
                dropped = True
        if dropped:
            targets = [(s, fd) for s, fd in targets if s not in broken]
            if len(targets) < w:
                raise _TooFew

    try:
        await request.pump_body(sink)
    except _TooFew:
        return True
    finally:
        for slot in broken:
            await slot.fail(backend)
    return False


async def _forward(backend: Backend, live: list[_Slot], pending: list[bytes], w: int) -> bool:
    """Send the buffered chunks to every live node; False when fewer than W remain."""
    framed = frame_parts(pending)  # one copy for all replicas, not one per replica
    for s in live:
        if s.alive:
            await s.send(backend, framed)
    return sum(1 for s in live if s.alive) >= w


async def _first_done(slots: list[_Slot]) -> None:
    async with trio.open_nursery() as nursery:
        for s in slots:

            async def wait(s: _Slot = s) -> None:
                await s.done.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)
