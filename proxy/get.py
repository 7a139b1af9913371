"""GET/HEAD against replicas: R = 1 failover, or R > 1 newest-wins with read repair.

Contract (invariants 2, 3, 4; FAULTS 4, 5, 8, 10, 15):

- R = 1 (Swift's default): ask nodes one at a time, primaries first, a
  handoff replacing each primary that errors. The first replica that has the
  object is streamed to the client. Failover happens until the first body
  byte: the proxy reads the first chunk before answering, so a node that
  dies after its head is replaced; after that a failure ends the response
  short (the client sees a truncated body, never a clean wrong end).
  404 only when absence is proven (``quorum.read_decision``); when the
  primaries all say 404 without a tombstone the handoffs are asked too (a
  write that landed only on handoffs is found).
- R > 1 (``X-Consistency: quorum|all`` or ``X-Newest``): HEAD every primary
  at once (handoffs replace errors), need R answers (else 503), pick the
  newest by ``X-Backend-Timestamp`` and serve it (a GET to that node, or
  another holding the same timestamp); replicas that lag are handed to
  ``on_repair`` (read repair runs in the background, never delaying the
  client).
- Bodies stream in bounded chunks; each wait on a node is bounded by
  ``node_timeout``. A client that goes away closes the node connection.
  The proxy passes a node's body on unchanged (the node verified it,
  invariant 3): ``RelayBody``, which the server splices kernel-side
  between the two TCP sockets when it can (``common/splice.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import trio

from common.http import ClientConnection, Headers, RelayBody, Response, UpstreamError
from proxy.backend import Backend, BackendResponse, header_timestamp
from proxy.node_iter import NodeIter
from proxy.quorum import ReadDecision, Repair, ReplicaAnswer, read_decision, repair_plan
from ring.ringfile import RingDevice

HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "date", "server", "content-length", "x-trans-id"}
)
NO_BODY = (204, 304)
RepairHook = Callable[[list[BackendResponse], int, list[Repair]], Awaitable[None] | None]


def client_headers(backend_headers: Headers) -> Headers:
    """A node's response headers as the client should see them."""
    out = Headers()
    for k, v in backend_headers.items():
        if k in HOP_HEADERS or k.startswith("x-backend-"):
            continue
        out.add(k, v)
    return out


def answer_of(resp: BackendResponse, nodes: NodeIter) -> ReplicaAnswer:
    return ReplicaAnswer(
        resp.status,
        header_timestamp(resp.headers) or header_timestamp(resp.headers, "x-timestamp"),
        header_timestamp(resp.headers, "x-backend-data-timestamp"),
        nodes.is_primary(resp.node),
    )


@dataclass
class _Source:
    node: RingDevice
    conn: ClientConnection
    status: int
    headers: Headers
    first: bytes
    whole: bool = False  # ``first`` is the entire body; the connection is released


def _has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status not in NO_BODY


async def _open_source(
    backend: Backend, node: RingDevice, method: str, path: str, headers: Mapping[str, str]
) -> tuple[_Source | None, BackendResponse]:
    """Ask one node. A found answer comes back as an open source (first
    chunk read); anything else is read whole and closed."""
    try:
        conn, status, rh = await backend.open(node, method, path, headers)
    except (UpstreamError, trio.TooSlowError) as exc:
        backend.record(node, None)
        return None, BackendResponse(node, None, error=str(exc) or "timeout")
    backend.record(node, status)
    answer = BackendResponse(node, status, rh)
    try:
        with trio.fail_after(backend.conf.node_timeout):
            if ReplicaAnswer(status).found and _has_body(method, status):
                first = await conn.receive_chunk()
                length = rh.get("content-length")
                # The whole (small) body is here: finish the exchange now so
                # the client gets head and body in one write.
                whole = length is not None and length.isdigit() and len(first) == int(length)
                if whole and await conn.receive_chunk() == b"":
                    await conn.release()
                    return _Source(node, conn, status, rh, first, whole=True), answer
                return _Source(node, conn, status, rh, first), answer
            answer.body = await conn.read_body(1 << 20) if method != "HEAD" else b""
    except (UpstreamError, trio.TooSlowError) as exc:
        await conn.aclose()
        backend.record(node, None)
        return None, BackendResponse(node, None, error=str(exc) or "timeout")
    if ReplicaAnswer(status).found:
        await conn.release()
        return _Source(node, conn, status, rh, b""), answer
    await conn.release()
    return None, answer


