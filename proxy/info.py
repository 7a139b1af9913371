"""``GET /info``: the cluster's capabilities, as Swift's ``/info`` (what
``swift capabilities`` prints and what swiftclient reads to decide on SLO).

The constraint values are the proxy's own (``proxy.config.ProxyConfig``), so
what ``/info`` advertises is what the proxy enforces. Only features that
exist are listed: ``slo`` and ``tempauth`` (container and account ACLs).
No ``strict_cors_mode``: the proxy has no CORS handling yet, and Swift's
functional tests skip their CORS checks when the key is absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from common.http import Request, Response
from proxy import _slo_core

VERSION = "0.1.0"
CONSTRAINT_KEYS = {
    "max_file_size": 5368709122,
    "max_meta_name_length": 128,
    "max_meta_value_length": 256,
    "max_meta_count": 90,
    "max_meta_overall_size": 4096,
    "max_header_size": 8192,
    "max_object_name_length": 1024,
    "container_listing_limit": 10000,
    "account_listing_limit": 10000,
    "max_account_name_length": 256,
    "max_container_name_length": 256,
}


def capabilities(conf: Any = None) -> dict[str, Any]:
    """The ``/info`` document for a proxy configured with ``conf``."""
    swift: dict[str, Any] = {"version": VERSION}
    for key, default in CONSTRAINT_KEYS.items():
        swift[key] = int(getattr(conf, key, default) or default)
    swift.update(
        {
            "extra_header_count": 0,
            "valid_api_versions": ["v1", "v1.0"],
            "allow_account_management": False,
            "account_autocreate": bool(getattr(conf, "account_autocreate", True)),
            "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": True}],
        }
    )
    return {
        "swift": swift,
        "slo": {
            "max_manifest_segments": _slo_core.MAX_MANIFEST_SEGMENTS,
            "max_manifest_size": _slo_core.MAX_MANIFEST_SIZE,
            "yield_frequency": 10,
            "min_segment_size": 1,
            "allow_async_delete": False,
        },
        "tempauth": {"account_acls": True},
        "ringstack": {"version": VERSION, "consistency_levels": ["one", "quorum", "all"]},
    }


class Info:
    def __init__(self, app: Callable[[Request], Any], conf: Any = None) -> None:
        self.app = app
        self.body = json.dumps(capabilities(conf), sort_keys=True).encode()

    async def __call__(self, request: Request) -> Response:
        if request.path != "/info":
            return await self.app(request)
        if request.method == "OPTIONS":
            return Response(200, {"allow": "GET, HEAD, OPTIONS"}, b"")
        if request.method not in ("GET", "HEAD"):
            return Response.text(405, headers={"allow": "GET, HEAD, OPTIONS"})
        headers = {"content-type": "application/json; charset=utf-8", "content-length": str(len(self.body))}
        return Response(200, headers, self.body if request.method == "GET" else b"")


def filter_factory(app: Callable[[Request], Any], conf: Any) -> Info:
    return Info(app, conf)
