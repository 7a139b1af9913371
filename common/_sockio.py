"""Receiving from a connected socket without trio's per-call costs.

``trio.SocketStream.receive_some`` passes through the scheduler on every
call, and a ``fail_after`` around it builds a cancel scope: ~10 us and
~17 us of CPU per receive here, even when the bytes are already waiting.
The HTTP server pays that per request and every ~70 KiB of a body (a
storage node receives a 4 MiB replica in ~60 reads), the client per
response. ``Receiver.receive`` makes one scheduler pass, reads what the
socket holds, and builds a deadline only when it has to wait.

Contract, as ``receive_some`` (under ``fail_after(timeout)``) has it:

- returns up to ``max_bytes`` bytes, ``b""`` at end of file; waits for at
  least one byte, at most ``timeout`` seconds (``trio.TooSlowError``);
- a reset or otherwise failed socket raises ``trio.BrokenResourceError``,
  a closed one ``trio.ClosedResourceError``;
- it is a checkpoint, waiting or not (one scheduler pass before the read,
  so a cancelled call consumes nothing): a peer that always has bytes ready
  cannot starve the other tasks nor keep a cancellation out, and concurrent
  requests still reach a drive's group committer together. Reads that did
  not yield were tried (``ringstack bench storage --methods ROW``, c=8): the
  same CPU per request, a third fewer per second, as each LMDB batch held
  fewer writers.

Any other stream (the simulation's in-memory ones, TLS) goes through its
own ``receive_some``.
"""

from __future__ import annotations

import errno
import os

import trio


class Receiver:
    __slots__ = ("stream", "max_bytes", "_fd")

    def __init__(self, stream: trio.abc.ReceiveStream, max_bytes: int) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    @property
    def fd(self) -> int:
        """The socket's descriptor; -1 for a stream that is not a socket."""
        return self._fd

    async def receive(self, timeout: float | None = None) -> bytes:
        fd = self._fd
        if fd < 0:
            if timeout is None:
                return await self.stream.receive_some(self.max_bytes)
            with trio.fail_after(timeout):
                return await self.stream.receive_some(self.max_bytes)
        # Before reading, not after: a cancellation raises here with nothing
        # consumed (a read that is then dropped would lose the bytes).
        await trio.lowlevel.checkpoint()
        deadline: float | None = None
        while True:
            try:
                data = os.read(fd, self.max_bytes)
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise trio.ClosedResourceError("the socket was closed") from exc
                raise trio.BrokenResourceError(f"socket receive failed: {exc!r}") from exc
            else:
                return data
            if timeout is None:
                await trio.lowlevel.wait_readable(fd)
                continue
            if deadline is None:
                deadline = trio.current_time() + timeout
            with trio.move_on_at(deadline) as scope:
                await trio.lowlevel.wait_readable(fd)
            if scope.cancelled_caught:
                raise trio.TooSlowError
