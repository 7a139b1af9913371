"""Per-replica integrity: chunk checksums and the ``.data`` trailer (pure).

A ``.data`` file is ``[body][digests][meta json][footer]``:

- ``body``: the object's bytes, so ``Range`` reads are plain offsets;
- ``digests``: one checksum per ``CHUNK_SIZE`` slice of the body (the last
  may be short; an empty body has one digest of ``b""``), so a reader
  verifies exactly the chunks it serves, before serving them (invariant 3),
  and memory stays bounded by one chunk (invariant 4);
- ``meta json``: the object's name and persisted headers, so the files alone
  rebuild the LMDB index (the index is a cache of the files, never the only
  copy of anything);
- ``footer``: ``<u64 json_len><u64 n_digests><8-byte magic>`` little-endian.
  The magic names the format and with it the chunk checksum
  (``common.bodyhash``): ``RSTKTRL2`` xxh3-128 (16-byte digests, written
  now), ``RSTKTRL1`` BLAKE3 (32-byte digests, written by earlier versions;
  still read, verified and replicated as they are).

One file, one fsync, one rename: data and metadata become visible together
(invariant 1/5). The root hash (``H(digests || size)``) names the
replica's content for the replicator and the auditor.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from common.bodyhash import BLAKE3, XXH3_128, chunk_digest, digest_size, n_chunks

MAGICS = {b"RSTKTRL1": BLAKE3, b"RSTKTRL2": XXH3_128}  # trailer format -> chunk checksum
_MAGIC_OF = {c: m for m, c in MAGICS.items()}
FOOTER = struct.Struct("<QQ8s")


class CorruptData(Exception):
    """Bytes on disk that do not match their checksum (quarantine them)."""

    status = 500


def encode_trailer(meta: dict[str, Any], digests: list[bytes], checksum: str) -> bytes:
    """The trailer of a body whose chunk ``digests`` are ``checksum``'s."""
    if any(len(d) != digest_size(checksum) for d in digests):
        raise ValueError(f"digests are not {checksum} digests")
    js = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    return b"".join(digests) + js + FOOTER.pack(len(js), len(digests), _MAGIC_OF[checksum])


@dataclass(frozen=True, slots=True)
class Footer:
    body_size: int
    json_len: int
    n_digests: int
    checksum: str  # the chunk checksum's name (``common.bodyhash.CHECKSUMS``)

    @property
    def digest_size(self) -> int:
        return digest_size(self.checksum)

    def split_digests(self, raw: bytes) -> list[bytes]:
        """The ``n_digests`` digests packed in ``raw``."""
        size = self.digest_size
        return [raw[i * size : (i + 1) * size] for i in range(self.n_digests)]


@dataclass(frozen=True, slots=True)
class Trailer:
    meta: dict[str, Any]
    digests: list[bytes]
    body_size: int
    checksum: str


def decode_footer(footer: bytes, file_size: int) -> Footer:
    """The footer: the file's last ``FOOTER.size`` bytes."""
    if len(footer) != FOOTER.size:
        raise CorruptData("short footer")
    json_len, n, magic = FOOTER.unpack(footer)
    checksum = MAGICS.get(magic)
    if checksum is None:
        raise CorruptData("bad trailer magic")
    body = file_size - FOOTER.size - json_len - n * digest_size(checksum)
    if body < 0 or n != n_chunks(body):
        raise CorruptData("trailer sizes do not add up")
    return Footer(body, json_len, n, checksum)


def decode_trailer(tail: bytes, file_size: int) -> Trailer:
    """Parse a trailer from ``tail`` = the file's last bytes (at least the
    whole trailer)."""
    f = decode_footer(tail[-FOOTER.size :], file_size)
    packed = f.n_digests * f.digest_size
    need = packed + f.json_len + FOOTER.size
    if len(tail) < need:
        raise CorruptData("tail shorter than the trailer")
    t = tail[len(tail) - need :]
    try:
        meta = json.loads(t[packed : packed + f.json_len])
    except ValueError as exc:
        raise CorruptData("trailer metadata is not JSON") from exc
    if not isinstance(meta, dict):
        raise CorruptData("trailer metadata is not an object")
    return Trailer(meta, f.split_digests(t[:packed]), f.body_size, f.checksum)


def verify_chunk(index: int, data: bytes | memoryview, digests: list[bytes], checksum: str) -> None:
    """Raise ``CorruptData`` unless ``data`` is exactly chunk ``index``."""
    if index >= len(digests) or chunk_digest(checksum, data) != digests[index]:
        raise CorruptData(f"chunk {index} does not match its {checksum} checksum")
