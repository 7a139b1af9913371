"""The proxy-hashed PUT rules (storage_node.body_core) and the shared body
fingerprint (common.bodyhash): a node that hashes only BLAKE3 accepts the
proxy's MD5 exactly when it received the bytes the proxy hashed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.bodyhash import CHUNK_SIZE, ChunkHasher, root_hash
from storage_node.body_core import (
    BodyFingerprint,
    accepted_etag,
    declared_length,
    is_proxy_hashed,
    proxy_fingerprint,
)
from storage_node.object_core import ObjectError


def _fingerprint(chunks: list[bytes], md5: bool) -> tuple[str, str]:
    h = ChunkHasher(md5=md5)
    for c in chunks:
        h.update(c)
    etag, digests = h.finish()
    return etag, root_hash(digests, h.size)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(st.binary(max_size=4000), st.lists(st.integers(0, 4000), max_size=6), st.lists(st.integers(0, 4000), max_size=6))
def test_proxy_and_node_agree_on_any_split(data, proxy_cuts, node_cuts):
    etag, proot = _fingerprint(_split(data, proxy_cuts), md5=True)
    none, nroot = _fingerprint(_split(data, node_cuts), md5=False)
    assert etag == hashlib.md5(data).hexdigest() and none == ""
    assert accepted_etag("", nroot, BodyFingerprint(etag, proot), None) == etag
    assert accepted_etag("", nroot, BodyFingerprint(etag, proot), f'"{etag.upper()}"') == etag


@given(st.binary(min_size=1, max_size=3000), st.integers(0, 2999), st.integers(1, 255))
def test_one_flipped_byte_is_refused(data, at, bit):
    at %= len(data)
    bad = data[:at] + bytes([data[at] ^ bit]) + data[at + 1:]
    etag, proot = _fingerprint([data], md5=True)
    _, nroot = _fingerprint([bad], md5=False)
    with pytest.raises(ObjectError) as e:
        accepted_etag("", nroot, BodyFingerprint(etag, proot), None)
    assert e.value.status == 422


def test_root_covers_the_size_and_chunk_boundaries():
    # same digests list shape, other size: another root (no extension by zero bytes)
    a = _fingerprint([b"\0" * CHUNK_SIZE], md5=False)[1]
    b = _fingerprint([b"\0" * (CHUNK_SIZE + 1)], md5=False)[1]
    c = _fingerprint([b""], md5=False)[1]
    assert len({a, b, c}) == 3


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
    for bad in ({}, {"x-backend-obj-etag": "a" * 32}, {**good, "x-backend-obj-root": "b" * 63},
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
