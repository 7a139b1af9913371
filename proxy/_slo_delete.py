"""``DELETE ?multipart-manifest=delete``: delete an SLO's segments (nested
manifests' too), then the manifests, innermost first, so a manifest never
names a segment that is already gone while it still exists. Answers with
Swift's bulk-delete summary (200, body says what happened), in JSON when
``Accept: application/json``. Subrequests carry the caller's context
(invariant 6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from common.http import Request, Response
from proxy import _slo_core as core
from proxy._subrequest import REASONS, discard, subrequest

DELETE_CONCURRENCY = 4


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def _is_slo(resp: Response) -> bool:
    return 200 <= resp.status < 300 and _true(resp.headers.get("x-static-large-object"))


async def delete_manifest(app: Callable[[Request], Any], request: Request, account: str) -> Response:
    obj_path = "/" + request.path.split("/", 3)[3]
    deleted = not_found = 0
    errors: list[list[str]] = []
    pending: list[tuple[str, bool]] = [(obj_path, True)]
    segments: list[str] = []  # plain segments: deleted first, concurrently
    manifests: list[str] = []  # then each manifest, innermost first
    while pending:
        if len(pending) > core.MAX_MANIFEST_SEGMENTS * 10:
            return Response.text(400, "Too many buffered slo segments to delete.")
        name, is_manifest = pending.pop(0)
        if not is_manifest:
            segments.append(name)
            continue
        resp = await app(subrequest(request, "GET", f"/v1/{account}{name}"))
        if _is_slo(resp):
            try:
                segs = json.loads(await resp.read_body())
            except ValueError:
                errors.append([name, "Unable to load SLO manifest"])
                continue
            pending.extend((s["name"], bool(s.get("sub_slo"))) for s in segs if "name" in s)
            manifests.insert(0, name)
        else:
            await discard(resp)
            if resp.status == 404:
                not_found += 1
            elif 200 <= resp.status < 300:
                errors.append([name, "Not an SLO manifest"])
            elif resp.status in (401, 403):
                errors.append([name, f"{resp.status} {REASONS.get(resp.status, '')}"])
            else:
                errors.append([name, "Unable to load SLO manifest or segment."])
    statuses: dict[str, int] = {}
    limiter = trio.CapacityLimiter(DELETE_CONCURRENCY)

    async def delete(name: str) -> None:
        async with limiter:
            resp = await app(subrequest(request, "DELETE", f"/v1/{account}{name}"))
            await discard(resp)
            statuses[name] = resp.status

    async with trio.open_nursery() as nursery:
        for name in dict.fromkeys(segments):
            nursery.start_soon(delete, name)
    for name in manifests:  # a manifest goes only after everything it names
        await delete(name)
    for name in [*dict.fromkeys(segments), *manifests]:
        status = statuses[name]
        if 200 <= status < 300:
            deleted += 1
        elif status == 404:
            not_found += 1
        else:
            errors.append([name, f"{status} {REASONS.get(status, 'Error')}"])
    summary = {
        "Number Deleted": deleted,
        "Number Not Found": not_found,
        "Response Body": "",
        "Response Status": "400 Bad Request" if errors else "200 OK",
    }
    out = "application/json" if "application/json" in (request.headers.get("accept") or "") else "text/plain"
    if out == "application/json":
        body = json.dumps({**summary, "Errors": errors}).encode()
    else:
        body = ("".join(f"{k}: {summary[k]}\n" for k in sorted(summary)) + "Errors:\n").encode()
        body += "".join(f"{n}, {s}\n" for n, s in errors).encode()
    return Response(200, {"content-type": out}, body)
