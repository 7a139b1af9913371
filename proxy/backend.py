"""Talking to storage nodes: one request, or one request fanned out to N.

Contract:

- Every backend request carries ``X-Trans-Id`` and runs under the config's
  timeouts: ``conn_timeout`` to connect, ``node_timeout`` for each wait on
  the node (head, each body chunk). A timeout, refused connection, reset or
  5xx is an *error* (status None or the 5xx): the device's error count goes
  up (``ErrorLimiter``); a 507 error-limits the device at once.
- ``fan_out`` sends one request per replica slot, concurrently; a slot whose
  node errors moves on to the next node of the shared ``NodeIter`` (a
  handoff), keeping the slot's own headers (container update targets).
  Nothing here decides the client's answer: ``proxy.quorum`` does.
- Timestamps seen in answers (``X-Backend-Timestamp``, ``X-Timestamp``,
  ``X-Put-Timestamp``) are fed to the ``TimestampSource`` so this proxy never
  issues one behind what it has seen (invariant 2).
- Cancellation closes any half-used connection (never returned to the pool).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import trio

from common.http import ClientConnection, Headers, HTTPClient, UpstreamError
from common.log import get_logger, log_event
from common.timestamp import Timestamp, TimestampError, TimestampSource
from proxy.config import ProxyConfig
from proxy.node_iter import ErrorLimiter, NodeIter, node_key
from ring.ringfile import RingDevice

TIMESTAMP_HEADERS = ("x-backend-timestamp", "x-timestamp", "x-put-timestamp")
_log = get_logger("proxy.backend")


@dataclass(slots=True)
class BackendResponse:
    node: RingDevice
    status: int | None  # None: connection error or timeout
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    error: str = ""


def backend_path(node: RingDevice, part: int, account: str, container: str | None = None, obj: str | None = None) -> str:
    names = [account] + ([container] if container is not None else []) + ([obj] if obj is not None else [])
    quoted = "/".join(quote(n.encode("utf-8", "surrogateescape"), safe="/") for n in names)
    return f"/{quote(node.device)}/{part}/{quoted}"


def header_timestamp(headers: Headers, name: str = "x-backend-timestamp") -> Timestamp | None:
    value = headers.get(name)
    if not value:
        return None
    try:
        return Timestamp.parse(value)
    except TimestampError:
        return None


class Backend:
    """The proxy's connection to its storage nodes (one per process)."""

    def __init__(
        self,
        conf: ProxyConfig,
        client: HTTPClient,
        limiter: ErrorLimiter,
        timestamps: TimestampSource,
    ) -> None:
        self.conf = conf
        self.client = client
        self.limiter = limiter
        self.timestamps = timestamps

    # -- bookkeeping --------------------------------------------------------
    def observe(self, headers: Headers) -> None:
        for name in TIMESTAMP_HEADERS:
            ts = header_timestamp(headers, name)
            if ts is not None:
                self.timestamps.observe(ts)

    def record(self, node: RingDevice, status: int | None) -> None:
        if status is None or status == 503 or status == 500:
            was_limited = self.limiter.is_limited(node)
            self.limiter.error_occurred(node)
        elif status == 507:
            was_limited = self.limiter.is_limited(node)
            self.limiter.limit_now(node)
        else:
            return
        if not was_limited and self.limiter.is_limited(node):
            # Swift's "Node error limited": the device is skipped until the
            # cool-down passes; operators look for this line.
            log_event(_log, "error_limited", node=node_key(node), status=status,
                      cooldown=self.limiter.interval)

    # -- one request ---------------------------------------------------------
    async def open(
        self, node: RingDevice, method: str, path: str, headers: Mapping[str, str] | list[tuple[str, str]]
    ) -> tuple[ClientConnection, int, Headers]:
        """Send a body-less request and wait for the response head (the body
        stays unread on the returned connection). Raises ``UpstreamError`` or
        ``trio.TooSlowError``; the caller must ``release``/``aclose`` the
        connection."""
        hdrs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        for attempt in (0, 1):
            conn = await self.client.open(node.address, node.port, fresh=attempt == 1)
            try:
                with trio.fail_after(self.conf.node_timeout):
                    await conn.send_request(method, path, hdrs)
                    await conn.end_body()
                    status, rh = await conn.read_response()
            except UpstreamError:
                await conn.aclose()
                if attempt == 0 and conn.reused:
                    continue  # a pooled connection the node closed meanwhile
                raise
            except BaseException:
                await conn.aclose()
                raise
            self.observe(rh)
            return conn, status, rh
        raise AssertionError("unreachable")

    async def request(
        self,
        node: RingDevice,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        query: str = "",
        read_limit: int | None = 64 << 20,
    ) -> BackendResponse:
        """One whole exchange; errors become ``status=None`` (never raised)."""
        target = f"{path}?{query}" if query else path
        try:
            with trio.fail_after(self.conf.node_timeout):
                resp = await self.client.request(
                    method, node.address, node.port, target, headers=dict(headers), body=body, limit=read_limit
                )
        except (UpstreamError, trio.TooSlowError) as exc:
            self.record(node, None)
            return BackendResponse(node, None, error=str(exc) or "timeout")
        self.observe(resp.headers)
        self.record(node, resp.status)
        return BackendResponse(node, resp.status, resp.headers, resp.body)

    # -- fan out ---------------------------------------------------------------
    async def fan_out(
        self,
        nodes: NodeIter,
        count: int,
        method: str,
        path_for: Callable[[RingDevice], str],
        headers_for: Callable[[int], Mapping[str, str]],
        body: bytes = b"",
        query: str = "",
        quorum: int | None = None,
    ) -> list[BackendResponse]:
        """``count`` concurrent requests, each slot retrying on the next node
        of ``nodes`` after an error (5xx, 507, timeout). Returns the last
        answer of every slot, in slot order. With ``quorum``: once that many
        slots answered 2xx the others get ``post_quorum_timeout`` more, then
        are cut off (a slot cut off before any answer counts as an error)."""
        results: list[BackendResponse | None] = [None] * count
        state = {"ok": 0, "finished": 0}
        enough = trio.Event()
        all_finished = trio.Event()

        async def slot(i: int) -> None:
            try:
                while True:
                    node = nodes.next_node()
                    if node is None:
                        if results[i] is None:
                            results[i] = BackendResponse(_NO_NODE, None, error="no node left")
                        return
                    resp = await self.request(node, method, path_for(node), headers_for(i), body, query)
                    results[i] = resp
                    if resp.status is not None and resp.status < 500:
                        if 200 <= resp.status < 300:
                            state["ok"] += 1
                            if quorum is not None and state["ok"] >= quorum:
                                enough.set()
                        return
            finally:
                state["finished"] += 1
                if state["finished"] >= count:
                    all_finished.set()

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(slot, i)
            if quorum is not None:

                async def cutoff() -> None:
                    await enough.wait()
                    with trio.move_on_after(self.conf.post_quorum_timeout):
                        await all_finished.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(cutoff)
                await all_finished.wait()
                nursery.cancel_scope.cancel()
        return [r if r is not None else BackendResponse(_NO_NODE, None, error="cut off") for r in results]


_NO_NODE = RingDevice(-1, "", 0, 0, "", 0, "", 0.0)
