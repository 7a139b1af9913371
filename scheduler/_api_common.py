"""Request context, replies, errors and JSON validation for the Placement API.

Handlers take a ``Ctx`` and return a ``Reply`` (or raise ``PlacementError``);
``placement_api`` turns either into bytes with the microversion, cache and
content-type headers Placement sends. Validation uses JSON schema exactly
like Placement (``jsonschema`` with a ``uuid`` format that accepts dashless
UUIDs), so error texts such as ``JSON does not validate: ...`` and
``Failed validating 'maxLength'`` match what clients expect.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from ._store_records import PlacementError, bad_request
from .microversion import Version

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
    415: "Unsupported Media Type", 500: "Internal Server Error", 501: "Not Implemented",
}
EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed "
         "or otherwise incorrect.",
    401: "This server could not verify that you are authorized to access the document "
         "you requested.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method specified is not allowed for this resource.",
    406: "The resource could not be generated that was acceptable to your browser.",
    409: "There was a conflict when trying to complete your request.",
    415: "The request media type is not supported by this server.",
}

_CHECKER: Any = None  # jsonschema.FormatChecker, built on first use (fast startup)


def _format_checker() -> Any:
    global _CHECKER
    if _CHECKER is None:
        import jsonschema

        checker = jsonschema.FormatChecker()
        checker.checks("uuid")(lambda value: not isinstance(value, str) or is_uuid(value))
        _CHECKER = checker
    return _CHECKER


def normalize_uuid(value: str) -> str:
    """Dashed lower-case form; raises ValueError if not a UUID."""
    return str(uuidlib.UUID(value))


def is_uuid(value: str) -> bool:
    """Placement's (oslo's) ``is_uuid_like``: any form ``uuid.UUID`` reads
    (dashes, braces, ``urn:uuid:``, any case) that names 32 hex digits."""
    try:
        canonical = str(uuidlib.UUID(value)).replace("-", "")
    except (ValueError, AttributeError, TypeError):
        return False
    stripped = value.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "").lower()
    return canonical == stripped


@dataclass(slots=True)
class Auth:
    """Who is calling, as a noauth2 deployment sees it."""

    user_id: str
    project_id: str | None
    roles: frozenset[str]
    system_scope: str | None


@dataclass(slots=True)
class Ctx:
    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    version: Version
    auth: Auth | None = None
    params: dict[str, str] = field(default_factory=dict)  # path parameters

    def query_items(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    def query(self, multi: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Query dict; keys in ``multi`` map to a list of every value."""
        out: dict[str, Any] = {}
        for k, v in self.query_items():
            if k in multi:
                out.setdefault(k, []).append(v)
            else:
                out[k] = v
        return out

    def require_json_content(self) -> None:
        """415 unless the body is declared ``application/json`` (Placement's
        ``require_content``, checked before the handler looks anything up)."""
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise PlacementError(415, f"The media type {ctype or None} is not supported, "
                                 "use application/json")

    def json(self, schema: dict[str, Any] | None = None) -> Any:
        """Parse and validate the JSON body (415 unless application/json)."""
        self.require_json_content()
        try:
            data = json.loads(self.body.decode("utf-8") if self.body else "")
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"Malformed JSON: {exc}") from None
        if schema is not None:
            validate(data, schema)
        return data


_VALIDATORS: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    """``jsonschema.validate`` re-checks the schema and builds a validator on
    every call (about 13 ms here); build each once (same errors: validate is
    check_schema + best_match(iter_errors)). Keyed by the schema's canonical
    JSON, since handlers build per-microversion schemas on every request."""
    import jsonschema

    key = json.dumps(schema, sort_keys=True, default=str)
    v = _VALIDATORS.get(key)
    if v is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        if len(_VALIDATORS) > 512:
            _VALIDATORS.clear()
        v = _VALIDATORS[key] = cls(schema, format_checker=_format_checker())
    return v


def validate(data: Any, schema: dict[str, Any], *, query: bool = False) -> None:
    """Validate as Placement does (jsonschema, imported lazily: startup speed)."""
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(data))
        if error is not None:
            raise error
    except jsonschema.ValidationError as exc:
        if query:
            raise bad_request(f"Invalid query string parameters: {exc}") from None
        raise bad_request(f"JSON does not validate: {exc}") from None


@dataclass(slots=True)
class Reply:
    """A handler's answer. ``body`` None: no body and no content-type.
    ``cache``: add last-modified / cache-control (from microversion 1.15)."""

    status: int = 200
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    cache: bool | None = None
    last_modified: float | None = None


def http_date(ts: float | None = None) -> str:
    return formatdate(ts, usegmt=True)


def error_document(status: int, detail: str, code: str, request_id: str,
                   version: Version | None, extra: dict[str, Any] | None = None,
                   explanation: str | None = None) -> bytes:
    title = TITLES.get(status, "Error")
    explanation = explanation or EXPLANATIONS.get(status, "")
    err: dict[str, Any] = {"status": status, "title": title,
                           "detail": f"{explanation}\n\n {detail}  ", "request_id": request_id}
    if version is not None and version.at_least(23):
        err["code"] = code
    if extra:
        err.update(extra)
    return json.dumps({"errors": [err]}).encode()


def links(prefix: str, *rels: tuple[str, str]) -> list[dict[str, str]]:
    return [{"rel": rel, "href": prefix + suffix} for rel, suffix in rels]


def require_version(ctx: Ctx, minor: int) -> None:
    """Routes newer than the request's microversion answer 404, as Placement does."""
    if not ctx.version.at_least(minor):
        raise PlacementError(404, "The resource could not be found.")
