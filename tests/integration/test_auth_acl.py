"""tempauth and container ACLs against a real cluster (invariant 6): tokens,
expiry, 401 vs 403, grants and their absence across accounts test/test2,
``.r:*`` public read, a non-admin member (tester3) needing a grant."""

from __future__ import annotations

import http.client
import time

import pytest

from proxy import _tempauth_core
from tests.support.cluster import Cluster, shared_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    return shared_cluster(tmp_path_factory)  # containers here are this module's own


class Client:
    def __init__(self, cluster: Cluster, user: str | None = None, key: str | None = None) -> None:
        self.cluster = cluster
        self.token = cluster.auth(user, key)[0] if user else None

    def req(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.cluster.proxy_port, timeout=30)
        try:
            h = dict(headers or {})
            if self.token:
                h["X-Auth-Token"] = self.token
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def users(cluster):
    return {
        "tester": Client(cluster, "test:tester", "testing"),
        "tester2": Client(cluster, "test:tester2", "testing2"),
        "tester3": Client(cluster, "test:tester3", "testing3"),
        "other": Client(cluster, "test2:tester2", "testing2"),
        "admin": Client(cluster, "admin:admin", "admin"),
        "anon": Client(cluster),
    }


def test_token_service(cluster):
    anon = Client(cluster)
    status, h, _ = anon.req("GET", "/auth/v1.0", {"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
    assert status == 200
    assert h["x-storage-url"] == f"http://127.0.0.1:{cluster.proxy_port}/v1/AUTH_test"
    assert h["x-auth-token"] == h["x-storage-token"] and h["x-auth-token"].startswith("AUTH_tk")
    assert 86000 < int(h["x-auth-token-expires"]) <= 86400
    status, h, _ = anon.req("GET", "/auth/v1.0", {"X-Storage-User": "test2:tester2", "X-Storage-Pass": "testing2"})
    assert status == 200 and h["x-storage-url"].endswith("/v1/AUTH_test2")
    for user, key in (("test:tester", "wrong"), ("test:nobody", "testing"), ("tester", "testing")):
        status, h, _ = anon.req("GET", "/auth/v1.0", {"X-Auth-User": user, "X-Auth-Key": key})
        assert status == 401, user


def test_invalid_and_expired_tokens_401(cluster, users):
    status, h, _ = users["anon"].req("GET", "/v1/AUTH_test", {"X-Auth-Token": "AUTH_tkbogus.0000"})
    assert status == 401 and "www-authenticate" in h
    settings = _tempauth_core.parse_settings(
        {"users": {"test:tester": {"key": "testing", "groups": [".admin"]}}}, cluster.hash_secret)
    user = settings.users["test:tester"]
    expired, _ = _tempauth_core.issue_token(settings, user, now=time.time() - 90000)
    assert users["anon"].req("GET", "/v1/AUTH_test", {"X-Auth-Token": expired})[0] == 401
    # the same signing, unexpired, is accepted: the expiry is what refused it
    fresh, _ = _tempauth_core.issue_token(settings, user, now=time.time())
    assert users["anon"].req("GET", "/v1/AUTH_test", {"X-Auth-Token": fresh})[0] in (200, 204)


def test_no_grant_no_access_across_accounts(users):
    t, other, anon = users["tester"], users["other"], users["anon"]
    assert t.req("PUT", "/v1/AUTH_test/private")[0] in (201, 202)
    assert t.req("PUT", "/v1/AUTH_test/private/secret", body=b"s3cret")[0] == 201
    for method in ("GET", "HEAD", "DELETE", "POST"):
        assert other.req(method, "/v1/AUTH_test/private/secret")[0] == 403, method
        assert anon.req(method, "/v1/AUTH_test/private/secret")[0] == 401, method
    assert other.req("PUT", "/v1/AUTH_test/private/new", body=b"x")[0] == 403
    assert other.req("GET", "/v1/AUTH_test/private")[0] == 403
    assert other.req("GET", "/v1/AUTH_test")[0] == 403
    # server-side copy out of another account needs read access to the source
    assert other.req("PUT", "/v1/AUTH_test2/mine")[0] in (201, 202)
    status, _, _ = other.req("PUT", "/v1/AUTH_test2/mine/stolen",
                             {"X-Copy-From": "/private/secret", "X-Copy-From-Account": "AUTH_test"})
    assert status == 403
    assert other.req("GET", "/v1/AUTH_test2/mine/stolen")[0] == 404
    assert t.req("GET", "/v1/AUTH_test/private/secret")[2] == b"s3cret"


def test_grants_read_then_write(users):
    t, other = users["tester"], users["other"]
    t.req("PUT", "/v1/AUTH_test/shared", {"X-Container-Read": "test2:tester2"})
    t.req("PUT", "/v1/AUTH_test/shared/doc", body=b"hello")
    status, _, body = other.req("GET", "/v1/AUTH_test/shared/doc")
    assert (status, body) == (200, b"hello")
    assert other.req("GET", "/v1/AUTH_test/shared")[2] == b"doc\n"
    assert other.req("PUT", "/v1/AUTH_test/shared/by-other", body=b"x")[0] == 403
    assert t.req("POST", "/v1/AUTH_test/shared", {"X-Container-Write": "test2"})[0] == 204
    assert other.req("PUT", "/v1/AUTH_test/shared/by-other", body=b"x")[0] == 201
    # a grantee is not an owner: no ACL changes, no ACL headers shown
    assert other.req("POST", "/v1/AUTH_test/shared", {"X-Container-Read": ".r:*"})[0] == 403
    status, h, _ = other.req("HEAD", "/v1/AUTH_test/shared")
    assert status == 204 and "x-container-read" not in h
    assert t.req("HEAD", "/v1/AUTH_test/shared")[1]["x-container-read"] == "test2:tester2"
    # revoke
    t.req("POST", "/v1/AUTH_test/shared", {"X-Container-Read": "", "X-Container-Write": ""})
    assert other.req("GET", "/v1/AUTH_test/shared/doc")[0] == 403


def test_member_tester3_needs_a_grant(users):
    t, t3 = users["tester"], users["tester3"]
    t.req("PUT", "/v1/AUTH_test/team")
    t.req("PUT", "/v1/AUTH_test/team/plan", body=b"plan")
    assert t3.req("GET", "/v1/AUTH_test/team/plan")[0] == 403
    assert t3.req("GET", "/v1/AUTH_test")[0] == 403
    assert t3.req("PUT", "/v1/AUTH_test/t3own")[0] == 403
    assert t3.req("POST", "/v1/AUTH_test/team", {"X-Container-Read": "test:tester3"})[0] == 403
    t.req("POST", "/v1/AUTH_test/team", {"X-Container-Read": "test:tester3"})
    assert t3.req("GET", "/v1/AUTH_test/team/plan")[2] == b"plan"
    assert t3.req("DELETE", "/v1/AUTH_test/team/plan")[0] == 403
    # tester2 is an admin of test: no grant needed
    assert users["tester2"].req("GET", "/v1/AUTH_test/team/plan")[0] == 200


def test_public_read_and_listings(users):
    t, anon = users["tester"], users["anon"]
    t.req("PUT", "/v1/AUTH_test/www", {"X-Container-Read": ".r:*"})
    t.req("PUT", "/v1/AUTH_test/www/index.html", {"Content-Type": "text/html"}, b"<h1>hi</h1>")
    status, h, body = anon.req("GET", "/v1/AUTH_test/www/index.html")
    assert (status, body) == (200, b"<h1>hi</h1>")
    assert anon.req("GET", "/v1/AUTH_test/www")[0] == 401  # listing needs .rlistings
    assert anon.req("PUT", "/v1/AUTH_test/www/x", body=b"x")[0] == 401
    assert users["other"].req("PUT", "/v1/AUTH_test/www/x", body=b"x")[0] == 403
    t.req("POST", "/v1/AUTH_test/www", {"X-Container-Read": ".r:*,.rlistings"})
    assert anon.req("GET", "/v1/AUTH_test/www")[2] == b"index.html\n"
    assert t.req("POST", "/v1/AUTH_test/www", {"X-Container-Write": ".r:*"})[0] == 400


def test_reseller_admin_reaches_every_account(users):
    users["tester"].req("PUT", "/v1/AUTH_test/adm")
    users["tester"].req("PUT", "/v1/AUTH_test/adm/o", body=b"o")
    assert users["admin"].req("GET", "/v1/AUTH_test/adm/o")[2] == b"o"
    assert users["admin"].req("GET", "/v1/AUTH_test2")[0] in (200, 204)


def test_account_acls(users):
    """X-Account-Access-Control on AUTH_test2 (its admin is test2:tester2)."""
    owner, t3, t2, t1 = users["other"], users["tester3"], users["tester2"], users["tester"]
    owner.req("PUT", "/v1/AUTH_test2/acct")
    owner.req("PUT", "/v1/AUTH_test2/acct/o", body=b"data")
    assert t3.req("GET", "/v1/AUTH_test2/acct/o")[0] == 403
    status, _, body = owner.req("POST", "/v1/AUTH_test2", {"X-Account-Access-Control": '{"read-only": "x"}'})
    assert status == 400 and body.startswith(b"X-Account-Access-Control invalid: ")
    acl = '{"admin":["test:tester"],"read-only":["test:tester3"],"read-write":["test:tester2"]}'
    assert owner.req("POST", "/v1/AUTH_test2", {"X-Account-Access-Control": acl})[0] == 204
    assert owner.req("HEAD", "/v1/AUTH_test2")[1]["x-account-access-control"] == acl
    # read-only: reads anywhere in the account, no writes, no ACLs shown
    assert t3.req("GET", "/v1/AUTH_test2/acct/o")[2] == b"data"
    assert t3.req("GET", "/v1/AUTH_test2")[0] == 200
    assert "x-account-access-control" not in t3.req("HEAD", "/v1/AUTH_test2")[1]
    assert t3.req("PUT", "/v1/AUTH_test2/acct/x", body=b"x")[0] == 403
    # read-write: writes below the account, not to the account itself
    assert t2.req("PUT", "/v1/AUTH_test2/acct/y", body=b"y")[0] == 201
    assert t2.req("POST", "/v1/AUTH_test2/acct", {"X-Container-Read": ".r:*"})[0] == 204  # meta only
    assert "x-container-read" not in owner.req("HEAD", "/v1/AUTH_test2/acct")[1]
    assert t2.req("POST", "/v1/AUTH_test2", {"X-Account-Meta-A": "1"})[0] == 403
    assert t2.req("POST", "/v1/AUTH_test2", {"X-Account-Access-Control": '{"admin":["test:tester2"]}'})[0] == 403
    # admin: an owner of the account (may change its ACL)
    assert t1.req("POST", "/v1/AUTH_test2", {"X-Account-Access-Control": "{}"})[0] == 204
    assert t3.req("GET", "/v1/AUTH_test2/acct/o")[0] == 403
    assert t1.req("GET", "/v1/AUTH_test2/acct/o")[0] == 403  # its own grant is gone too
