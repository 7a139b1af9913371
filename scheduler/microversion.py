"""Placement microversions: parsing the request header and comparing versions.

Shared by every Placement handler (ours and the candidates engineer's). The
header is ``OpenStack-API-Version: placement X.Y`` (or ``latest``); it is
read with ``microversion_parse`` exactly as OpenStack Placement does.

Contract:
- no header: the minimum version (1.0);
- ``latest``: the maximum version;
- a string that is not ``N.M``: :class:`MicroversionError` with status 400
  (``invalid version string: ...``);
- a well-formed version outside [MIN, MAX]: :class:`MicroversionError` with
  status 406 (``Unacceptable version header: ...``).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import microversion_parse

SERVICE_TYPE = "placement"
HEADER = "openstack-api-version"


class Version(NamedTuple):
    """A microversion; tuple ordering is version ordering."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, min_version: tuple[int, int] | None = None,
                max_version: tuple[int, int] | None = None) -> bool:
        """True when ``min_version <= self <= max_version`` (either bound optional)."""
        if min_version is not None and self < tuple(min_version):
            return False
        return not (max_version is not None and self > tuple(max_version))

    def at_least(self, minor: int) -> bool:
        """Shorthand for ``self >= (1, minor)``."""
        return self >= (1, minor)


MIN_VERSION = Version(1, 0)
MAX_VERSION = Version(1, 39)


class MicroversionError(Exception):
    """A bad version header; ``status`` is 400 (malformed) or 406 (unsupported)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_version_string(text: str) -> Version:
    """Parse ``"1.23"`` or ``"latest"``; raise :class:`MicroversionError`."""
    text = text.strip()
    if text == "latest":
        return MAX_VERSION
    try:
        parsed = microversion_parse.parse_version_string(text)
        version = Version(int(parsed.major), int(parsed.minor))
    except (TypeError, ValueError, AttributeError):
        raise MicroversionError(400, f"invalid version string: {text}") from None
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise MicroversionError(406, f"Unacceptable version header: {text}")
    return version


def version_from_headers(headers: Mapping[str, str]) -> Version:
    """The requested microversion from (lower-cased) request headers."""
    folded = {k.lower(): v for k, v in headers.items()}
    try:
        text = microversion_parse.get_version(folded, service_type=SERVICE_TYPE)
    except (TypeError, ValueError) as exc:
        raise MicroversionError(400, f"invalid version string: {exc}") from None
    if text is None:
        return MIN_VERSION
    return parse_version_string(str(text))


def header_value(version: Version) -> str:
    """The response header value, e.g. ``placement 1.39``."""
    return f"{SERVICE_TYPE} {version}"