def _respond(backend: Backend, method: str, source: _Source) -> Response:
    if source.status in (412, 416):
        # The object exists but the condition or range failed: the object's
        # headers with Swift's body for the status (as Swift's proxy relays).
        if not source.whole:
            trio.lowlevel.spawn_system_task(source.conn.aclose)
        headers = client_headers(source.headers)
        if source.status == 412:
            headers.pop("accept-ranges")
            headers.set("content-type", "text/html; charset=UTF-8")
            return Response(412, headers, b"")
        ctype = headers.get("content-type")
        resp = Response.text(416, headers=headers)
        if ctype:
            resp.headers.set("content-type", ctype)
        if method == "HEAD":
            resp.body = b""
        return resp
    headers = client_headers(source.headers)
    length = source.headers.get("content-length")
    if length is not None and source.status not in NO_BODY:
        headers.set("content-length", length)
    if not _has_body(method, source.status):
        return Response(source.status, headers, b"")  # the node connection is already released
    if source.whole:
        return Response(source.status, headers, source.first)
    return Response(source.status, headers, RelayBody(source.conn, source.first, backend.conf.node_timeout))


def _final(decision: ReadDecision, answers: list[BackendResponse], what: str) -> Response:
    if decision.kind == "not_found":
        resp = Response.text(404)
        if decision.index is not None:
            ts = answers[decision.index].headers.get("x-backend-timestamp")
            if ts:
                resp.headers.set("x-backend-timestamp", ts)
        return resp
    if decision.kind == "relay" and decision.index is not None:
        a = answers[decision.index]
        assert a.status is not None
        return Response(a.status, client_headers(a.headers), a.body)
    return Response.text(503, f"{what}: {decision.reason or 'no replica answered'}")


async def read_one(
    backend: Backend,
    nodes: NodeIter,
    n: int,
    method: str,
    path_for: Callable[[RingDevice], str],
    headers: Mapping[str, str],
    what: str = "object",
) -> Response:
    """R = 1: first replica that has it (see the module contract)."""
    answers: list[BackendResponse] = []
    for node in nodes:
        source, resp = await _open_source(backend, node, method, path_for(node), headers)
        if source is not None:
            return _respond(backend, method, source)
        answers.append(resp)
        if len(answers) >= n:
            decision = read_decision([answer_of(a, nodes) for a in answers], n, 1)
            if decision.kind == "not_found" and decision.index is not None:
                break  # a tombstone: deleted, proven
            if decision.kind == "relay":
                break
    decision = read_decision([answer_of(a, nodes) for a in answers], n, 1)
    return _final(decision, answers, what)


async def read_newest(
    backend: Backend,
    nodes: NodeIter,
    n: int,
    r: int,
    method: str,
    path_for: Callable[[RingDevice], str],
    head_headers: Mapping[str, str],
    get_headers: Mapping[str, str],
    on_repair: RepairHook | None = None,
    what: str = "object",
) -> Response:
    """R > 1: newest of at least R replicas, with read repair."""
    answers = await backend.fan_out(nodes, n, "HEAD", path_for, lambda i: head_headers)
    replica_answers = [answer_of(a, nodes) for a in answers]
    decision = read_decision(replica_answers, n, r)
    if decision.kind != "serve":
        if decision.kind == "not_found" and decision.index is not None and on_repair is not None:
            plan = repair_plan(replica_answers, decision.index)
            if plan:
                await _maybe_await(on_repair(answers, decision.index, plan))
        return _final(decision, answers, what)
    assert decision.index is not None
    chosen = answers[decision.index]
    plan = repair_plan(replica_answers, decision.index)
    if plan and on_repair is not None:
        await _maybe_await(on_repair(answers, decision.index, plan))
    if method == "HEAD":
        headers = client_headers(chosen.headers)
        if chosen.headers.get("content-length") is not None:
            headers.set("content-length", chosen.headers["content-length"])
        assert chosen.status is not None
        return Response(chosen.status, headers, b"")
    best_ts = replica_answers[decision.index].timestamp
    same = [chosen.node] + [
        a.node
        for i, a in enumerate(answers)
        if i != decision.index and replica_answers[i].found and replica_answers[i].timestamp == best_ts
    ]
    for node in same:
        source, resp = await _open_source(backend, node, method, path_for(node), get_headers)
        if source is not None:
            return _respond(backend, method, source)
        if resp.status is not None and resp.status < 500 and resp.status != 404:
            return Response(resp.status, client_headers(resp.headers), resp.body)
    return Response.text(503, f"{what}: the newest replica could not be read")


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value
