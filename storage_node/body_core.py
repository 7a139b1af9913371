"""What a PUT body must match before it may become a ``.data`` (pure).

Two ways a replica learns its body's ETag (BACKEND_API.md, "Objects"):

- *node-hashed* (the default): the node computes MD5 and chunked BLAKE3 of
  what it received; the ETag is its own MD5.
- *proxy-hashed* (``X-Backend-Obj-Trailer: yes``, chunked body): the proxy
  hashed the client's body once and sends ``X-Backend-Obj-Etag`` (MD5 hex)
  and ``X-Backend-Obj-Root`` (BLAKE3 root, ``common.bodyhash``) in the
  body's trailer. The node computes only the chunked BLAKE3 (it stores those
  digests anyway) and takes the proxy's MD5 only when its own root equals
  the proxy's: equal roots prove it holds exactly the bytes the proxy hashed
  (invariant 3: every replica proves its bytes). A missing or malformed
  trailer is 400, a different root 422; both leave nothing behind
  (invariant 5). ``X-Backend-Obj-Content-Length`` carries the client's
  Content-Length, which chunked framing hides: the node reserves space by
  it and refuses a body of another size (499, as a short body).

Then, either way, a client ``ETag`` header must equal the ETag (422).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.bodyhash import DECLARED_LENGTH, PROXY_HASHED, TRAILER_ETAG, TRAILER_ROOT
from storage_node.object_core import HeaderGetter, ObjectError

_MD5_HEX = re.compile(r"[0-9a-f]{32}")
_ROOT_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class BodyFingerprint:
    """A proxy's fingerprint of the body it sent (from the trailer)."""

    etag: str
    root: str


def is_proxy_hashed(headers: HeaderGetter) -> bool:
    return (headers.get(PROXY_HASHED) or "").strip().lower() == "yes"


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
                               "X-Backend-Obj-Root (BLAKE3 hex) in the body's trailer")
    return BodyFingerprint(etag, root)


def accepted_etag(own_md5: str, own_root: str, proxied: BodyFingerprint | None, expected: str | None) -> str:
    """The ETag this replica may store, or ``ObjectError(422)``.

    ``own_md5`` is "" when the node did not compute MD5 (proxy-hashed)."""
    if proxied is not None:
        if own_root != proxied.root:
            raise ObjectError(422, "Unprocessable Entity: the body received does not match the BLAKE3 "
                                   f"root the proxy computed ({proxied.root})")
        etag = proxied.etag
    else:
        etag = own_md5
    if expected and expected.strip().strip('"').lower() != etag:
        raise ObjectError(422, f"Unprocessable Entity: ETag {expected} does not match body MD5 {etag}")
    return etag
