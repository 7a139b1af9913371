"""Cluster configuration: one TOML file per cluster.

Every component reads its own section (``[proxy]``, ``[storage]``,
``[replicator]``, ``[placement]``, ...) and turns it into its own frozen
dataclass in its own package; this module only loads the file and holds the
values every component shares. With no file at all the defaults make
``ringstack dev up`` work.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HASH_SECRET = "ringstack-dev-secret"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The loaded cluster config. ``sections`` keeps each component's raw
    table; ``path`` is where it came from (None: defaults only)."""

    hash_secret: str = DEFAULT_HASH_SECRET
    ring_dir: str = ""
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None

    def section(self, name: str) -> dict[str, Any]:
        value = self.sections.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table")
        return value


def load_config(path: str | Path | None) -> ClusterConfig:
    """Load a cluster TOML file; ``None`` gives the defaults."""
    if path is None:
        return ClusterConfig()
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {p}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    cluster = raw.get("cluster", {})
    ring_dir = cluster.get("ring_dir", "")
    if ring_dir and not Path(ring_dir).is_absolute():
        ring_dir = str((p.parent / ring_dir).resolve())
    return ClusterConfig(
        hash_secret=str(cluster.get("hash_secret", DEFAULT_HASH_SECRET)),
        ring_dir=ring_dir,
        sections={k: v for k, v in raw.items() if isinstance(v, dict)},
        path=str(p.resolve()),
    )
