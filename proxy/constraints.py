"""Swift's request constraints, as pure checks (sans-I/O).

Each check returns None (fine) or a ``(status, message)`` pair with the
status and plain-text body Swift gives (``swift.common.constraints`` and the
proxy server's ``handle_request``): 412 for a path that is not valid UTF-8
or contains NUL, 400 for names and metadata over the documented limits (Swift
answers 400, not 413, for those; 413 is for bodies over ``max_file_size``),
411 for a PUT with neither Content-Length nor chunked encoding. Invariant 5:
bad input gets a clear 4xx before anything is written anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from common.http import is_valid_utf8
from proxy.config import ProxyConfig

Problem = tuple[int, str] | None
VALID_VERSIONS = ("v1", "v1.0")


def split_api_path(path: str) -> tuple[str, str | None, str | None, str | None] | tuple[int, str]:
    """``/v1/a[/c[/o]]`` -> (version, account, container, object), or an error.

    Mirrors Swift's ``split_path(path, 1, 4, True)`` and ``get_controller``:
    the object keeps any further slashes; an empty account or container is
    refused; the version is checked only when an account follows it, so a
    path of one segment (``/foo``, ``/info%20asdf``) is 412 "Bad URL", as
    Swift answers (its test_protocol.py ``test_invalid_path_info``)."""
    if not path.startswith("/"):
        return 400, "Invalid path"
    segs = path[1:].split("/", 3)
    version = segs[0]
    if version == "":  # "//v1/a" or "/": Swift's split_path fails -> 404 (tests.py TestAccount.testInvalidPath)
        return 404, "Not Found"
    account = segs[1] if len(segs) > 1 else None
    container = segs[2] if len(segs) > 2 else None
    obj = segs[3] if len(segs) > 3 else None
    if account and version not in VALID_VERSIONS:
        return 400, "Invalid API version"
    if not account:  # whatever the first segment says: Swift finds no controller for it
        if account == "" and len(segs) > 2:
            return 404, "Invalid path"
        return 412, "Bad URL"
    if container == "":
        if obj:
            return 404, "Invalid path"
        container = None
    if obj == "":
        obj = None
    return version, account, container, obj


def check_utf8_path(path: str) -> Problem:
    if not is_valid_utf8(path):
        return 412, "Invalid UTF8 or contains NULL"
    return None


def check_names(conf: ProxyConfig, account: str, container: str | None, obj: str | None, creating: bool) -> Problem:
    if len(account) > conf.max_account_name_length:
        return 400, f"Account name length of {len(account)} longer than {conf.max_account_name_length}"
    if container is not None and creating and obj is None and len(container) > conf.max_container_name_length:
        return 400, f"Container name length of {len(container)} longer than {conf.max_container_name_length}"
    if obj is not None and creating and len(obj) > conf.max_object_name_length:
        return 400, f"Object name length of {len(obj)} longer than {conf.max_object_name_length}"
    return None


def check_metadata(conf: ProxyConfig, headers: Iterable[tuple[str, str]], target: str) -> Problem:
    """Swift's ``check_metadata`` for ``X-<target>-Meta-*`` headers."""
    prefix = f"x-{target}-meta-"
    count = 0
    size = 0
    for key, value in headers:
        if len(value) > conf.max_header_size:
            return 400, f"Header value too long: {key[: conf.max_meta_name_length]}"
        lk = key.lower()
        if not lk.startswith(prefix):
            continue
        name = key[len(prefix):]
        if not name:
            return 400, "Metadata name cannot be empty"
        if target in ("account", "container") and not (_utf8(name) and (not value or _utf8(value))):
            return 400, "Metadata must be valid UTF-8"
        count += 1
        size += len(name) + len(value)
        if len(name) > conf.max_meta_name_length:
            return 400, f"Metadata name too long: {prefix}{name}"
        if len(value) > conf.max_meta_value_length:
            return 400, f"Metadata value longer than {conf.max_meta_value_length}: {prefix}{name}"
        if count > conf.max_meta_count:
            return 400, f"Too many metadata items; max {conf.max_meta_count}"
        if size > conf.max_meta_overall_size:
            return 400, f"Total metadata too large; max {conf.max_meta_overall_size}"
    return None


def _utf8(value: str) -> bool:
    try:
        value.encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return False
    return True


def check_object_creation(
    conf: ProxyConfig, content_length: int | None, chunked: bool, obj: str, content_type: str | None
) -> Problem:
    if content_length is not None and content_length > conf.max_file_size:
        return 413, "Your request is too large."
    if content_length is None and not chunked:
        return 411, "Missing Content-Length header."
    if len(obj) > conf.max_object_name_length:
        return 400, f"Object name length of {len(obj)} longer than {conf.max_object_name_length}"
    if content_type is None:
        return 400, "No content type"
    if not _utf8(content_type):
        return 400, "Invalid Content-Type"
    return None


MAX_DELETE_AT = 9999999999  # ten digits, as Swift clamps (test_object test_x_delete_at_in_the_far_future)


def delete_at(headers_get: object, now: float) -> tuple[int | None, Problem]:
    """X-Delete-At / X-Delete-After -> the absolute expiry (Swift's
    ``check_delete_headers``): (None, None) when neither is given."""
    get = headers_get  # a Headers.get
    after = get("x-delete-after")  # type: ignore[operator]
    at = get("x-delete-at")  # type: ignore[operator]
    if after is not None:
        try:
            secs = int(after)
        except ValueError:
            return None, (400, "Non-integer X-Delete-After")
        if secs < 0:
            return None, (400, "X-Delete-After in past")
        return int(now + secs), None
    if at is not None:
        try:
            value = int(float(at)) if "." in at else int(at)
        except ValueError:
            return None, (400, "Non-integer X-Delete-At")
        if value < now:
            return None, (400, "X-Delete-At in past")
        return min(value, MAX_DELETE_AT), None  # Swift's normalize_delete_at_timestamp
    return None, None


def check_listing_limit(query: dict[str, str], maximum: int) -> Problem:
    """Swift's ``constrain_req_limit``: a limit that is not all digits is
    ignored (the default applies); one over the maximum is 412."""
    raw = query.get("limit")
    if raw is None or not raw.isdigit():
        return None
    if int(raw) > maximum:
        return 412, f"Maximum limit is {maximum}"
    return None


def listing_query(query: dict[str, str]) -> str:
    """The query string to forward for a listing: as given, minus a limit
    that Swift would ignore (not all digits)."""
    from urllib.parse import quote

    parts = []
    for key, value in query.items():
        if key == "limit" and not value.isdigit():
            continue
        k = quote(key.encode("utf-8", "surrogateescape"), safe="")
        parts.append(f"{k}={quote(value.encode('utf-8', 'surrogateescape'), safe='')}" if value != "" else k)
    return "&".join(parts)
