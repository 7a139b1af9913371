"""Regression tests for behaviours Placement's gabbi suite caught in ours.

One real ``ringstack serve placement`` per module, plain HTTP via httpx;
each test names the gabbit it comes from. The whole suite is run by
``tests/conformance/placement_gabbi.py`` (see tests/conformance/README.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ServerProcess, ringstack_argv, start_server

ADMIN = {"x-auth-token": "admin"}


def _serve(tmp: Path, *extra: str) -> ServerProcess:
    return start_server(ringstack_argv("serve", "placement", "--data", str(tmp / "data"),
                                       "--port", "0", "--no-fsync", "--log-level", "WARNING",
                                       *extra))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = _serve(tmp_path_factory.mktemp("placement"))
    try:
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as c:
            yield c
    finally:
        server.stop()


def _provider(c: httpx.Client, name: str, **extra: str) -> str:
    rp = str(uuid.uuid4())
    r = c.post("/resource_providers", json={"name": name, "uuid": rp, **extra},
               headers={"openstack-api-version": "placement 1.14"})
    assert r.status_code == 201, r.text
    return rp


def test_put_provider_without_content_type_is_415_even_when_missing(client: httpx.Client) -> None:
    """basic-http.yaml "PUT resource provider no body": the media type is
    checked before the provider is looked up (Placement's require_content)."""
    r = client.put(f"/resource_providers/{uuid.uuid4()}")
    assert r.status_code == 415, r.text
    assert "The media type None is not supported, use application/json" in r.text
    r = client.put(f"/resource_providers/{uuid.uuid4()}/aggregates", content=b"[]",
                   headers={"content-type": "text/plain"})
    assert r.status_code == 415, r.text
    # with JSON declared, a missing provider is still 404 before schema errors
    r = client.put(f"/resource_providers/{uuid.uuid4()}", json={"bogus": 1})
    assert r.status_code == 404, r.text


def test_candidate_summaries_list_standard_traits_before_custom(client: httpx.Client) -> None:
    """allocation-candidates-root-required.yaml "limit to multiattach-capable
    unsuffixed sharing": Placement lists traits by trait id, so a standard
    trait comes before a custom one created later (not alphabetical)."""
    rp = _provider(client, "trait-order")
    v = {"openstack-api-version": "placement 1.17"}
    assert client.put("/traits/CUSTOM_AAA_ORDER", headers=v).status_code in (201, 204)
    assert client.put("/resource_classes/CUSTOM_TRAIT_ORDER_RC", headers=v).status_code == 201
    r = client.post(f"/resource_providers/{rp}/inventories",
                    json={"resource_class": "CUSTOM_TRAIT_ORDER_RC", "total": 4,
                          "resource_provider_generation": 0})
    assert r.status_code == 201, r.text
    r = client.put(f"/resource_providers/{rp}/traits", headers=v, json={
        "traits": ["CUSTOM_AAA_ORDER", "HW_NUMA_ROOT"], "resource_provider_generation": 1})
    assert r.status_code == 200, r.text
    r = client.get("/allocation_candidates?resources=CUSTOM_TRAIT_ORDER_RC:1", headers=v)
    assert r.status_code == 200, r.text
    assert r.json()["provider_summaries"][rp]["traits"] == ["HW_NUMA_ROOT", "CUSTOM_AAA_ORDER"]


def test_cors_when_an_origin_is_configured(tmp_path: Path) -> None:
    """cors.yaml (CORSFixture: allowed_origin http://valid.example.com,
    allow_headers openstack-api-version) and non-cors.yaml (no CORS: OPTIONS 405)."""
    server = _serve(tmp_path, "--cors-allowed-origin", "http://valid.example.com",
                    "--cors-allow-headers", "openstack-api-version")
    try:
        with httpx.Client(base_url=server.url, headers={"x-auth-token": "user"}) as c:
            ok = {"origin": "http://valid.example.com", "access-control-request-method": "GET"}
            r = c.options("/", headers={**ok, "access-control-request-headers":
                                        "openstack-api-version"})
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == "http://valid.example.com"
            assert r.headers["access-control-allow-headers"] == "openstack-api-version"
            bad = {**ok, "origin": "http://invalid.example.com"}
            r = c.options("/", headers=bad)
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
            r = c.get("/", headers=ok)
            assert r.headers["access-control-allow-origin"] == "http://valid.example.com"
            assert r.headers["vary"] == "openstack-api-version,Origin"
            assert "access-control-allow-origin" not in c.get("/", headers=bad).headers
    finally:
        server.stop()


def test_no_cors_by_default(client: httpx.Client) -> None:
    hdrs = {"origin": "http://valid.example.com", "access-control-request-method": "GET"}
    assert client.options("/", headers=hdrs).status_code == 405
    assert "access-control-allow-origin" not in client.get("/", headers=hdrs).headers


def test_non_integer_content_length_says_why(client: httpx.Client) -> None:
    """basic-http.yaml "bad content length not int" (gabbi's httpx client refuses
    to send it, so the harness cannot; a raw socket can)."""
    import socket

    url = httpx.URL(str(client.base_url))
    body = b'{"uuid": "ce13d7f1-9988-4dfd-8e16-ce071802eb36"}'
    with socket.create_connection((url.host, url.port), timeout=10) as s:
        s.sendall(b"POST /resource_providers HTTP/1.1\r\nhost: x\r\nx-auth-token: admin\r\n"
                  b"content-type: application/json\r\ncontent-length: hi mom\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert b"content-length header must be an integer" in data, data
