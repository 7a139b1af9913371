"""The suffix sync stream, sans I/O: how whole suffixes travel between nodes.

``SUFFIXES`` answers with, and ``MERGE`` accepts, one stream::

    b"RSTKSYNC1\\n"
    repeated:  <u32 big-endian n> <n bytes of JSON header> <header["size"] bytes of the file>
    end:       <u32 0>

The JSON header is ``{"hash": <object hash>, "file": "<ts>.data|.ts|.meta",
"size": <file bytes>, "body": <body bytes, .data only>, "checksum": <the
.data's chunk checksum, common.bodyhash; absent: blake3, as senders of
earlier versions>}``. Files are sent
whole (a ``.data`` with its trailer), so the receiver verifies every chunk's
checksum against the trailer before the file becomes visible (invariant 3) and
rebuilds its index row from the files, exactly as for a local PUT. A stream
that ends before the end marker is incomplete: what arrived whole is kept
(each file is independently valid), the partial file is dropped.

``SyncDecoder`` accepts the bytes in any split (tested byte by byte).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from common.bodyhash import BLAKE3, UnknownChecksum, checksum_named

MAGIC = b"RSTKSYNC1\n"
_LEN = struct.Struct(">I")
MAX_HEADER = 64 * 1024
_FILE_RE = re.compile(r"^[0-9]{10}\.[0-9]{5}(_[0-9a-f]{16})?\.(data|ts|meta)$")
_HASH_RE = re.compile(r"^[0-9a-f]{32}$")
END = _LEN.pack(0)


class SyncError(ValueError):
    status = 400


@dataclass(frozen=True, slots=True)
class FileStart:
    hash: str
    file: str
    size: int
    body: int  # body bytes of a .data file (0 otherwise)
    checksum: str = BLAKE3  # a .data's chunk checksum (what its trailer's magic says)


@dataclass(frozen=True, slots=True)
class FileData:
    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd:
    pass


@dataclass(frozen=True, slots=True)
class StreamEnd:
    pass


Event = FileStart | FileData | FileEnd | StreamEnd


def file_header(name_hash: str, filename: str, size: int, body: int = 0, checksum: str | None = None) -> bytes:
    h: dict[str, Any] = {"hash": name_hash, "file": filename, "size": size, "body": body}
    if checksum is not None:
        h["checksum"] = checksum
    js = json.dumps(h, separators=(",", ":")).encode()
    return _LEN.pack(len(js)) + js


def _validate(h: Any) -> FileStart:
    if not isinstance(h, dict):
        raise SyncError("file header is not an object")
    name_hash, fname, size, body = h.get("hash"), h.get("file"), h.get("size"), h.get("body", 0)
    if not isinstance(name_hash, str) or not _HASH_RE.match(name_hash):
        raise SyncError(f"bad object hash {name_hash!r}")
    if not isinstance(fname, str) or not _FILE_RE.match(fname):
        raise SyncError(f"bad file name {fname!r}")
    if not isinstance(size, int) or size < 0 or not isinstance(body, int) or not 0 <= body <= size:
        raise SyncError("bad sizes in file header")
    try:
        checksum = checksum_named(h.get("checksum", BLAKE3))
    except UnknownChecksum as exc:
        raise SyncError(str(exc)) from exc
    return FileStart(name_hash, fname, size, body, checksum)


class SyncDecoder:
    """Incremental parser: ``feed(bytes) -> [events]``, then ``close()``."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = "magic"
        self._need = len(MAGIC)
        self._left = 0

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        if self._state == "done":
            if data:
                raise SyncError("bytes after the end of the stream")
            return out
        self._buf += data
        while True:
            if self._state == "body":
                if not self._buf:
                    break
                take = min(self._left, len(self._buf))
                out.append(FileData(bytes(self._buf[:take])))
                del self._buf[:take]
                self._left -= take
                if self._left == 0:
                    out.append(FileEnd())
                    self._state, self._need = "len", _LEN.size
                continue
            if len(self._buf) < self._need:
                break
            chunk = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            if self._state == "magic":
                if chunk != MAGIC:
                    raise SyncError("not a ringstack sync stream")
                self._state, self._need = "len", _LEN.size
            elif self._state == "len":
                (n,) = _LEN.unpack(chunk)
                if n == 0:
                    self._state = "done"
                    out.append(StreamEnd())
                    if self._buf:
                        raise SyncError("bytes after the end of the stream")
                    break
                if n > MAX_HEADER:
                    raise SyncError("file header too large")
                self._state, self._need = "header", n
            else:  # header
                try:
                    start = _validate(json.loads(chunk))
                except ValueError as exc:
                    raise SyncError(f"bad file header: {exc}") from exc
                out.append(start)
                if start.size == 0:
                    out.append(FileEnd())
                    self._state, self._need = "len", _LEN.size
                else:
                    self._state, self._left = "body", start.size
        return out

    @property
    def complete(self) -> bool:
        return self._state == "done"
