"""One object's files on one drive: write, settle, read, quarantine.

Blocking code, called from worker threads under the drive's limiter, through
an injected ``DriveLayer``. Contract:

- ``ObjectWriter``: body -> ``<drive>/tmp/<unique>.tmp`` (MD5 + chunk checksums in
  the same pass), trailer, fsync, then ``commit`` renames into the hash
  directory under the partition and directory locks, fsyncs the directory
  and ``settle``s (``DriveLayer.commit_temp``).
  ``abort`` removes the temp file; a crash leaves only a temp file, never a
  visible partial object (invariants 1, 5).
- ``settle``: list the hash directory, apply ``choose_files``, unlink the
  obsolete files and compute the index row from what is left. The row is
  derived from the files, so the files alone can always rebuild the index.
- ``ObjectReader``: opens the ``.data`` file, checks the trailer against the
  row, and hands out verified chunks; a mismatch raises ``CorruptData`` and the
  caller quarantines (invariant 3).
- ``quarantine``: moves the hash directory to
  ``<drive>/quarantined/objects/<hash>``; the caller drops the row, so the
  object counts as missing and the suffix hash changes for the replicator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.bodyhash import CHUNK_SIZE, DEFAULT_CHECKSUM, ChunkHasher, root_hash
from common.timestamp import Timestamp
from storage_node.body_core import BodyFingerprint, accepted_etag
from storage_node.drive import DriveLayer, ReadHandle, TempFile
from storage_node.integrity import (
    FOOTER,
    CorruptData,
    decode_footer,
    decode_trailer,
    encode_trailer,
    verify_chunk,
)
from storage_node.object_core import (
    DATA,
    META,
    TOMB,
    FileSet,
    ObjectError,
    ObjectRecord,
    choose_files,
    record_from_files,
)
from storage_node.paths import object_dir

SMALL_READ = 2 * CHUNK_SIZE


@dataclass(frozen=True, slots=True)
class ObjectLocation:
    root: Path
    partition: int
    hash: str
    name: str
    dir: Path = field(init=False, compare=False)  # <root>/objects/<part>/<suffix>/<hash>

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", self.root / object_dir(self.partition, self.hash))


def _read_data_meta(drives: DriveLayer, path: Path) -> dict[str, Any]:
    h = drives.open_read(path)
    try:
        footer = h.read_at(h.size - FOOTER.size, FOOTER.size) if h.size >= FOOTER.size else b""
        json_len = decode_footer(footer, h.size).json_len
        raw = h.read_at(h.size - FOOTER.size - json_len, json_len)
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise CorruptData("trailer metadata is not an object")
        return meta
    except ValueError as exc:
        raise CorruptData(f"unreadable trailer in {path}") from exc
    finally:
        h.close()


def settle(drives: DriveLayer, loc: ObjectLocation, known: dict[str, dict[str, Any]] | None = None,
           names: list[str] | None = None) -> ObjectRecord:
    """Apply the winner rules to the hash directory (call under ``lock_dir``);
    ``names``: its listing when the caller already has it (``commit_temp``)."""
    fs: FileSet = choose_files(drives.listdir(loc.dir) if names is None else names)
    for f in fs.obsolete:
        drives.unlink(loc.dir / f)
    known = known or {}
    data_meta = post_meta = None
    if fs.data:
        data_meta = known.get(fs.data) or _read_data_meta(drives, loc.dir / fs.data)
    if fs.meta:
        post_meta = known.get(fs.meta) or json.loads(drives.read_bytes(loc.dir / fs.meta))
    name = loc.name
    if not name and fs.tomb:
        name = json.loads(drives.read_bytes(loc.dir / fs.tomb) or b"{}").get("name", "")
    return record_from_files(fs, data_meta, post_meta, name)


class ObjectWriter:
    """Streams one PUT body to a temp file; not thread-safe, one call at a time."""

    def __init__(self, drives: DriveLayer, root: Path, md5: bool = True, direct: bool = False,
                 checksum: str = DEFAULT_CHECKSUM) -> None:
        self.drives = drives
        self.tmp: TempFile = drives.open_temp(root, direct)
        # no MD5 when the proxy hashed the body; the chunk checksum is the one it named
        self.hasher = ChunkHasher(md5=md5, checksum=checksum)
        self.meta: dict[str, Any] = {}
        self._lent: memoryview | None = None
        self.lends = self.tmp.space() is not None  # bytes may be read straight into its buffer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.hasher.update(data)
        self.tmp.write(data)

    def space(self) -> memoryview:
        """Where the body's next bytes may be read straight in (when
        ``lends``); ``filled(n)`` hashes and takes the first n of them."""
        lent = self.tmp.space()
        assert lent is not None, "the temp file lends no buffer"
        self._lent = lent
        return lent

    def filled(self, n: int) -> None:
        assert self._lent is not None
        self.hasher.update(self._lent[:n])
        self._lent = None
        self.tmp.filled(n)

    def finish(self, name: str, headers: dict[str, str], expected_etag: str | None,
               proxied: BodyFingerprint | None = None) -> dict[str, Any]:
        """Write the trailer and fsync; 422 (temp file removed) when the body
        does not match the client's ETag or the proxy's fingerprint
        (``body_core.accepted_etag``)."""
        md5, digests = self.hasher.finish()
        root = root_hash(self.hasher.checksum, digests, self.hasher.size)
        try:
            etag = accepted_etag(md5, root, proxied, expected_etag)
        except ObjectError:
            self.abort()
            raise
        self.meta = {"name": name, "size": self.hasher.size, "etag": etag, "root": root, "headers": headers}
        self.tmp.write(encode_trailer(self.meta, digests, self.hasher.checksum))
        self.tmp.fsync()
        return self.meta

    def commit(self, loc: ObjectLocation, ts: Timestamp) -> ObjectRecord:
        fname = ts.internal + DATA
        with self.drives.commit_temp(self.tmp, loc.root, loc.partition, loc.dir, fname) as names:
            return settle(self.drives, loc, {fname: self.meta}, names)

    def abort(self) -> None:
        self.tmp.abort()


def write_small(drives: DriveLayer, loc: ObjectLocation, ts: Timestamp, ext: str,
                payload: dict[str, Any]) -> ObjectRecord:
    """Write a tombstone (``.ts``) or POST metadata (``.meta``) file durably."""
    assert ext in (TOMB, META)
    tmp = drives.open_temp(loc.root)
    try:
        tmp.write(json.dumps(payload, separators=(",", ":")).encode())
        tmp.fsync()
        fname = ts.internal + ext
        with drives.commit_temp(tmp, loc.root, loc.partition, loc.dir, fname) as names:
            return settle(drives, loc, {fname: payload} if ext == META else None, names)
    except BaseException:
        tmp.abort()
        raise


class ObjectReader:
    """Verified reads of one ``.data`` file (thread-side)."""

    def __init__(self, drives: DriveLayer, path: Path, rec: ObjectRecord, full_check: bool = False) -> None:
        """``full_check`` (the auditor) also parses the trailer's metadata and
        compares it with the row; GETs only need the digests, which are
        checked against the row's root hash either way."""
        self.handle: ReadHandle = drives.open_read(path)
        self.size = rec.size
        self._cache: tuple[int, bytes] | None = None
        try:
            if full_check:
                size = self.handle.size
                if size < rec.size + FOOTER.size:
                    raise CorruptData(f"{path} is shorter than its body")
                tr = decode_trailer(self.handle.read_at(max(0, rec.size), size - rec.size), size)
                if tr.meta.get("etag") != rec.etag or tr.meta.get("size") != rec.size:
                    raise CorruptData(f"{path}: trailer metadata does not match its index row")
            if self.handle.size <= SMALL_READ:
                whole = self.handle.read_at(0, self.handle.size)
                f = decode_footer(whole[-FOOTER.size:], self.handle.size)
                raw = whole[f.body_size:f.body_size + f.n_digests * f.digest_size]
                self._whole = whole
            else:
                f = decode_footer(self.handle.read_at(self.handle.size - FOOTER.size, FOOTER.size), self.handle.size)
                raw = self.handle.read_at(f.body_size, f.n_digests * f.digest_size)
                self._whole = b""
            self.digests = f.split_digests(raw)
            self.checksum = f.checksum
            body_size = f.body_size
            if body_size != rec.size or root_hash(f.checksum, self.digests, body_size) != rec.root:
                raise CorruptData(f"{path} does not match its index row")
        except BaseException:
            self.handle.close()
            raise

    def has_chunk(self, i: int) -> bool:
        """True when chunk ``i`` is already read and verified (no I/O needed)."""
        return self._cache is not None and self._cache[0] == i

    def chunk(self, i: int) -> bytes:
        """Chunk ``i`` of the body, verified against its checksum."""
        if self._cache and self._cache[0] == i:
            return self._cache[1]
        start = i * CHUNK_SIZE
        n = min(CHUNK_SIZE, self.size - start)
        data = self._whole[start:start + n] if self._whole else self.handle.read_at(start, n)
        if len(data) != n:
            raise CorruptData(f"short read of chunk {i}")
        verify_chunk(i, data, self.digests, self.checksum)
        self._cache = (i, data)
        return data

    def read_range(self, start: int, end: int, limit: int = CHUNK_SIZE) -> bytes:
        """Verified bytes ``[start, min(end+1, start+limit))``, within one chunk."""
        i = start // CHUNK_SIZE
        data = self.chunk(i)
        off = start - i * CHUNK_SIZE
        stop = min(end + 1 - i * CHUNK_SIZE, off + limit, len(data))
        return data[off:stop]

    def close(self) -> None:
        self.handle.close()


def quarantine(drives: DriveLayer, loc: ObjectLocation) -> Path:
    dst = loc.root / "quarantined" / "objects" / loc.hash
    drives.move_dir(loc.dir, dst)
    return dst
