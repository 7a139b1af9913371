"""Object body fingerprints, shared by the proxy and the storage nodes (pure).

A body has two fingerprints:

- the MD5 hex digest: the ``ETag`` Swift and S3 clients check;
- the *root* of its chunk checksums: ``H(d_0 || d_1 || ... || size as u64
  LE)`` where ``d_i`` is ``H`` of the ``i``-th ``CHUNK_SIZE`` slice (an empty
  body has one digest, of ``b""``). A storage node keeps the ``d_i`` in the
  ``.data`` trailer to verify every chunk it serves (invariant 3); the root
  names the replica's content.

``H``, the chunk checksum, is named per body (``CHECKSUMS``): ``xxh3-128``
for everything written now (``DEFAULT_CHECKSUM``), ``blake3`` for bodies
written by earlier versions, which stay readable and replicable as they are.
Why xxh3-128: the checksum guards against corruption on the wire and on the
disk, never against an adversary (whoever could forge a body on the way
could as well forge the trailer beside it), so it needs a wide,
well-mixed digest, not a cryptographic one; and it runs four times per PUT
(the proxy, then every replica). Here BLAKE3 takes ~0.6 ms per 4 MiB in a
tight loop and ~1.2 ms in place, xxh3-128 ~0.1 ms: a 4 MiB PUT cost the
cluster ~41 instead of ~49 ms of CPU (docs/DECISIONS.md). 128 bits leave a
random corruption unnoticed with probability 2^-128, as BLAKE3 truncated to
128 bits would.

Why both fingerprints travel together: MD5 runs at ~0.7 GB/s here. On a
proxied PUT the proxy computes both once and sends them in a chunked
trailer; each replica computes only the chunk checksums (it needs them
anyway) and accepts the proxy's MD5 only when its own root equals the
proxy's root, so every replica still proves that its bytes are the bytes
that were hashed (storage_node/BACKEND_API.md, "Proxy-hashed PUT").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import blake3
import xxhash

CHUNK_SIZE = 1 << 20

# The proxy-hashed PUT on the backend API: request headers, then trailer fields.
PROXY_HASHED = "x-backend-obj-trailer"  # "yes": the body is chunked and ends with the trailer below
DECLARED_LENGTH = "x-backend-obj-content-length"  # the client's Content-Length, hidden by chunking
TRAILER_ETAG = "x-backend-obj-etag"  # MD5 hex of the body
TRAILER_ROOT = "x-backend-obj-root"  # root of the body's chunk checksums (``root_hash``)
CHECKSUM = "x-backend-obj-checksum"  # request header: the chunk checksum's name (absent: blake3)

BLAKE3 = "blake3"
XXH3_128 = "xxh3-128"
# name -> (a new hasher with update() and digest(), digest bytes)
CHECKSUMS: dict[str, tuple[Callable[..., Any], int]] = {
    BLAKE3: (blake3.blake3, 32),
    XXH3_128: (xxhash.xxh3_128, 16),
}
DEFAULT_CHECKSUM = XXH3_128


class UnknownChecksum(ValueError):
    pass


def checksum_named(name: object) -> str:
    """``name`` when it is a known chunk checksum, else ``UnknownChecksum``
    (anything else, from a header or a peer's JSON)."""
    if not isinstance(name, str) or name not in CHECKSUMS:
        raise UnknownChecksum(f"unknown chunk checksum {name!r} (known: {', '.join(sorted(CHECKSUMS))})")
    return name


def digest_size(checksum: str) -> int:
    return CHECKSUMS[checksum][1]


def chunk_digest(checksum: str, data: bytes | bytearray | memoryview) -> bytes:
    digest: bytes = CHECKSUMS[checksum][0](data).digest()
    return digest


class ChunkHasher:
    """MD5 (unless ``md5=False``) and the chunk checksums (``checksum``) over
    a body fed in any pieces. Feeding the same bytes in any split gives the
    same result (tested byte by byte)."""

    __slots__ = ("_md5", "_new", "_cur", "_cur_len", "_digests", "size", "checksum")

    def __init__(self, md5: bool = True, checksum: str = DEFAULT_CHECKSUM) -> None:
        self._md5 = hashlib.md5() if md5 else None
        self.checksum = checksum
        self._new = CHECKSUMS[checksum][0]
        self._cur = self._new()
        self._cur_len = 0
        self._digests: list[bytes] = []
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        mv = memoryview(data)
        if self._md5 is not None:
            self._md5.update(mv)
        self.size += len(mv)
        while len(mv):
            take = min(len(mv), CHUNK_SIZE - self._cur_len)
            self._cur.update(mv[:take])
            self._cur_len += take
            mv = mv[take:]
            if self._cur_len == CHUNK_SIZE:
                self._digests.append(self._cur.digest())
                self._cur = self._new()
                self._cur_len = 0

    def finish(self) -> tuple[str, list[bytes]]:
        """``(md5 hex or "" without MD5, chunk digests)``; call once."""
        if self._cur_len or not self._digests:
            self._digests.append(self._cur.digest())
        return (self._md5.hexdigest() if self._md5 is not None else ""), self._digests


def root_hash(checksum: str, digests: list[bytes], size: int) -> str:
    """The root (hex) of a body's chunk digests under ``checksum``."""
    root: str = CHECKSUMS[checksum][0](b"".join(digests) + size.to_bytes(8, "little")).hexdigest()
    return root


def n_chunks(size: int) -> int:
    return max(1, -(-size // CHUNK_SIZE))
