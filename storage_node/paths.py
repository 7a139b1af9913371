"""Backend request paths and on-disk object locations (pure: no I/O).

A backend path is ``/<drive>/<partition>[/<account>[/<container>[/<object>]]]``
(BACKEND_API.md); object names may contain ``/``, so the path is split at most
four times. On disk an object lives in
``<drive>/objects/<partition>/<suffix>/<hash>/`` (DESIGN "Disk"), where
``hash = ring.hashing.object_hash(secret, a, c, o)`` and ``suffix`` its last
three hex chars.
"""

from __future__ import annotations

from dataclasses import dataclass

from ring.hashing import object_hash, suffix_of


class BadPath(ValueError):
    """A backend path that cannot name anything; ``status`` is the HTTP hint."""

    status = 400


@dataclass(frozen=True, slots=True)
class BackendPath:
    drive: str
    partition: int
    account: str | None = None
    container: str | None = None
    obj: str | None = None

    @property
    def depth(self) -> int:
        """2 = partition only, 3 = account, 4 = container, 5 = object."""
        return 2 + sum(x is not None for x in (self.account, self.container, self.obj))

    @property
    def name(self) -> str:
        """``/a[/c[/o]]`` (empty for a partition path)."""
        return "".join("/" + x for x in (self.account, self.container, self.obj) if x is not None)


def _valid_drive(drive: str) -> bool:
    return bool(drive) and drive not in (".", "..") and "/" not in drive and "\x00" not in drive


def split_backend_path(path: str) -> BackendPath:
    """Parse a percent-decoded backend path; raise ``BadPath`` saying why."""
    if not path.startswith("/"):
        raise BadPath(f"path must start with '/': {path!r}")
    parts = path[1:].split("/", 4)
    if len(parts) < 2:
        raise BadPath("path must be /<drive>/<partition>[/<account>[/<container>[/<object>]]]")
    drive, part_s = parts[0], parts[1]
    if not _valid_drive(drive):
        raise BadPath(f"invalid drive name {drive!r}")
    if not part_s.isdigit() or len(part_s) > 10:
        raise BadPath(f"invalid partition {part_s!r}")
    rest = parts[2:]
    if rest and rest[-1] == "" and len(rest) < 3:
        rest = rest[:-1]  # tolerate a trailing slash on /d/p/ and /d/p/a/
    for label, value in zip(("account", "container"), rest[:2], strict=False):
        if not value:
            raise BadPath(f"empty {label} name")
    if len(rest) == 3 and not rest[2]:
        raise BadPath("empty object name")
    names: list[str | None] = [*rest, None, None, None][:3]
    return BackendPath(drive, int(part_s), names[0], names[1], names[2])


def parse_suffixes(text: str) -> list[str]:
    """``abc-def-012`` -> ``["abc", "def", "012"]``; each must be three hex chars."""
    if not text:
        return []
    out = text.split("-")
    for s in out:
        if len(s) != 3 or any(ch not in "0123456789abcdef" for ch in s):
            raise BadPath(f"invalid suffix {s!r} (want three lowercase hex chars)")
    return out


def object_dir(partition: int, name_hash: str) -> str:
    """The object's directory relative to the drive root."""
    return f"objects/{partition}/{suffix_of(name_hash)}/{name_hash}"


def hash_for(secret: str, p: BackendPath) -> str:
    return object_hash(secret, p.account or "", p.container, p.obj)
