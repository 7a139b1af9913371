"""Unit tests: ACL language, tempauth decisions, tokens, and the tempauth middleware
in front of a recording app (the app stands in for the network, not for tempauth)."""

from __future__ import annotations

import pytest

from common.http import Request, Response
from proxy import _tempauth_core as core
from proxy.acl import (
    AclError,
    Decision,
    acl_header_for,
    authorize_decision,
    clean_acl,
    parse_acl,
    referrer_allowed,
)
from proxy.tempauth import TempAuth

USERS = {
    "admin:admin": {"key": "admin", "groups": [".admin", ".reseller_admin"]},
    "test:tester": {"key": "testing", "groups": [".admin"]},
    "test:tester3": {"key": "testing3", "groups": []},
    "test2:tester2": {"key": "testing2", "groups": [".admin"]},
}
CONF = {"tempauth": {"users": USERS, "token_life": 100}, "hash_secret": "s3cret"}


def settings():
    return core.parse_settings(CONF["tempauth"], "s3cret")


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("bob, sue", "bob,sue"),
        ("bob,,,sue", "bob,sue"),
        (".referrer : *", ".r:*"),
        (".ref:*.example.com", ".r:.example.com"),
        (".r:*, .rlistings", ".r:*,.rlistings"),
        ("test:tester3", "test:tester3"),
    ],
)
def test_clean_acl(raw, clean):
    assert clean_acl("X-Container-Read", raw) == clean


@pytest.mark.parametrize("raw", [".r:", ".r:-", ".x:y"])
def test_clean_acl_rejects(raw):
    with pytest.raises(AclError):
        clean_acl("X-Container-Read", raw)


def test_referrers_refused_in_write_acl():
    with pytest.raises(AclError, match="Referrers not allowed in write ACL"):
        clean_acl("X-Container-Write", ".r:*")


def test_referrer_rules_in_order():
    acl = parse_acl(".r:.example.com,.r:-thief.example.com")
    assert referrer_allowed("http://www.example.com/x", acl.referrers)
    assert not referrer_allowed("http://thief.example.com/x", acl.referrers)
    assert not referrer_allowed(None, acl.referrers)
    assert referrer_allowed(None, parse_acl(".r:*").referrers)


def test_groups_replace_admin_with_account_id():
    s = settings()
    assert core.groups_for(s, s.users["test:tester"]) == ("test", "test:tester", "AUTH_test")
    assert core.groups_for(s, s.users["test:tester3"]) == ("test", "test:tester3")


def decide(user, method, path, acl=None, referrer=None):
    s = settings()
    groups = core.groups_for(s, s.users[user]) if user else None
    parts = path.split("/")[2:] + [None, None]
    a, c, o = parts[0], parts[1] or None, "/".join(p for p in parts[2:] if p) or None
    return authorize_decision(groups, method, a, c, o, acl, referrer)


def test_owner_and_reseller():
    assert decide("test:tester", "GET", "/v1/AUTH_test") is Decision.OWNER
    assert decide("test:tester", "PUT", "/v1/AUTH_test/c/o") is Decision.OWNER
    # an account admin may not create or delete the account itself
    assert decide("test:tester", "PUT", "/v1/AUTH_test") is Decision.FORBIDDEN
    assert decide("admin:admin", "DELETE", "/v1/AUTH_test2/c/o") is Decision.OWNER


def test_no_grant_no_access_across_accounts():  # invariant 6
    for method in ("GET", "HEAD", "PUT", "POST", "DELETE"):
        assert decide("test2:tester2", method, "/v1/AUTH_test/c/o") is Decision.FORBIDDEN
        assert decide("test2:tester2", method, "/v1/AUTH_test/c") is Decision.FORBIDDEN
    assert decide(None, "GET", "/v1/AUTH_test/c/o") is Decision.UNAUTHORIZED


def test_member_needs_grant():
    assert decide("test:tester3", "GET", "/v1/AUTH_test/c/o") is Decision.FORBIDDEN
    assert decide("test:tester3", "GET", "/v1/AUTH_test/c/o", acl="test:tester3") is Decision.ALLOW
    assert decide("test:tester3", "GET", "/v1/AUTH_test/c", acl="test") is Decision.ALLOW
    assert decide("test:tester3", "GET", "/v1/AUTH_test") is Decision.FORBIDDEN


def test_public_read_objects_but_not_listing_without_rlistings():
    assert decide(None, "GET", "/v1/AUTH_test/c/o", acl=".r:*") is Decision.ALLOW
    assert decide(None, "GET", "/v1/AUTH_test/c", acl=".r:*") is Decision.UNAUTHORIZED
    assert decide(None, "GET", "/v1/AUTH_test/c", acl=".r:*,.rlistings") is Decision.ALLOW


def test_acl_header_for():
    assert acl_header_for("GET", "c", "o") == "x-container-read"
    assert acl_header_for("HEAD", "c", None) == "x-container-read"
    assert acl_header_for("PUT", "c", "o") == "x-container-write"
    assert acl_header_for("POST", "c", None) is None
    assert acl_header_for("GET", None, None) is None


