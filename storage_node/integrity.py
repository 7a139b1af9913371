"""Per-replica integrity: chunked BLAKE3 and the ``.data`` trailer (pure).

A ``.data`` file is ``[body][digests][meta json][footer]``:

- ``body``: the object's bytes, so ``Range`` reads are plain offsets;
- ``digests``: one 32-byte BLAKE3 per ``CHUNK_SIZE`` slice of the body (the
  last may be short; an empty body has one digest of ``b""``), so a reader
  verifies exactly the chunks it serves, before serving them (invariant 3),
  and memory stays bounded by one chunk (invariant 4);
- ``meta json``: the object's name and persisted headers, so the files alone
  rebuild the LMDB index (the index is a cache of the files, never the only
  copy of anything);
- ``footer``: ``<u64 json_len><u64 n_digests><8-byte MAGIC>`` little-endian.

One file, one fsync, one rename: data and metadata become visible together
(invariant 1/5). The root hash (``blake3(digests || size)``) names the
replica's content for the replicator and the auditor.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import blake3

from common.bodyhash import n_chunks

DIGEST_SIZE = 32
MAGIC = b"RSTKTRL1"
FOOTER = struct.Struct("<QQ8s")


class CorruptData(Exception):
    """Bytes on disk that do not match their checksum (quarantine them)."""

    status = 500


def encode_trailer(meta: dict[str, Any], digests: list[bytes]) -> bytes:
    js = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    return b"".join(digests) + js + FOOTER.pack(len(js), len(digests), MAGIC)


@dataclass(frozen=True, slots=True)
class Trailer:
    meta: dict[str, Any]
    digests: list[bytes]
    body_size: int


def decode_footer(footer: bytes, file_size: int) -> tuple[int, int, int]:
    """``(body_size, json_len, n_digests)`` from the last ``FOOTER.size`` bytes."""
    if len(footer) != FOOTER.size:
        raise CorruptData("short footer")
    json_len, n, magic = FOOTER.unpack(footer)
    if magic != MAGIC:
        raise CorruptData("bad trailer magic")
    body = file_size - FOOTER.size - json_len - n * DIGEST_SIZE
    if body < 0 or n != n_chunks(body):
        raise CorruptData("trailer sizes do not add up")
    return body, json_len, n


def decode_trailer(tail: bytes, file_size: int) -> Trailer:
    """Parse a trailer from ``tail`` = the file's last bytes (at least the
    whole trailer)."""
    body, json_len, n = decode_footer(tail[-FOOTER.size :], file_size)
    need = n * DIGEST_SIZE + json_len + FOOTER.size
    if len(tail) < need:
        raise CorruptData("tail shorter than the trailer")
    t = tail[len(tail) - need :]
    digests = [t[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] for i in range(n)]
    try:
        meta = json.loads(t[n * DIGEST_SIZE : n * DIGEST_SIZE + json_len])
    except ValueError as exc:
        raise CorruptData("trailer metadata is not JSON") from exc
    if not isinstance(meta, dict):
        raise CorruptData("trailer metadata is not an object")
    return Trailer(meta, digests, body)


def verify_chunk(index: int, data: bytes | memoryview, digests: list[bytes]) -> None:
    """Raise ``CorruptData`` unless ``data`` is exactly chunk ``index``."""
    if index >= len(digests) or blake3.blake3(data).digest() != digests[index]:
        raise CorruptData(f"chunk {index} does not match its BLAKE3")
