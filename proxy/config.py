"""The proxy's configuration: the ``[proxy]`` table of the cluster TOML file.

Every key has a default that makes ``ringstack dev up`` work with no file at
all; unknown keys are refused so a typo is not silently ignored. Limits follow
Swift's documented constraints (``swift.common.constraints``) so clients and
scripts written for Swift see the same edges.

``[tempauth]`` (users, keys, token life) is read by ``proxy.tempauth``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from common.config import ClusterConfig, ConfigError

CONSISTENCY_LEVELS = ("one", "quorum", "all")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    # cluster-wide
    hash_secret: str = "ringstack-dev-secret"
    ring_dir: str = ""
    # processes
    workers: int = 1
    # backend timeouts (seconds)
    conn_timeout: float = 0.5
    node_timeout: float = 10.0
    post_quorum_timeout: float = 0.5
    client_timeout: float = 60.0
    # error limiting (Swift's error_suppression_limit / _interval)
    error_suppression_limit: int = 10
    error_suppression_interval: float = 60.0
    # handoffs tried per request beyond the primaries (Swift: request_node_count = 2 * replicas)
    request_node_count_factor: int = 2
    # consistency defaults (per request: X-Consistency / X-Newest)
    read_consistency: str = "one"
    write_consistency: str = "quorum"
    # account / container behaviour
    account_autocreate: bool = True
    recheck_container_existence: float = 5.0
    recheck_account_existence: float = 5.0
    # streaming
    chunk_size: int = 262144  # PUT bytes per node send when the body is read on the event loop (put._fan_out)
    # Swift's constraints
    max_file_size: int = 5368709122
    max_meta_name_length: int = 128
    max_meta_value_length: int = 256
    max_meta_count: int = 90
    max_meta_overall_size: int = 4096
    max_header_size: int = 8192
    max_object_name_length: int = 1024
    container_listing_limit: int = 10000
    account_listing_limit: int = 10000
    max_account_name_length: int = 256
    max_container_name_length: int = 256
    # logging
    log_requests: bool = True
    # middlewares, outermost first (names known to ``proxy.pipeline``)
    pipeline: str = "catch_errors gatekeeper proxy_logging healthcheck info tempauth copy slo"
    # the whole cluster file, for the middlewares: ``conf.section("tempauth")``
    cluster: ClusterConfig = field(default_factory=ClusterConfig, compare=False, repr=False)

    def section(self, name: str) -> dict[str, Any]:
        """A raw table of the cluster file (``{}`` when absent)."""
        return self.cluster.section(name)

    def validate(self) -> ProxyConfig:
        if self.workers < 1:
            raise ConfigError(f"[proxy] workers must be >= 1, got {self.workers}")
        for name in ("conn_timeout", "node_timeout", "post_quorum_timeout", "client_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"[proxy] {name} must be > 0")
        for name in ("read_consistency", "write_consistency"):
            if getattr(self, name) not in CONSISTENCY_LEVELS:
                raise ConfigError(f"[proxy] {name} must be one of {', '.join(CONSISTENCY_LEVELS)}")
        if self.chunk_size < 1024:
            raise ConfigError("[proxy] chunk_size must be >= 1024")
        return self


_FIELDS = {f.name: f for f in fields(ProxyConfig)}


def proxy_config(cluster: ClusterConfig, **overrides: Any) -> ProxyConfig:
    """Build the frozen config from the cluster file plus command-line overrides."""
    section = dict(cluster.section("proxy"))
    values: dict[str, Any] = {
        "hash_secret": cluster.hash_secret,
        "ring_dir": cluster.ring_dir,
        "cluster": cluster,
    }
    for key, raw in section.items():
        if key not in _FIELDS or key in ("cluster", "hash_secret", "ring_dir"):
            raise ConfigError(f"[proxy] unknown key {key!r}")
        default = getattr(ProxyConfig(), key)
        try:
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise TypeError
                value: Any = raw
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"[proxy] {key} must be a {type(default).__name__}, got {raw!r}") from None
        values[key] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(ProxyConfig(), **values).validate()
