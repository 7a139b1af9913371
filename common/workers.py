"""Several worker processes on one port, as Swift's ``workers`` setting.

The parent binds the listening socket once (so ``--port 0`` resolves to one
port for all), prints the READY line, then forks ``workers`` children that
each run their own trio loop accepting on the inherited socket; the kernel
spreads connections between them. SIGTERM/SIGINT to the parent stops the
children. With ``workers <= 1`` everything runs in the calling process.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

import trio

ServeOnListener = Callable[[trio.SocketListener, int], Awaitable[None]]


def bind_listen_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def announce_ready(role: str, host: str, port: int) -> None:
    """The READY line every ``ringstack serve`` prints once it listens."""
    print(f"READY {role} {host}:{port}", flush=True)


def _listener(sock: socket.socket) -> trio.SocketListener:
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


def run_server(role: str, host: str, port: int, workers: int, serve: ServeOnListener) -> int:
    """Bind, announce, and run ``serve(listener, port)`` in 1..N processes."""
    sock = bind_listen_socket(host, port)
    bound = sock.getsockname()[1]
    if workers <= 1:
        async def single() -> None:
            announce_ready(role, host, bound)
            await serve(_listener(sock), bound)

        try:
            trio.run(single)
        except KeyboardInterrupt:
            return 0
        return 0
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                trio.run(serve, _listener(sock), bound)
            except KeyboardInterrupt:
                pass
            finally:
                sys.stdout.flush()
                os._exit(0)
        children.append(pid)
    announce_ready(role, host, bound)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for child in children:
        while True:
            try:
                _, code = os.waitpid(child, 0)
                status = status or (code >> 8)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return status