def test_token_roundtrip_and_expiry():
    s = settings()
    user = core.check_credentials(s, "test:tester", "testing")
    assert user is not None
    assert core.check_credentials(s, "test:tester", "wrong") is None
    assert core.check_credentials(s, "nobody:x", "testing") is None
    token, expires = core.issue_token(s, user, now=1000.0)
    assert expires == 1100.0
    assert core.verify_token(s, token, now=1099.0) == user
    assert core.verify_token(s, token, now=1100.0) is None
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert core.verify_token(s, forged, now=1000.0) is None
    other = core.parse_settings(CONF["tempauth"], "another-secret")
    assert core.verify_token(other, token, now=1000.0) is None


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_auth():
    seen: list[Request] = []

    async def app(request: Request) -> Response:
        seen.append(request)
        auth = request.context.get("authorize")
        info = {"x-container-read": request.headers.get("x-test-read")}
        denial = await auth(request, info) if auth else None
        if denial is not None:
            return denial
        return Response(200, {"x-container-read": "test:tester3"}, b"ok")

    clock = Clock(1000.0)
    return TempAuth(app, CONF, clock=clock), seen, clock


async def get_token(mw, user, key):
    req = Request.make("GET", "/auth/v1.0", {"x-auth-user": user, "x-auth-key": key, "host": "h:1"})
    return await mw(req)


async def test_middleware_issue_and_use_token():
    mw, seen, clock = make_auth()
    resp = await get_token(mw, "test:tester", "testing")
    assert resp.status == 200
    assert resp.headers["x-storage-url"] == "http://h:1/v1/AUTH_test"
    assert resp.headers["x-auth-token-expires"] == "100"
    token = resp.headers["x-auth-token"]
    assert (await get_token(mw, "test:tester", "nope")).status == 401
    assert (await get_token(mw, "nocolon", "x")).status == 401

    ok = await mw(Request.make("GET", "/v1/AUTH_test/c", {"x-auth-token": token}))
    assert ok.status == 200
    assert ok.headers.get("x-container-read") == "test:tester3"  # owner sees ACLs
    other = await mw(Request.make("GET", "/v1/AUTH_test2/c", {"x-auth-token": token}))
    assert other.status == 403
    anon = await mw(Request.make("GET", "/v1/AUTH_test/c/o"))
    assert anon.status == 401
    assert anon.headers["www-authenticate"] == 'Swift realm="AUTH_test"'
    clock.t += 101
    expired = await mw(Request.make("GET", "/v1/AUTH_test/c", {"x-auth-token": token}))
    assert expired.status == 401


async def test_middleware_member_hides_acl_and_bad_acl_400():
    mw, seen, clock = make_auth()
    t3 = (await get_token(mw, "test:tester3", "testing3")).headers["x-auth-token"]
    resp = await mw(
        Request.make("GET", "/v1/AUTH_test/c", {"x-auth-token": t3, "x-test-read": "test:tester3"})
    )
    assert resp.status == 200
    assert resp.headers.get("x-container-read") is None  # not an owner
    t1 = (await get_token(mw, "test:tester", "testing")).headers["x-auth-token"]
    bad = await mw(
        Request.make("POST", "/v1/AUTH_test/c", {"x-auth-token": t1, "x-container-write": ".r:*"})
    )
    assert bad.status == 400
    assert b"Referrers not allowed" in await bad.read_body()


def test_account_acl_rules():
    from proxy.acl import account_acl_decision, format_account_acl, parse_account_acl

    with pytest.raises(AclError, match='Key "x" not recognized'):
        parse_account_acl('{"x": []}')
    with pytest.raises(AclError, match='Value for key "admin" must be a list'):
        parse_account_acl('{"admin": "a"}')
    with pytest.raises(AclError, match="Syntax error"):
        parse_account_acl("[1]")
    stored = format_account_acl(parse_account_acl('{"read-only": ["a:u"], "read-write": ["b"], "admin": ["c:x"]}'))
    assert account_acl_decision(("a", "a:u"), "GET", "c", stored) is Decision.ALLOW
    assert account_acl_decision(("a", "a:u"), "PUT", "c", stored) is None
    assert account_acl_decision(("b", "b:v"), "PUT", "c", stored) is Decision.ALLOW
    assert account_acl_decision(("b", "b:v"), "POST", None, stored) is None
    assert account_acl_decision(("c", "c:x"), "POST", None, stored) is Decision.OWNER
    assert account_acl_decision(("d", "d:y"), "GET", None, stored) is None


async def test_s3_auth_details_contract():
    mw, seen, _ = make_auth()
    secrets_seen = []

    def check(secret):
        secrets_seen.append(secret)
        return secret == "testing"

    req = Request.make("GET", "/v1/test:tester/bucket/key")
    req.context["s3api.auth_details"] = {"access_key": "test:tester", "check_signature": check}
    resp = await mw(req)
    assert resp.status == 200 and secrets_seen == ["testing"]
    assert seen[-1].path == "/v1/AUTH_test/bucket/key"
    assert seen[-1].context["identity"].account_user == "test:tester"

    bad = Request.make("GET", "/v1/test:tester/bucket/key")
    bad.context["s3api.auth_details"] = {"access_key": "test:tester", "check_signature": lambda s: False}
    resp = await mw(bad)
    assert resp.status == 401 and bad.context["s3_auth_failed"] is True
