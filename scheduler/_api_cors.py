"""CORS for the Placement API, as oslo.middleware's ``CORS`` does it.

Placement wraps itself in oslo.middleware's CORS filter when
``[cors] allowed_origin`` is set; with no origin configured there is no
filter at all (an ``OPTIONS`` is then the app's own 405). The rules, from
oslo.middleware (W3C CORS sections cited there):

- preflight (``OPTIONS``): the answer is 200 whatever the app said unless it
  was already 2xx; the allow headers are added only when the ``Origin`` is
  configured (or ``*`` is), ``Access-Control-Request-Method`` is present
  and allowed, and every ``Access-Control-Request-Headers`` entry is in
  ``allow_headers`` plus the simple headers (case-insensitive);
- any other request with a configured ``Origin``: ``Vary: Origin`` (added to
  an existing ``Vary``), ``Access-Control-Allow-Origin``, credentials and
  exposed headers.

Pure: headers in, headers out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SIMPLE_HEADERS = ("Accept", "Accept-Language", "Content-Type", "Cache-Control",
                  "Content-Language", "Expires", "Last-Modified", "Pragma")
ALL_METHODS = ("OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH")


@dataclass(frozen=True, slots=True)
class CorsConfig:
    """oslo.middleware's ``[cors]`` options with their defaults."""

    allowed_origins: frozenset[str]
    allow_headers: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ALL_METHODS
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = True
    max_age: int = 3600

    def origin(self, headers: Mapping[str, str]) -> str | None:
        """The configured origin that matches the request's, or None."""
        origin = headers.get("origin")
        if origin is None:
            return None
        if origin in self.allowed_origins:
            return origin
        return "*" if "*" in self.allowed_origins else None


def preflight_headers(cfg: CorsConfig, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Headers for an ``OPTIONS`` answer (``headers``: lower-cased request headers)."""
    origin = cfg.origin(headers)
    method = headers.get("access-control-request-method")
    if origin is None or method is None or method not in cfg.allow_methods:
        return []
    wanted = [h.strip() for h in headers.get("access-control-request-headers", "").split(",")
              if h.strip()]
    permitted = {h.upper() for h in (*cfg.allow_headers, *SIMPLE_HEADERS)}
    if any(h.upper() not in permitted for h in wanted):
        return []
    out = [("vary", "Origin"), ("access-control-allow-origin", origin)]
    if cfg.allow_credentials:
        out.append(("access-control-allow-credentials", "true"))
    if cfg.max_age:
        out.append(("access-control-max-age", str(cfg.max_age)))
    out.append(("access-control-allow-methods", method))
    if wanted:
        out.append(("access-control-allow-headers", ",".join(wanted)))
    return out


def request_headers(cfg: CorsConfig, headers: Mapping[str, str],
                    vary: str | None) -> list[tuple[str, str]]:
    """Headers to set on an ordinary answer; ``vary`` is the answer's own Vary."""
    origin = cfg.origin(headers)
    if origin is None:
        return []
    out = [("vary", f"{vary},Origin" if vary else "Origin"),
           ("access-control-allow-origin", origin)]
    if cfg.allow_credentials:
        out.append(("access-control-allow-credentials", "true"))
    if cfg.expose_headers:
        out.append(("access-control-expose-headers", ",".join(cfg.expose_headers)))
    return out
