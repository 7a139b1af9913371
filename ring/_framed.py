"""The framing both ring files and builder files use, and their atomic write.

Layout: ``<8s magic><u16 version><u16 reserved><u32 meta length>``, the JSON
metadata, zero padding to 8 bytes, the payload (numpy arrays, each padded to
8 bytes), then a 32-byte BLAKE3 of everything before it. A torn or corrupt
file fails the checksum and is refused whole, never half-read.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Any

import blake3

HEADER = struct.Struct("<8sHHI")
CHECKSUM_LEN = 32


def pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def frame(magic: bytes, version: int, meta: dict[str, Any], payload: list[bytes]) -> bytes:
    """Header, metadata and payload parts (each padded), plus the checksum."""
    meta_bytes = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    body = b"".join([pad8(HEADER.pack(magic, version, 0, len(meta_bytes)) + meta_bytes),
                     *(pad8(p) for p in payload)])
    return body + blake3.blake3(body).digest()


def unframe(blob: bytes, magic: bytes, version: int, error: type[Exception], name: str,
            kind: str) -> tuple[Any, bytes, int]:
    """Check magic, version and checksum; return (metadata, body, payload start).

    Raises ``error`` with a one-line message naming ``name`` otherwise."""
    if len(blob) < HEADER.size + CHECKSUM_LEN:
        raise error(f"{name}: too short to be a {kind} ({len(blob)} bytes)")
    got_magic, got_version, _reserved, meta_len = HEADER.unpack_from(blob)
    if got_magic != magic:
        raise error(f"{name}: not a ringstack {kind} (bad magic)")
    if got_version != version:
        raise error(f"{name}: unsupported {kind} format version {got_version} (this build reads {version})")
    body, checksum = blob[:-CHECKSUM_LEN], blob[-CHECKSUM_LEN:]
    if blake3.blake3(body).digest() != checksum:
        raise error(f"{name}: checksum mismatch (file is corrupt or truncated)")
    try:
        meta = json.loads(body[HEADER.size : HEADER.size + meta_len])
    except ValueError as exc:
        raise error(f"{name}: bad metadata ({exc})") from None
    start = HEADER.size + meta_len
    return meta, body, start + (-start % 8)


def atomic_write(path: str | os.PathLike[str], blob: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``blob``: temp file in the same directory, fsync,
    rename, fsync the directory. On any failure the old file is untouched and
    the temp file removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # servers of other users read rings
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
