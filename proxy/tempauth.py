"""tempauth: Swift's v1.0 token auth, as swiftclient and curl users know it.

``GET /auth/v1.0`` (also ``/auth/v1``, ``/auth/auth``, ``/auth/v1/<act>/auth``)
with ``X-Auth-User: account:user`` and ``X-Auth-Key`` (or ``X-Storage-User`` /
``X-Storage-Pass``) answers 200 with ``X-Auth-Token``, ``X-Storage-Token``,
``X-Auth-Token-Expires`` and ``X-Storage-Url`` (``http://<Host>/v1/AUTH_<account>``);
bad credentials get 401.

Every other request: a token (``X-Auth-Token`` / ``X-Storage-Token``) is
resolved to an identity; an invalid or expired one is refused with 401 right
here (tempauth is the definitive auth for ``AUTH_`` tokens). Valid or
anonymous, the request gets ``context['authorize']``: the proxy calls
``authorize(request, container_info_or_None)`` after fetching container info
and gets None (go on) or the 401/403 response to return (invariant 6; the
decision itself is ``proxy.acl.authorize_decision``). ``context['swift_owner']``
is set when the caller owns the account, so ACL headers are shown to and
accepted from owners only.

An S3 layer left of tempauth authenticates through it as Swift's s3api does
(``context["s3api.auth_details"]``, see ``_s3_identity``).

Account ACLs (Swift's ``X-Account-Access-Control`` JSON with ``admin``,
``read-write``, ``read-only`` lists of groups) are validated here (400 with
Swift's text), stored as ``X-Account-Sysmeta-Core-Access-Control`` by an
account owner's PUT/POST, shown back to owners only, and consulted only
when the caller would otherwise be refused (one internal account HEAD,
cached by the proxy).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from common.http import Request, Response
from proxy import _tempauth_core as core
from proxy._subrequest import discard
from proxy.acl import (
    AclError,
    Decision,
    account_acl_decision,
    acl_header_for,
    authorize_decision,
    clean_acl,
    format_account_acl,
    parse_account_acl,
    split_swift_path,
)

ACL_HEADERS = ("x-container-read", "x-container-write")
ACCOUNT_ACL_SYSMETA = "x-account-sysmeta-core-access-control"
S3_AUTH_DETAILS = "s3api.auth_details"
OWNER_ONLY_HEADERS = ("x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to")
# Swift's swift_owner_headers for temp URL keys: hidden from non-owners on
# accounts and containers (test_account test_protected_tempurl).
OWNER_ONLY_KEYS = (
    "x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2",
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: ``account:user`` and Swift's group list."""

    account_user: str
    account: str
    groups: tuple[str, ...]

    @property
    def is_reseller_admin(self) -> bool:
        return ".reseller_admin" in self.groups


def conf_section(conf: Any, name: str) -> tuple[dict[str, Any], str]:
    """A component section and the hash secret from whatever the pipeline
    passes as ``conf``: a ClusterConfig (``.section``), a ProxyConfig (its
    ``extra`` pairs may carry other sections) or a plain dict."""
    secret = str(getattr(conf, "hash_secret", "") or "ringstack-dev-secret")
    if hasattr(conf, "section"):
        return dict(conf.section(name)), secret
    extra = getattr(conf, "extra", None)
    if extra is not None:
        for key, value in extra:
            if key == name and isinstance(value, dict):
                return dict(value), secret
        cluster = dict(extra).get("cluster_config")
        if cluster is not None and hasattr(cluster, "section"):
            return dict(cluster.section(name)), secret
        return {}, secret
    if isinstance(conf, Mapping):
        value = conf.get(name, conf)
        return (dict(value) if isinstance(value, Mapping) else {}), str(conf.get("hash_secret", secret))
    return {}, secret


