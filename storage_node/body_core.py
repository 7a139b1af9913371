"""What a PUT body must match before it may become a ``.data`` (pure).

Two ways a replica learns its body's ETag (BACKEND_API.md, "Objects"):

- *node-hashed* (the default): the node computes MD5 and the chunk
  checksums of what it received; the ETag is its own MD5.
- *proxy-hashed* (``X-Backend-Obj-Trailer: yes``, chunked body): the proxy
  hashed the client's body once and sends ``X-Backend-Obj-Etag`` (MD5 hex)
  and ``X-Backend-Obj-Root`` (the root of the chunk checksums,
  ``common.bodyhash``) in the body's trailer. The node computes only the
  chunk checksums (it stores those digests anyway) and takes the proxy's
  MD5 only when its own root equals
  the proxy's: equal roots prove it holds exactly the bytes the proxy hashed
  (invariant 3: every replica proves its bytes). A missing or malformed
  trailer is 400, a different root 422; both leave nothing behind
  (invariant 5). ``X-Backend-Obj-Content-Length`` carries the client's
  Content-Length, which chunked framing hides: the node reserves space by
  it and refuses a body of another size (499, as a short body).

Then, either way, a client ``ETag`` header must equal the ETag (422).

Which chunk checksum: ``X-Backend-Obj-Checksum`` names it (``xxh3-128`` or
``blake3``; another name is 400). Without the header a proxy-hashed body is
BLAKE3 (what proxies of earlier versions computed, so a rolling upgrade
keeps working) and a node-hashed one gets ``DEFAULT_CHECKSUM``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.bodyhash import (
    BLAKE3,
    CHECKSUM,
    DECLARED_LENGTH,
    DEFAULT_CHECKSUM,
    PROXY_HASHED,
    TRAILER_ETAG,
    TRAILER_ROOT,
    UnknownChecksum,
    checksum_named,
)
from storage_node.object_core import HeaderGetter, ObjectError

_MD5_HEX = re.compile(r"[0-9a-f]{32}")
_ROOT_HEX = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class BodyFingerprint:
    """A proxy's fingerprint of the body it sent (from the trailer)."""

    etag: str
    root: str


def is_proxy_hashed(headers: HeaderGetter) -> bool:
    return (headers.get(PROXY_HASHED) or "").strip().lower() == "yes"


def body_checksum(headers: HeaderGetter, proxy_hashed: bool) -> str:
    """The chunk checksum to compute over the body (module docstring); 400
    for a name this node does not know."""
    name = (headers.get(CHECKSUM) or "").strip().lower()
    if not name:
        return BLAKE3 if proxy_hashed else DEFAULT_CHECKSUM
    try:
        return checksum_named(name)
    except UnknownChecksum as exc:
        raise ObjectError(400, f"X-Backend-Obj-Checksum: {exc}") from exc


def declared_length(headers: HeaderGetter, content_length: int | None) -> int | None:
    """The body's size as announced: Content-Length, else (chunked)
    ``X-Backend-Obj-Content-Length``; None when unknown. 400 if malformed."""
    if content_length is not None:
        return content_length
    v = headers.get(DECLARED_LENGTH)
    if v is None:
        return None
    v = v.strip()
    if not v.isdigit():
        raise ObjectError(400, f"Invalid X-Backend-Obj-Content-Length: {v!r}")
    return int(v)


def proxy_fingerprint(trailers: HeaderGetter) -> BodyFingerprint:
    """The trailer of a proxy-hashed body; 400 when it is missing or malformed."""
    etag = (trailers.get(TRAILER_ETAG) or "").strip().lower()
    root = (trailers.get(TRAILER_ROOT) or "").strip().lower()
    if not _MD5_HEX.fullmatch(etag) or not _ROOT_HEX.fullmatch(root):
        raise ObjectError(400, "X-Backend-Obj-Trailer: yes needs X-Backend-Obj-Etag (MD5 hex) and "
                               "X-Backend-Obj-Root (hex) in the body's trailer")
    return BodyFingerprint(etag, root)


def accepted_etag(own_md5: str, own_root: str, proxied: BodyFingerprint | None, expected: str | None) -> str:
    """The ETag this replica may store, or ``ObjectError(422)``.

    ``own_md5`` is "" when the node did not compute MD5 (proxy-hashed)."""
    if proxied is not None:
        if own_root != proxied.root:
            raise ObjectError(422, "Unprocessable Entity: the body received does not match the checksum "
                                   f"root the proxy computed ({proxied.root})")
        etag = proxied.etag
    else:
        etag = own_md5
    if expected and expected.strip().strip('"').lower() != etag:
        raise ObjectError(422, f"Unprocessable Entity: ETag {expected} does not match body MD5 {etag}")
    return etag
