"""tempauth's users and tokens (sans-I/O: ``now`` and the secret come in).

Users come from the cluster file's ``[tempauth]`` table::

    [tempauth]
    token_life = 86400                 # seconds
    reseller_prefix = "AUTH_"
    users = { "test:tester" = { key = "testing", groups = [".admin"] },
              "admin:admin" = { key = "admin", groups = [".admin", ".reseller_admin"] } }

Tokens are stateless and signed (like tempauth's fernet tokens rather than
its memcache ones) so every proxy worker and every proxy of the cluster
accepts a token any of them issued, with no shared store::

    AUTH_tk<base64url("<expires>:<account:user>")>.<hmac-sha256 hex[:40]>

The key is derived from the cluster's hash secret (or ``token_secret``).
A token names only the user; the groups are recomputed from the current
config on every request, so removing a user or its ``.admin`` takes effect
at once. Keys and signatures are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

DEFAULT_TOKEN_LIFE = 86400.0


class TempAuthConfigError(ValueError):
    """A ``[tempauth]`` table that cannot be used."""


@dataclass(frozen=True, slots=True)
class User:
    account: str  # "test"
    name: str  # "tester"
    key: str
    groups: tuple[str, ...]  # as configured: ".admin", ".reseller_admin", others

    @property
    def account_user(self) -> str:
        return f"{self.account}:{self.name}"


@dataclass(frozen=True, slots=True)
class TempAuthSettings:
    users: dict[str, User]
    token_life: float = DEFAULT_TOKEN_LIFE
    reseller_prefix: str = "AUTH_"
    secret: bytes = b""


def parse_settings(section: dict[str, Any], hash_secret: str) -> TempAuthSettings:
    """Build the settings from a ``[tempauth]`` table (raises TempAuthConfigError)."""
    raw_users = section.get("users", {})
    if not isinstance(raw_users, dict):
        raise TempAuthConfigError("[tempauth] users must be a table of 'account:user' = {key, groups}")
    users: dict[str, User] = {}
    for account_user, spec in raw_users.items():
        if ":" not in account_user:
            raise TempAuthConfigError(f"[tempauth] user {account_user!r} must be 'account:user'")
        account, name = account_user.split(":", 1)
        if not account or not name:
            raise TempAuthConfigError(f"[tempauth] user {account_user!r} must be 'account:user'")
        if isinstance(spec, str):
            spec = {"key": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
            raise TempAuthConfigError(f"[tempauth] user {account_user!r} needs a string key")
        groups = spec.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise TempAuthConfigError(f"[tempauth] groups of {account_user!r} must be a list of strings")
        users[account_user] = User(account, name, spec["key"], tuple(groups))
    try:
        token_life = float(section.get("token_life", DEFAULT_TOKEN_LIFE))
    except (TypeError, ValueError):
        raise TempAuthConfigError("[tempauth] token_life must be a number of seconds") from None
    if token_life <= 0:
        raise TempAuthConfigError("[tempauth] token_life must be > 0")
    prefix = str(section.get("reseller_prefix", "AUTH_"))
    if prefix and not prefix.endswith("_"):
        prefix += "_"
    secret_text = str(section.get("token_secret", "")) or hash_secret
    secret = hashlib.sha256(b"ringstack-tempauth:" + secret_text.encode()).digest()
    return TempAuthSettings(users, token_life, prefix, secret)


def groups_for(settings: TempAuthSettings, user: User) -> tuple[str, ...]:
    """Swift's group list: ``account``, ``account:user``, configured groups,
    with ``.admin`` replaced by the account id ``AUTH_<account>``."""
    groups = [user.account, user.account_user, *user.groups]
    if ".admin" in groups:
        groups.remove(".admin")
        account_id = settings.reseller_prefix + user.account
        if account_id not in groups:
            groups.append(account_id)
    return tuple(groups)


def check_credentials(settings: TempAuthSettings, account_user: str, key: str) -> User | None:
    """The user when ``key`` is right, else None (constant-time compare)."""
    user = settings.users.get(account_user)
    if user is None:
        # still spend a comparison so timing does not reveal which users exist
        hmac.compare_digest(key.encode(), b"x" * max(1, len(key)))
        return None
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), user.key.encode()):
        return None
    return user


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(settings: TempAuthSettings, payload: bytes) -> str:
    return hmac.new(settings.secret, payload, hashlib.sha256).hexdigest()[:40]


def issue_token(settings: TempAuthSettings, user: User, now: float) -> tuple[str, float]:
    """A new token for ``user`` and its expiry time."""
    expires = int(now + settings.token_life)
    payload = f"{expires}:{user.account_user}".encode()
    return f"{settings.reseller_prefix}tk{_b64(payload)}.{_sign(settings, payload)}", float(expires)


def verify_token(settings: TempAuthSettings, token: str, now: float) -> User | None:
    """The user a token names when it is genuine, unexpired and the user
    still exists; else None."""
    head = settings.reseller_prefix + "tk"
    if not token.startswith(head) or "." not in token:
        return None
    body, _, sig = token[len(head):].rpartition(".")
    try:
        payload = _unb64(body)
    except ValueError:
        return None
    if not hmac.compare_digest(sig.encode("ascii", "replace"), _sign(settings, payload).encode()):
        return None
    expires_text, _, account_user = payload.decode("utf-8", "replace").partition(":")
    if not expires_text.isdigit() or int(expires_text) <= now:
        return None
    return settings.users.get(account_user)
