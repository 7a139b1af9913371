"""Swift's request constraints as pure checks (proxy/constraints.py): the
status and text Swift gives for each (invariant 5)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.http import Headers
from proxy import constraints as c
from proxy.config import ProxyConfig

CONF = ProxyConfig()


def test_split_api_path() -> None:
    assert c.split_api_path("/v1/a") == ("v1", "a", None, None)
    assert c.split_api_path("/v1/a/c") == ("v1", "a", "c", None)
    assert c.split_api_path("/v1/a/c/o/with/slashes") == ("v1", "a", "c", "o/with/slashes")
    assert c.split_api_path("/v1.0/a/c/") == ("v1.0", "a", "c", None)
    assert c.split_api_path("/v2/a")[0] == 400
    assert c.split_api_path("/v1")[0] == 412
    assert c.split_api_path("/v1//c")[0] == 404
    # One segment: no controller whatever it says, 412 "Bad URL" (Swift's
    # get_controller); the version is judged only when an account follows.
    assert c.split_api_path("/info asdf") == (412, "Bad URL")
    assert c.split_api_path("/foo") == (412, "Bad URL")
    assert c.split_api_path("/info/x")[0] == 400


@given(st.text(min_size=1, max_size=20))
def test_split_keeps_the_object_name_verbatim(name: str) -> None:
    parts = c.split_api_path(f"/v1/a/c/{name}")
    assert parts == ("v1", "a", "c", name) or (name.replace("/", "") == "" and parts[3] in (None, name))


def test_utf8_and_nul() -> None:
    assert c.check_utf8_path("/v1/a/c/\x00") == (412, "Invalid UTF8 or contains NULL")
    assert c.check_utf8_path("/v1/a/c/\udcff") == (412, "Invalid UTF8 or contains NULL")
    assert c.check_utf8_path("/v1/a/c/ok-\u00e9") is None


def test_name_lengths() -> None:
    assert c.check_names(CONF, "a" * 257, None, None, False)[0] == 400
    assert c.check_names(CONF, "a", "c" * 257, None, True) == (400, "Container name length of 257 longer than 256")
    assert c.check_names(CONF, "a", "c" * 257, None, False) is None  # only creation is refused, as Swift
    assert c.check_names(CONF, "a", "c", "o" * 1025, True) == (400, "Object name length of 1025 longer than 1024")


def test_metadata_limits() -> None:
    ok = [("x-object-meta-a", "b")]
    assert c.check_metadata(CONF, ok, "object") is None
    assert c.check_metadata(CONF, [("x-object-meta-", "b")], "object") == (400, "Metadata name cannot be empty")
    assert c.check_metadata(CONF, [("x-object-meta-" + "k" * 129, "v")], "object")[0] == 400
    assert c.check_metadata(CONF, [("x-object-meta-k", "v" * 257)], "object") == (
        400, "Metadata value longer than 256: x-object-meta-k")
    many = [(f"x-object-meta-{i}", "v") for i in range(91)]
    assert c.check_metadata(CONF, many, "object") == (400, "Too many metadata items; max 90")
    big = [(f"x-object-meta-{i:03d}", "v" * 200) for i in range(21)]
    assert c.check_metadata(CONF, big, "object") == (400, "Total metadata too large; max 4096")
    assert c.check_metadata(CONF, [("x-other", "v" * 8193)], "object")[0] == 400
    # only the target's own prefix counts
    assert c.check_metadata(CONF, [("x-container-meta-" + "k" * 200, "v")], "object") is None


def test_object_creation() -> None:
    assert c.check_object_creation(CONF, None, False, "o", "a/b") == (411, "Missing Content-Length header.")
    assert c.check_object_creation(CONF, None, True, "o", "a/b") is None
    assert c.check_object_creation(CONF, CONF.max_file_size + 1, False, "o", "a/b") == (413, "Your request is too large.")
    assert c.check_object_creation(CONF, 1, False, "o", None) == (400, "No content type")


def test_delete_at() -> None:
    now = 1_700_000_000.0
    assert c.delete_at(Headers({"x-delete-after": "60"}).get, now) == (1_700_000_060, None)
    assert c.delete_at(Headers({"x-delete-after": "x"}).get, now) == (None, (400, "Non-integer X-Delete-After"))
    assert c.delete_at(Headers({"x-delete-at": "1"}).get, now) == (None, (400, "X-Delete-At in past"))
    assert c.delete_at(Headers({"x-delete-at": "1800000000"}).get, now) == (1_800_000_000, None)
    assert c.delete_at(Headers({}).get, now) == (None, None)


def test_listing_limit() -> None:
    assert c.check_listing_limit({"limit": "10001"}, 10000) == (412, "Maximum limit is 10000")
    assert c.check_listing_limit({"limit": "10"}, 10000) is None
    # Swift ignores a limit that is not all digits (the default applies)
    assert c.check_listing_limit({"limit": "-1"}, 10000) is None
    assert c.check_listing_limit({"limit": "5000.0"}, 10000) is None
    assert c.listing_query({"limit": "5000.0", "prefix": "a b/\u00e9", "reverse": ""}) == "prefix=a%20b%2F%C3%A9&reverse"
    assert c.listing_query({"limit": "7", "format": "json"}) == "limit=7&format=json"
