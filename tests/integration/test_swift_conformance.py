"""Regression tests for behaviours OpenStack Swift's functional tests
(``test/functional/``, run by ``tests/conformance/swift_functional.py``)
expect and ringstack once got wrong. Each test names the upstream test it
stands for; all run against a real cluster over plain HTTP."""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import uuid
from xml.dom import minidom

import pytest

from tests.support.cluster import Cluster, shared_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    return shared_cluster(tmp_path_factory)  # containers here are this module's own


class Client:
    def __init__(self, cluster: Cluster, user: str, key: str) -> None:
        self.port = cluster.proxy_port
        self.token, url = cluster.auth(user, key)
        self.account = url.rstrip("/").rsplit("/", 1)[-1]

    def req(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""):
        """``path`` is below /v1/<account>; str header values are sent as
        their UTF-8 bytes (as swift_test_client does)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            h = {k: v.encode().decode("latin-1") for k, v in (headers or {}).items()}
            h["X-Auth-Token"] = self.token
            conn.request(method, f"/v1/{self.account}{path}", body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def tester(cluster):
    return Client(cluster, "test:tester", "testing")


@pytest.fixture
def container(tester):
    name = f"conf-{uuid.uuid4().hex[:10]}"
    assert tester.req("PUT", f"/{name}")[0] == 201
    return name


def test_dlo_manifest_in_utf8_container(tester):
    """test_dlo TestDloUTF8: X-Object-Manifest naming a UTF-8 container/prefix."""
    cont = f"\u2603-{uuid.uuid4().hex[:8]}"
    qcont = "%E2%98%83-" + cont[2:]
    assert tester.req("PUT", f"/{qcont}")[0] == 201
    for letter in "ab":
        assert tester.req("PUT", f"/{qcont}/%C3%BC/seg{letter}", body=letter.encode() * 3)[0] == 201
    assert tester.req("PUT", f"/{qcont}/man", {"X-Object-Manifest": f"{cont}/\u00fc/seg"})[0] == 201
    status, _, body = tester.req("GET", f"/{qcont}/man")
    assert (status, body) == (200, b"aaabbb")


def test_account_head_is_204_with_format(tester):
    """test_account test_GET_HEAD_content_type: HEAD answers 204, the asked-for
    Content-Type and Content-Length 0."""
    status, headers, _ = tester.req("HEAD", "?format=json")
    assert status == 204
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["content-length"] == "0"


def test_container_head_format_picks_content_type(tester, container):
    """test_container test_GET_HEAD_content_type."""
    status, headers, _ = tester.req("HEAD", f"/{container}?format=json")
    assert (status, headers["content-type"], headers["content-length"]) == (
        204, "application/json; charset=utf-8", "0")
    status, headers, _ = tester.req("HEAD", f"/{container}?format=xml")
    assert headers["content-type"] == "application/xml; charset=utf-8"


def test_x_delete_at_far_future_is_clamped(tester, container):
    """test_object test_x_delete_at_in_the_far_future."""
    assert tester.req("PUT", f"/{container}/o", {"X-Delete-At": "1" * 100})[0] == 201
    status, headers, _ = tester.req("HEAD", f"/{container}/o")
    assert (status, headers["x-delete-at"]) == (200, "9" * 10)


def test_bad_x_if_delete_at_is_400(tester, container):
    """test_object test_delete_if_delete_at_bad (even for a missing object)."""
    status, _, body = tester.req("DELETE", f"/{container}/missing", {"X-If-Delete-At": "bad"})
    assert status == 400 and b"X-If-Delete-At" in body


def test_unknown_storage_policy_is_400(tester):
    """test_container test_error_invalid_storage_policy_name."""
    status, _, body = tester.req("PUT", f"/conf-{uuid.uuid4().hex[:8]}", {"X-Storage-Policy": uuid.uuid4().hex})
    assert status == 400 and b"X-Storage-Policy" in body
    assert tester.req("PUT", f"/conf-{uuid.uuid4().hex[:8]}", {"X-Storage-Policy": "policy-0"})[0] == 201


def test_temp_url_key_hidden_from_non_owner(cluster, tester, container):
    """test_account test_protected_tempurl (Swift's swift_owner_headers)."""
    reader = Client(cluster, "test:tester3", "testing3")
    assert tester.req("POST", f"/{container}", {
        "X-Container-Meta-Temp-Url-Key": "secret", "X-Container-Meta-Other": "shown",
        "X-Container-Read": "test:tester3"})[0] == 204
    _, owner_view, _ = tester.req("HEAD", f"/{container}")
    assert owner_view["x-container-meta-temp-url-key"] == "secret"
    status, headers, _ = reader.req("HEAD", f"/{container}")
    assert status == 204 and headers["x-container-meta-other"] == "shown"
    assert "x-container-meta-temp-url-key" not in headers


def test_post_keeps_static_large_object(tester, container):
    """test_slo test_slo_post_the_manifest_metadata_update."""
    for name in "ab":
        assert tester.req("PUT", f"/{container}/{name}", body=name.encode() * 10)[0] == 201
    manifest = json.dumps([{"path": f"/{container}/a"}, {"path": f"/{container}/b"}]).encode()
    assert tester.req("PUT", f"/{container}/m?multipart-manifest=put", body=manifest)[0] == 201
    assert tester.req("POST", f"/{container}/m", {"X-Object-Meta-Post": "update"})[0] == 202
    status, headers, body = tester.req("GET", f"/{container}/m")
    assert (status, body) == (200, b"a" * 10 + b"b" * 10)
    assert headers["x-static-large-object"] == "True" and headers["x-object-meta-post"] == "update"
    assert headers["content-type"] == "application/octet-stream"


def test_account_xml_listing_names_storage_policy(tester, container):
    """tests.py TestAccount.testContainerListing (xml parser wants storage_policy)."""
    status, _, body = tester.req("GET", f"?format=xml&prefix={container}")
    assert status == 200
    [node] = minidom.parseString(body).getElementsByTagName("container")
    assert node.getElementsByTagName("storage_policy")[0].childNodes[0].nodeValue == "Policy-0"


def test_container_last_modified(tester, container):
    """tests.py TestContainer.testContainerInfo / testContainerLastModified."""
    _, headers, _ = tester.req("HEAD", f"/{container}")
    expected = email.utils.formatdate(math.ceil(float(headers["x-put-timestamp"])), usegmt=True)
    assert headers["last-modified"] == expected


def test_metadata_total_over_limit_across_posts_is_400(tester, container):
    """test_account / test_container test_*bad_metadata3: each POST fits, the sum does not."""
    near_full = {f"X-Container-Meta-{i:02d}": "v" * 250 for i in range(16)}  # 16 * 252 = 4032 of 4096
    assert tester.req("POST", f"/{container}", near_full)[0] == 204
    status, _, body = tester.req("POST", f"/{container}", {"X-Container-Meta-C": "w" * 100})
    assert status == 400, body
    assert "x-container-meta-c" not in tester.req("HEAD", f"/{container}")[1]


def test_long_container_name_put_is_html_400(tester):
    """test_container test_long_name_content_type: swob's default error type."""
    status, headers, _ = tester.req("PUT", "/" + "X" * 2048)
    assert (status, headers["content-type"]) == (400, "text/html; charset=UTF-8")


def test_info_does_not_advertise_cors(cluster):
    """No CORS in the proxy yet: /info must not claim a CORS mode (test_object test_cors skips)."""
    conn = http.client.HTTPConnection("127.0.0.1", cluster.proxy_port, timeout=30)
    try:
        conn.request("GET", "/info")
        info = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert "strict_cors_mode" not in info["swift"] and "cors" not in info
    assert "slo" in info and info["swift"]["max_meta_overall_size"] == 4096


def test_empty_version_segment_is_404(tester):
    """tests.py TestAccount.testInvalidPath: GET //v1/<account> is not an API path."""
    conn = http.client.HTTPConnection("127.0.0.1", tester.port, timeout=30)
    try:
        conn.request("GET", f"//v1/{tester.account}", headers={"X-Auth-Token": tester.token})
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status == 404


@pytest.mark.parametrize(("path", "status"), [("/info%20asdf", 412), ("/foo", 412), ("/v2/AUTH_x", 400),
                                             ("/info/x", 400)])
def test_path_without_account_is_412_bad_url(tester, path, status):
    """test_protocol.py test_invalid_path_info: a path of one segment names no
    controller (412 "Bad URL", with a transaction id); a bad version before an
    account is 400."""
    conn = http.client.HTTPConnection("127.0.0.1", tester.port, timeout=30)
    try:
        conn.request("GET", path, headers={"X-Auth-Token": tester.token})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == status, (path, resp.status, body)
    assert resp.getheader("x-trans-id")
    if status == 412:
        assert body == b"Bad URL"


@pytest.mark.parametrize("spec", ["BYTES=0-9", "bytes = 0-9", "BYTES = 0 - 9", "bytes=0 - 9", "bytes=0-9 "])
def test_range_with_whitespace(tester, container, spec):
    """tests.py TestFile.testRangedGetsWithLWSinHeader."""
    assert tester.req("PUT", f"/{container}/r", body=bytes(range(100)))[0] == 201
    status, _, body = tester.req("GET", f"/{container}/r", {"Range": spec})
    assert (status, body) == (206, bytes(range(10)))


def test_if_match_with_old_if_unmodified_since_is_412(tester, container):
    """tests.py TestFileComparison.testIfMatchAndUnmodified: both are checked."""
    status, headers, _ = tester.req("PUT", f"/{container}/c", body=b"x")
    old = email.utils.formatdate(0, usegmt=True)
    status, _, _ = tester.req("GET", f"/{container}/c", {"If-Match": headers["etag"], "If-Unmodified-Since": old})
    assert status == 412
    status, _, _ = tester.req("GET", f"/{container}/c", {"If-Match": headers["etag"]})
    assert status == 200


def test_slo_part_number(tester, container):
    """test_slo *part_number*: one segment as a 206 of the whole; 400; 416; COPY of a part."""
    for name in "abc":
        assert tester.req("PUT", f"/{container}/{name}", body=name.encode() * 5)[0] == 201
    manifest = json.dumps([{"path": f"/{container}/{n}"} for n in "abc"]).encode()
    assert tester.req("PUT", f"/{container}/m?multipart-manifest=put", body=manifest)[0] == 201
    status, headers, body = tester.req("GET", f"/{container}/m?part-number=2")
    assert (status, body, headers["content-range"], headers["x-parts-count"]) == (206, b"bbbbb", "bytes 5-9/15", "3")
    status, headers, _ = tester.req("HEAD", f"/{container}/m?part-number=3")
    assert (status, headers["content-length"], headers["content-range"]) == (206, "5", "bytes 10-14/15")
    status, _, body = tester.req("GET", f"/{container}/m?part-number=0")
    assert (status, body) == (400, b"Part number must be an integer greater than 0")
    status, headers, body = tester.req("GET", f"/{container}/m?part-number=4")
    assert (status, headers["content-range"], body) == (416, "bytes */15", b"The requested part number is not satisfiable")
    assert tester.req("COPY", f"/{container}/m?part-number=1", {"Destination": f"{container}/copy"})[0] == 201
    assert tester.req("GET", f"/{container}/copy")[2] == b"aaaaa"


def test_dlo_multiple_ranges_served_whole(tester, container):
    """test_dlo test_get_multiple_ranges: a multi-range GET of a DLO is 200, all bytes."""
    for letter in "ab":
        assert tester.req("PUT", f"/{container}/seg/{letter}", body=letter.encode() * 10)[0] == 201
    assert tester.req("PUT", f"/{container}/dlo", {"X-Object-Manifest": f"{container}/seg/"})[0] == 201
    status, _, body = tester.req("GET", f"/{container}/dlo", {"Range": "bytes=0-4,10-14"})
    assert (status, body) == (200, b"a" * 10 + b"b" * 10)
    status, _, body = tester.req("GET", f"/{container}/dlo", {"Range": "bytes=8-11"})
    assert (status, body) == (206, b"aabb")


def test_listing_path_query(tester, container):
    """tests.py TestContainerPaths: ?path= lists one directory level, markers as objects."""
    for name in ("file1", "dir1/", "dir1/file2", "dir1/sub/", "dir1/sub/f", "dir2/"):
        assert tester.req("PUT", f"/{container}/{name}", body=b"x")[0] == 201

    def listing(path: str, reverse: str = "") -> list[str]:
        status, _, body = tester.req("GET", f"/{container}?format=json&path={path}&reverse={reverse}")
        assert status == 200
        return [row["name"] for row in json.loads(body)]

    assert listing("") == ["dir1/", "dir2/", "file1"]
    assert listing("dir1") == listing("dir1/") == ["dir1/file2", "dir1/sub/"]
    assert listing("dir1", "on") == ["dir1/sub/", "dir1/file2"]
    assert listing("dir1/sub") == ["dir1/sub/f"]


def test_copy_from_raw_utf8_header(tester, container):
    """tests.py TestFileUTF8.testCopyFromHeader: X-Copy-From / Destination as raw UTF-8 bytes."""
    assert tester.req("PUT", f"/{container}/%E2%98%83", body=b"snow")[0] == 201
    assert tester.req("PUT", f"/{container}/copied", {"X-Copy-From": f"{container}/\u2603"})[0] == 201
    assert tester.req("GET", f"/{container}/copied")[2] == b"snow"
    assert tester.req("COPY", f"/{container}/%E2%98%83", {"Destination": f"{container}/\u00fc"})[0] == 201
    assert tester.req("GET", f"/{container}/%C3%BC")[2] == b"snow"


def test_marker_with_nul(tester, container):
    """tests.py TestAccountSorting.testAccountContainerListSortingByMarkersInclusive."""
    for name in ("a", "b", "c"):
        assert tester.req("PUT", f"/{container}/{name}", body=b"x")[0] == 201
    status, _, body = tester.req("GET", f"/{container}?reverse=on&marker=b%00&end_marker=a")
    assert (status, body) == (200, b"b\n")


def test_versioning_headers_refused(tester, container):
    """No object versioning: X-Versions-Location / X-History-Location are 412, as
    Swift with versioned writes disabled (test_versioned_writes then skips)."""
    status, _, body = tester.req("PUT", f"/conf-{uuid.uuid4().hex[:8]}", {"X-Versions-Location": "v"})
    assert (status, body) == (412, b"Versioned Writes is disabled")
    assert tester.req("POST", f"/{container}", {"X-History-Location": "v"})[0] == 412
    assert "x-history-location" not in tester.req("HEAD", f"/{container}")[1]
    assert tester.req("POST", f"/{container}", {"X-Versions-Location": ""})[0] == 204  # removal: fine


def test_www_authenticate_realm_is_quoted(cluster):
    """tests.py TestAccount.testQuotedWWWAuthenticateHeader: no header injection
    through the account name, and a 401 rather than a dropped connection."""
    from urllib.parse import quote

    hax = 'AUTH_haxx"\nContent-Length: 5\n\n<b>hi'
    conn = http.client.HTTPConnection("127.0.0.1", cluster.proxy_port, timeout=30)
    try:
        conn.request("GET", "/v1/" + quote(hax))
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status == 401
    assert resp.getheader("www-authenticate") == f'Swift realm="{quote(hax)}"'


def test_file_size_limit_is_swifts(tester, container):
    """tests.py TestFile.testFileSizeLimit: max_file_size (5 GiB + 2) itself is
    accepted (the server waits for the body), one byte more is 413 at once."""
    import socket

    def first_bytes(length: int, wait: float) -> bytes:
        sock = socket.create_connection(("127.0.0.1", tester.port), timeout=wait)
        try:
            sock.sendall((f"PUT /v1/{tester.account}/{container}/big HTTP/1.1\r\nHost: x\r\n"
                          f"X-Auth-Token: {tester.token}\r\nContent-Length: {length}\r\n\r\n").encode())
            try:
                return sock.recv(64)
            except TimeoutError:
                return b""
        finally:
            sock.close()

    limit = 5368709122
    assert first_bytes(limit + 1, 10).startswith(b"HTTP/1.1 413")
    assert first_bytes(limit, 1.0) == b""


def test_utf8_content_type_listed_as_utf8(tester, container):
    """tests.py TestFileUTF8.testSerialization: a raw UTF-8 Content-Type reads
    back byte for byte and is listed as that text."""
    ctype = "text/\u2603\u00fc"
    assert tester.req("PUT", f"/{container}/u", {"Content-Type": ctype}, b"x")[0] == 201
    _, headers, _ = tester.req("HEAD", f"/{container}/u")
    assert headers["content-type"].encode("latin-1").decode("utf-8") == ctype
    _, _, body = tester.req("GET", f"/{container}?format=json")
    assert [r["content_type"] for r in json.loads(body) if r["name"] == "u"] == [ctype]


def _listed(tester, container: str, name: str) -> dict:
    status, _, body = tester.req("GET", f"/{container}?format=json")
    assert status == 200
    return next(row for row in json.loads(body) if row["name"] == name)


def test_post_content_type_updates_listing(tester, container):
    """tests.py TestFile.test_POST: a POST that changes Content-Type shows in
    the container listing, with the data's size and etag and a newer
    last_modified (the object servers send a row with X-Content-Type-Timestamp)."""
    body = b"x" * 1024
    assert tester.req("PUT", f"/{container}/f", {"Content-Type": "text/foobar"}, body)[0] == 201
    before = _listed(tester, container, "f")
    assert before["content_type"] == "text/foobar"
    headers = {"Content-Type": "image/foobarbaz", "X-Object-Meta-Test": "blah"}
    assert tester.req("POST", f"/{container}/f", headers)[0] == 202
    status, head, _ = tester.req("HEAD", f"/{container}/f")
    assert (status, head["content-type"]) == (200, "image/foobarbaz")
    after = _listed(tester, container, "f")
    assert (after["content_type"], after["bytes"], after["hash"]) == (
        "image/foobarbaz", 1024, before["hash"])
    assert after["last_modified"] > before["last_modified"]
    # a POST without Content-Type keeps the type an earlier POST set (test_slo
    # test_slo_container_listing's second POST); a later PUT replaces it
    assert tester.req("POST", f"/{container}/f", {"X-Object-Meta-Test": "again"})[0] == 202
    status, head, _ = tester.req("HEAD", f"/{container}/f")
    assert (status, head["content-type"], head["x-object-meta-test"]) == (200, "image/foobarbaz", "again")
    assert not [k for k in head if "sysmeta" in k]
    assert _listed(tester, container, "f")["content_type"] == "image/foobarbaz"
    assert tester.req("PUT", f"/{container}/f", {"Content-Type": "text/plain"}, b"yy")[0] == 201
    after_put = _listed(tester, container, "f")
    assert (after_put["content_type"], after_put["bytes"]) == ("text/plain", 2)


def test_slo_post_keeps_listing_bytes(tester, container):
    """test_slo test_slo_container_listing: a POST changing an SLO manifest's
    Content-Type keeps its listing bytes (the segments' total) and slo_etag."""
    for name in "ab":
        assert tester.req("PUT", f"/{container}/{name}", body=name.encode() * 10)[0] == 201
    manifest = json.dumps([{"path": f"/{container}/a"}, {"path": f"/{container}/b"}]).encode()
    assert tester.req("PUT", f"/{container}/m?multipart-manifest=put", body=manifest)[0] == 201
    before = _listed(tester, container, "m")
    assert before["bytes"] == 20 and before["slo_etag"]
    assert tester.req("POST", f"/{container}/m", {"Content-Type": "image/jpeg"})[0] == 202
    status, head, _ = tester.req("HEAD", f"/{container}/m")
    assert (status, head["content-type"], head["content-length"]) == (200, "image/jpeg", "20")
    after = _listed(tester, container, "m")
    assert (after["content_type"], after["bytes"], after["slo_etag"], after["hash"]) == (
        "image/jpeg", 20, before["slo_etag"], before["hash"])
    status, _, body = tester.req("GET", f"/{container}/m")
    assert (status, body) == (200, b"a" * 10 + b"b" * 10)
    assert tester.req("POST", f"/{container}/m", {"X-Object-Meta-Test": "blah"})[0] == 202
    assert tester.req("HEAD", f"/{container}/m")[1]["content-type"] == "image/jpeg"
    assert _listed(tester, container, "m")["content_type"] == "image/jpeg"
