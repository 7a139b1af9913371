"""Container ACLs and tempauth's authorization decision (sans-I/O).

Swift's v1 ACL language, as operators know it from ``swift post -r/-w``:

- ``X-Container-Read``: comma-separated items. ``.r:<referrer>`` (also
  ``.ref:``, ``.referer:``, ``.referrer:``; ``*`` for anyone, a leading ``-``
  denies, a leading ``.`` matches a domain) lets anonymous requests read
  *objects*; ``.rlistings`` extends that to the container listing. Any other
  item is a group: ``account`` (every user of that account) or
  ``account:user``.
- ``X-Container-Write``: groups only (referrers are refused with 400).

``authorize_decision`` is Swift tempauth's ``authorize`` as a pure function
of the caller's groups, the method, the path and the ACL that applies. It is
what keeps invariant 6 ("one account cannot read or write another's data
without an explicit grant"): the only ways into an account are being its
admin (the ``AUTH_<account>`` group, given to ``.admin`` users), being the
reseller admin, or a group/referrer named in the container's ACL.

No I/O, no clock: callers pass everything in.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

REFERRER_DESIGNATORS = (".r", ".ref", ".referer", ".referrer")


class AclError(ValueError):
    """An ACL header that cannot be stored; the message says why (400)."""

    status = 400


class Decision(enum.Enum):
    ALLOW = "allow"  # allowed through an ACL (not an owner)
    OWNER = "owner"  # account admin or reseller admin: may also see and set ACLs
    UNAUTHORIZED = "unauthorized"  # 401: nobody is logged in
    FORBIDDEN = "forbidden"  # 403: logged in, not allowed

    @property
    def allowed(self) -> bool:
        return self in (Decision.ALLOW, Decision.OWNER)


@dataclass(frozen=True, slots=True)
class Acl:
    """A parsed v1 ACL: referrer designations (without ``.r:``) and groups."""

    referrers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def clean_acl(name: str, value: str) -> str:
    """Validate and normalise an ACL header value (Swift's ``clean_acl``).

    ``bob , sue`` -> ``bob,sue``; ``.referrer : *`` -> ``.r:*``. Raises
    :class:`AclError` for referrers in a write ACL, an empty referrer, or an
    unknown ``.designator``.
    """
    lname = name.lower()
    values: list[str] = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            values.append(raw)
            continue
        first, second = (v.strip() for v in raw.split(":", 1))
        if not first or not first.startswith("."):
            values.append(raw)
        elif first in REFERRER_DESIGNATORS:
            if "write" in lname:
                raise AclError(f"Referrers not allowed in write ACL: {raw!r}")
            negate = False
            if second.startswith("-"):
                negate = True
                second = second[1:].strip()
            if second and second != "*" and second.startswith("*"):
                second = second[1:].strip()
            if not second or second == ".":
                raise AclError(f"No host/domain value after referrer designation in ACL: {raw!r}")
            values.append(f".r:{'-' if negate else ''}{second}")
        else:
            raise AclError(f"Unknown designator {first!r} in ACL: {raw!r}")
    return ",".join(values)


def parse_acl(value: str | None) -> Acl:
    """Split a (cleaned) ACL string into referrers and groups."""
    if not value:
        return Acl()
    referrers: list[str] = []
    groups: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith(".r:"):
            referrers.append(item[3:])
        else:
            groups.append(unquote(item))
    return Acl(tuple(referrers), tuple(groups))


def referrer_allowed(referrer: str | None, referrers: tuple[str, ...]) -> bool:
    """True when ``referrer`` (the Referer header) passes the designations,
    applied in order: ``*`` or a matching host/domain allows, ``-host`` denies."""
    allow = False
    if referrers:
        rhost = urlparse(referrer or "").hostname or "unknown"
        for mhost in referrers:
            if mhost.startswith("-"):
                mhost = mhost[1:]
                if mhost == rhost or (mhost.startswith(".") and rhost.endswith(mhost)):
                    allow = False
            elif mhost == "*" or mhost == rhost or (mhost.startswith(".") and rhost.endswith(mhost)):
                allow = True
    return allow


def acl_header_for(method: str, container: str | None, obj: str | None) -> str | None:
    """Which container ACL governs a request, as Swift's controllers set
    ``req.acl``: reads of a container or object use ``X-Container-Read``,
    object writes (PUT/POST/DELETE/COPY) ``X-Container-Write``; account
    requests and container writes use none (owners only)."""
    if container is None:
        return None
    if method in ("GET", "HEAD"):
        return "x-container-read"
    if obj is not None and method in ("PUT", "POST", "DELETE", "COPY"):
        return "x-container-write"
    return None


def authorize_decision(
    groups: tuple[str, ...] | None,
    method: str,
    account: str,
    container: str | None,
    obj: str | None,
    acl: str | None,
    referrer: str | None = None,
    reseller_prefix: str = "AUTH_",
) -> Decision:
    """Swift tempauth's ``authorize``.

    ``groups`` is the caller's group list (``account``, ``account:user``, then
    ``AUTH_<account>`` for account admins and ``.reseller_admin``), or None
    for an anonymous request. ``acl`` is the value of the header
    :func:`acl_header_for` names, from the container's info (None if absent).
    """
    denied = Decision.FORBIDDEN if groups else Decision.UNAUTHORIZED
    if not account.startswith(reseller_prefix) or account == reseller_prefix:
        return denied
    user_groups = groups or ()
    if ".reseller_admin" in user_groups:
        return Decision.OWNER
    # account admins do everything in their account except create/delete it
    if account in user_groups and (method not in ("DELETE", "PUT") or container):
        return Decision.OWNER
    if method == "OPTIONS":
        return Decision.ALLOW
    parsed = parse_acl(acl)
    if referrer_allowed(referrer, parsed.referrers) and (obj or ".rlistings" in parsed.groups):
        return Decision.ALLOW
    if any(g in parsed.groups for g in user_groups):
        return Decision.ALLOW
    return denied


def split_swift_path(path: str) -> tuple[str, str | None, str | None] | None:
    """``/v1/a[/c[/o]]`` -> (a, c, o); None when the path is not a /v1 path."""
    parts = path.split("/", 4)
    if len(parts) < 3 or parts[0] != "" or parts[1] not in ("v1", "v1.0") or not parts[2]:
        return None
    account = parts[2]
    container = parts[3] if len(parts) > 3 and parts[3] else None
    obj = parts[4] if len(parts) > 4 and parts[4] else None
    if obj is not None and container is None:
        return None
    return account, container, obj


# -- account ACLs (X-Account-Access-Control, Swift's v2 JSON) -------------------

ACCOUNT_ACL_KEYS = ("admin", "read-write", "read-only")


def parse_account_acl(value: str) -> dict[str, list[str]]:
    """Validate an ``X-Account-Access-Control`` value (tempauth's rules);
    AclError with Swift's message when it cannot be used. ``""`` clears."""
    if value.strip() == "":
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise AclError(f"Syntax error in input ({value!r})")
    for key in data:
        if key not in ACCOUNT_ACL_KEYS:
            raise AclError(f"Key {json.dumps(key)} not recognized")
    out: dict[str, list[str]] = {}
    for key in ACCOUNT_ACL_KEYS:
        if key not in data:
            continue
        if not isinstance(data[key], list):
            raise AclError(f"Value for key {json.dumps(key)} must be a list")
        if not all(isinstance(g, str) for g in data[key]):
            raise AclError(f"Elements of {json.dumps(key)} list must be strings")
        out[key] = list(data[key])
    return out


def format_account_acl(acl: dict[str, list[str]]) -> str:
    return json.dumps(acl, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def account_acl_decision(
    groups: tuple[str, ...], method: str, container: str | None, stored: str | None
) -> Decision | None:
    """What the account's ACL (the stored JSON) grants the caller's groups:
    ``admin`` -> owner; ``read-write`` -> everything below the account and
    reads of it; ``read-only`` -> reads. None: no grant."""
    if not stored:
        return None
    try:
        acl = parse_account_acl(stored)
    except AclError:
        return None
    mine = set(groups)
    if mine.intersection(acl.get("admin", ())):
        return Decision.OWNER
    if mine.intersection(acl.get("read-write", ())) and (container or method in ("GET", "HEAD")):
        return Decision.ALLOW
    if mine.intersection(acl.get("read-only", ())) and method in ("GET", "HEAD"):
        return Decision.ALLOW
    return None