def acl_from_info(info: Any, header: str) -> str | None:
    """An ACL value from container info: a mapping of headers (any case) or
    an object with ``read_acl``/``write_acl``."""
    if info is None:
        return None
    attr = "read_acl" if header.endswith("read") else "write_acl"
    if isinstance(info, Mapping) or hasattr(info, "get"):
        for key in (header, header.title(), attr):
            value = info.get(key)
            if value is not None:
                return str(value)
        headers = info.get("headers")
        if headers is not None and hasattr(headers, "get"):
            value = headers.get(header)
            return None if value is None else str(value)
        return None
    value = getattr(info, attr, None)
    if value is None:
        headers = getattr(info, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            value = headers.get(header)
    return None if value is None else str(value)


def _clean_acl_headers(request: Request) -> Response | None:
    """Normalise ``X-Container-Read/Write`` in place; 400 saying why when invalid."""
    for name in ACL_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            try:
                request.headers.set(name, clean_acl(name, value))
            except AclError as exc:
                return Response.text(400, str(exc))
    return None


def _unauthorized(realm: str) -> Response:
    # quoted as Swift does: the account comes from the path and may hold '"' or a
    # newline (tests.py TestAccount.testQuotedWWWAuthenticateHeader)
    return Response.text(401, headers={"www-authenticate": f'Swift realm="{quote(realm)}"'})


class TempAuth:
    """The middleware. ``clock`` is injected (token expiry)."""

    def __init__(self, app: Callable[[Request], Any], conf: Any, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        section, secret = conf_section(conf, "tempauth")
        self.settings = core.parse_settings(section, secret)
        self.clock = clock

    # -- token service ----------------------------------------------------
    def _handle_auth(self, request: Request) -> Response:
        if request.method != "GET":
            return Response.text(400, "Auth requests must be GET")  # Swift answers 400 too
        segs = request.path.strip("/").split("/")[1:]  # drop "auth"
        h = request.headers
        if len(segs) == 3 and segs[0] == "v1" and segs[2] == "auth":
            account = segs[1]
            user = h.get("x-storage-user")
            if not user:
                user = h.get("x-auth-user")
                if not user or ":" not in user:
                    return _unauthorized(account)
                account2, user = user.split(":", 1)
                if account2 != account:
                    return _unauthorized(account)
            key = h.get("x-storage-pass") or h.get("x-auth-key")
        elif len(segs) == 1 and segs[0] in ("v1.0", "v1", "auth"):
            user = h.get("x-auth-user") or h.get("x-storage-user")
            if not user or ":" not in user:
                return _unauthorized("unknown")
            account, user = user.split(":", 1)
            key = h.get("x-auth-key") or h.get("x-storage-pass")
        elif not segs or not segs[0]:
            return Response.text(400, "Unknown auth path; use /auth/v1.0")
        else:
            return Response.text(404)
        if not (account and user and key):
            return _unauthorized(account or "unknown")
        found = core.check_credentials(self.settings, f"{account}:{user}", key)
        if found is None:
            return _unauthorized(account)
        now = self.clock()
        token, expires = core.issue_token(self.settings, found, now)
        host = h.get("host") or "127.0.0.1:8080"
        url = f"http://{host}/v1/{self.settings.reseller_prefix}{found.account}"
        return Response(
            200,
            [
                ("x-auth-token", token),
                ("x-storage-token", token),
                ("x-auth-token-expires", str(int(expires - now))),
                ("x-storage-url", url),
                ("content-type", "text/plain; charset=UTF-8"),
            ],
            b"",
        )

    # -- identity and authorization ---------------------------------------
    def identity_of(self, token: str) -> Identity | None:
        user = core.verify_token(self.settings, token, self.clock())
        if user is None:
            return None
        return Identity(user.account_user, user.account, core.groups_for(self.settings, user))

    def make_authorize(self, identity: Identity | None) -> Callable[[Request, Any], Awaitable[Response | None]]:
        prefix = self.settings.reseller_prefix

        async def authorize(request: Request, container_info: Any = None) -> Response | None:
            parts = split_swift_path(request.path)
            if parts is None:
                return Response.text(404)
            account, container, obj = parts
            header = acl_header_for(request.method, container, obj)
            acl = acl_from_info(container_info, header) if header else None
            groups = identity.groups if identity else None
            decision = authorize_decision(
                groups, request.method, account, container, obj, acl, request.headers.get("referer"), prefix
            )
            if decision is Decision.FORBIDDEN and groups:  # logged in: the account's ACL may grant it
                stored = await self._account_acl(request, account)
                decision = account_acl_decision(groups, request.method, container, stored) or decision
            if decision is Decision.OWNER:
                request.context["swift_owner"] = True
                if container is not None and obj is None and request.method in ("PUT", "POST"):
                    return _clean_acl_headers(request)  # only owners get here (Swift order: 403 first)
                return None
            if decision is Decision.ALLOW:
                if container is not None and obj is None and request.method in ("PUT", "POST"):
                    for name in OWNER_ONLY_HEADERS:  # a grantee may write, not re-grant (as Swift)
                        request.headers.pop(name)
                return None
            if decision is Decision.UNAUTHORIZED:
                return _unauthorized(account)
            return Response.text(403)

        return authorize

    def _s3_identity(self, request: Request, s3: Any) -> Identity | None:
        """Swift's s3api + tempauth contract: an S3 layer left of us puts
        ``{"access_key": "account:user", "check_signature": f(secret) -> bool}``
        in ``context["s3api.auth_details"]`` and ``/v1/<access_key>/...`` as the
        path; a right signature makes the caller that user and the path's
        account ``AUTH_<account>``. Anything else is an anonymous request
        (the S3 layer answers AccessDenied/SignatureDoesNotMatch)."""
        user = self.settings.users.get(str(s3.get("access_key", "")))
        check = s3.get("check_signature")
        if user is None or check is None or not check(user.key):
            request.context["s3_auth_failed"] = True
            return None
        account_id = self.settings.reseller_prefix + user.account
        head = f"/v1/{user.account_user}"
        if request.path == head or request.path.startswith(head + "/"):
            request.path = f"/v1/{account_id}" + request.path[len(head):]
        return Identity(user.account_user, user.account, core.groups_for(self.settings, user))

    async def _account_acl(self, request: Request, account: str) -> str | None:
        """The account's stored ACL (``X-Account-Sysmeta-Core-Access-Control``),
        read with an internal HEAD (no authorize: it is ours) once per request."""
        cache = request.context.setdefault("account_acl", {})
        if account not in cache:
            sub = Request.make("HEAD", f"/v1/{account}", {"x-trans-id": request.headers.get("x-trans-id") or ""})
            if "trans_id" in request.context:
                sub.context["trans_id"] = request.context["trans_id"]
            resp = await self.app(sub)
            await discard(resp)
            ok = 200 <= resp.status < 300
            cache[account] = resp.headers.get(ACCOUNT_ACL_SYSMETA) if ok else None
        value = cache[account]
        return None if value is None else str(value)

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if path == "/auth" or path.startswith("/auth/"):
            return self._handle_auth(request)
        parts = split_swift_path(path)
        if parts is None:
            return await self.app(request)
        token = request.headers.get("x-auth-token") or request.headers.get("x-storage-token")
        identity = None
        s3 = request.context.get(S3_AUTH_DETAILS)
        if s3 is not None:
            identity = self._s3_identity(request, s3)
            parts = split_swift_path(request.path) or parts
        elif token and token.startswith(self.settings.reseller_prefix):
            identity = self.identity_of(token)
            if identity is None:
                return _unauthorized(parts[0])
        request.context["identity"] = identity
        request.context["authorize"] = self.make_authorize(identity)
        request.context["clean_acl"] = clean_acl
        account, container, obj = parts
        if "x-account-access-control" in request.headers:
            try:
                parsed = parse_account_acl(request.headers["x-account-access-control"])
            except AclError as exc:
                value = request.headers["x-account-access-control"]
                return Response.text(400, f"X-Account-Access-Control invalid: {exc}\n\nInput: {value}\n")
            request.headers.pop("x-account-access-control")
            if container is None and request.method in ("PUT", "POST"):  # owners only: authorize decides
                request.headers.set(ACCOUNT_ACL_SYSMETA, format_account_acl(parsed))
        response: Response = await self.app(request)
        owner = bool(request.context.get("swift_owner"))
        if container is not None and obj is None and not owner:
            for name in OWNER_ONLY_HEADERS:
                response.headers.pop(name)
        if obj is None and not owner:
            for name in OWNER_ONLY_KEYS:
                response.headers.pop(name)
        if container is None:
            stored = response.headers.pop(ACCOUNT_ACL_SYSMETA)
            if owner and stored and stored != "{}":
                response.headers.set("x-account-access-control", stored)
        return response


def filter_factory(app: Callable[[Request], Any], conf: Any) -> TempAuth:
    return TempAuth(app, conf)
