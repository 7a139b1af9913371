"""scheduler._api_cors: oslo.middleware's CORS rules, pure."""

from __future__ import annotations

from scheduler._api_cors import CorsConfig, preflight_headers, request_headers

CFG = CorsConfig(frozenset({"http://a.example"}), ("openstack-api-version",))


def test_preflight_allows_configured_origin_method_and_headers() -> None:
    out = dict(preflight_headers(CFG, {"origin": "http://a.example",
                                       "access-control-request-method": "PUT",
                                       "access-control-request-headers":
                                       "OpenStack-API-Version, content-type"}))
    assert out["access-control-allow-origin"] == "http://a.example"
    assert out["access-control-allow-methods"] == "PUT"
    assert out["access-control-allow-headers"] == "OpenStack-API-Version,content-type"
    assert out["access-control-allow-credentials"] == "true"
    assert out["access-control-max-age"] == "3600"


def test_preflight_refuses_unknown_header_origin_or_missing_method() -> None:
    base = {"origin": "http://a.example", "access-control-request-method": "GET"}
    assert preflight_headers(CFG, {**base, "access-control-request-headers": "x-evil"}) == []
    assert preflight_headers(CFG, {**base, "origin": "http://b.example"}) == []
    assert preflight_headers(CFG, {"origin": "http://a.example"}) == []
    assert preflight_headers(CorsConfig(frozenset({"x"}), allow_methods=("GET",)),
                             {"origin": "x", "access-control-request-method": "PUT"}) == []


def test_request_headers_append_vary_and_wildcard_origin() -> None:
    out = dict(request_headers(CFG, {"origin": "http://a.example"}, "openstack-api-version"))
    assert out["vary"] == "openstack-api-version,Origin"
    star = CorsConfig(frozenset({"*"}), expose_headers=("x-a", "x-b"))
    out = dict(request_headers(star, {"origin": "http://z"}, None))
    assert out["access-control-allow-origin"] == "*" and out["vary"] == "Origin"
    assert out["access-control-expose-headers"] == "x-a,x-b"
    assert request_headers(CFG, {}, None) == []
