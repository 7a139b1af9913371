"""The proxy-hashed PUT rules (storage_node.body_core) and the shared body
fingerprint (common.bodyhash): a node that computes only the chunk checksums
accepts the proxy's MD5 exactly when it received the bytes the proxy hashed,
with either chunk checksum."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.bodyhash import (
    BLAKE3,
    CHECKSUMS,
    CHUNK_SIZE,
    DEFAULT_CHECKSUM,
    XXH3_128,
    ChunkHasher,
    root_hash,
)
from storage_node.body_core import (
    BodyFingerprint,
    accepted_etag,
    body_checksum,
    declared_length,
    is_proxy_hashed,
    proxy_fingerprint,
)
from storage_node.object_core import ObjectError


def _fingerprint(chunks: list[bytes], md5: bool, checksum: str = DEFAULT_CHECKSUM) -> tuple[str, str]:
    h = ChunkHasher(md5=md5, checksum=checksum)
    for c in chunks:
        h.update(c)
    etag, digests = h.finish()
    return etag, root_hash(checksum, digests, h.size)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(st.binary(max_size=4000), st.lists(st.integers(0, 4000), max_size=6), st.lists(st.integers(0, 4000), max_size=6),
       st.sampled_from(sorted(CHECKSUMS)))
def test_proxy_and_node_agree_on_any_split(data, proxy_cuts, node_cuts, checksum):
    etag, proot = _fingerprint(_split(data, proxy_cuts), md5=True, checksum=checksum)
    none, nroot = _fingerprint(_split(data, node_cuts), md5=False, checksum=checksum)
    assert etag == hashlib.md5(data).hexdigest() and none == ""
    assert accepted_etag("", nroot, BodyFingerprint(etag, proot), None) == etag
    assert accepted_etag("", nroot, BodyFingerprint(etag, proot), f'"{etag.upper()}"') == etag


@given(st.binary(min_size=1, max_size=3000), st.integers(0, 2999), st.integers(1, 255),
       st.sampled_from(sorted(CHECKSUMS)))
def test_one_flipped_byte_is_refused(data, at, bit, checksum):
    at %= len(data)
    bad = data[:at] + bytes([data[at] ^ bit]) + data[at + 1:]
    etag, proot = _fingerprint([data], md5=True, checksum=checksum)
    _, nroot = _fingerprint([bad], md5=False, checksum=checksum)
    with pytest.raises(ObjectError) as e:
        accepted_etag("", nroot, BodyFingerprint(etag, proot), None)
    assert e.value.status == 422


@pytest.mark.parametrize("checksum", sorted(CHECKSUMS))
def test_root_covers_the_size_and_chunk_boundaries(checksum):
    # same digests list shape, other size: another root (no extension by zero bytes)
    a = _fingerprint([b"\0" * CHUNK_SIZE], md5=False, checksum=checksum)[1]
    b = _fingerprint([b"\0" * (CHUNK_SIZE + 1)], md5=False, checksum=checksum)[1]
    c = _fingerprint([b""], md5=False, checksum=checksum)[1]
    assert len({a, b, c}) == 3


def test_a_root_of_one_checksum_never_passes_for_the_other():
    """A node that computed xxh3-128 refuses a proxy's BLAKE3 root of the
    same bytes (and the reverse): the roots differ even in length."""
    data = bytes(range(256)) * 100
    etag, b3 = _fingerprint([data], md5=True, checksum=BLAKE3)
    _, x3 = _fingerprint([data], md5=False, checksum=XXH3_128)
    assert (len(b3), len(x3)) == (64, 32)
    for own, proxied in ((x3, b3), (b3, x3)):
        with pytest.raises(ObjectError) as e:
            accepted_etag("", own, BodyFingerprint(etag, proxied), None)
        assert e.value.status == 422


def test_the_checksum_header_names_the_chunk_checksum():
    assert body_checksum({"x-backend-obj-checksum": " XXH3-128 "}, True) == XXH3_128
    assert body_checksum({"x-backend-obj-checksum": "blake3"}, False) == BLAKE3
    # no header: a proxy of an earlier version hashed BLAKE3; a node-hashed body gets the default
    assert body_checksum({}, True) == BLAKE3
    assert body_checksum({}, False) == DEFAULT_CHECKSUM == XXH3_128
    with pytest.raises(ObjectError) as e:
        body_checksum({"x-backend-obj-checksum": "crc32"}, True)
    assert e.value.status == 400 and "crc32" in str(e.value)


def test_node_hashed_put_checks_the_client_etag():
    md5 = hashlib.md5(b"abc").hexdigest()
    assert accepted_etag(md5, "r", None, None) == md5
    assert accepted_etag(md5, "r", None, md5) == md5
    with pytest.raises(ObjectError) as e:
        accepted_etag(md5, "r", None, "0" * 32)
    assert e.value.status == 422
    with pytest.raises(ObjectError) as e:  # a client ETag checked against the proxy's MD5 too
        accepted_etag("", "r", BodyFingerprint(md5, "r"), "0" * 32)
    assert e.value.status == 422


def test_trailer_and_header_parsing():
    good = {"x-backend-obj-etag": "A" * 32, "x-backend-obj-root": "b" * 64}
    assert proxy_fingerprint(good) == BodyFingerprint("a" * 32, "b" * 64)
    assert proxy_fingerprint({**good, "x-backend-obj-root": "C" * 32}) == BodyFingerprint("a" * 32, "c" * 32)
    for bad in ({}, {"x-backend-obj-etag": "a" * 32}, {**good, "x-backend-obj-root": "b" * 63},
                {**good, "x-backend-obj-root": "b" * 48},
                {**good, "x-backend-obj-etag": "g" * 32}):
        with pytest.raises(ObjectError) as e:
            proxy_fingerprint(bad)
        assert e.value.status == 400
    assert is_proxy_hashed({"x-backend-obj-trailer": " Yes "}) and not is_proxy_hashed({})
    assert declared_length({}, 12) == 12
    assert declared_length({"x-backend-obj-content-length": "7"}, None) == 7
    assert declared_length({}, None) is None
    with pytest.raises(ObjectError):
        declared_length({"x-backend-obj-content-length": "-1"}, None)
