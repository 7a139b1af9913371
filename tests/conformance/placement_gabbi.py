"""Run OpenStack Placement's own gabbi suite against a live ``ringstack serve placement``.

Usage (from the repository root; a script, not collected by pytest)::

    .venv/bin/python tests/conformance/placement_gabbi.py \\
        [--venv /work/placement-venv] [--gabbits DIR] [-v] [NAME ...]

``NAME`` is a gabbit file name with or without ``.yaml`` (default: all).
The gabbits are read from the ``openstack-placement`` package installed in
``--venv`` (or ``--gabbits DIR``); ``gabbi`` must be importable here
(``.venv/bin/pip install gabbi``).

Per file: a fresh server on an empty temp dir, in the policy mode the
file's fixture asks for (``SecureRBACPolicyFixture``: secure-rbac;
``OpenPolicyFixture``: open; anything else: legacy, as Placement's
``enforce_new_defaults=False``; ``CORSFixture``: CORS options); the fixture's data recreated through the
HTTP API (``_placement_fixtures.py``); its ``$ENVIRON`` names exported; then
the file's tests run in order with gabbi's suite builder against the
server's host and port. Prints one line per file (passed/failed/skipped)
and, for each failure, the test name and the first lines of the mismatch;
exits 1 when any test failed. ``--json FILE`` also writes the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

from _placement_fixtures import FIXTURES, POLICY, SERVER_ARGS, Builder  # noqa: E402

from tests.support.procs import ringstack_argv, start_server  # noqa: E402

GABBITS_REL = "lib/python3.11/site-packages/placement/tests/functional/gabbits"


_EXC = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failure)\b")


def _mismatch(text: str, lines: int = 6) -> str:
    """The exception line of a traceback and what follows it (gabbi puts the
    expectation there), at most ``lines`` lines."""
    rows = [ln for ln in text.strip().splitlines() if ln.strip()]
    starts = [i for i, ln in enumerate(rows) if _EXC.match(ln)]
    keep = rows[starts[-1]:] if starts else rows[-lines:]
    return "\n      ".join(ln[:300] for ln in keep[:lines])


def _test_name(test: unittest.TestCase) -> str:
    data = getattr(test, "test_data", None)
    return str(data.get("name")) if isinstance(data, dict) else test.id()


def run_file(path: Path, verbose: bool) -> dict[str, Any]:
    from gabbi import handlers, suitemaker

    doc = yaml.safe_load(path.read_text())
    fixtures = list(doc.pop("fixtures", None) or ["APIFixture"])
    missing = [f for f in fixtures if f not in FIXTURES]
    name = path.stem
    total = len(doc.get("tests", []))
    if missing:
        return {"file": name, "tests": total, "passed": 0, "failed": 0, "skipped": total,
                "why": f"fixture {', '.join(missing)} not reproducible", "failures": []}
    policy = next((POLICY[f] for f in fixtures if f in POLICY), "legacy")
    with tempfile.TemporaryDirectory(prefix="gabbi-") as tmp:
        server = start_server(ringstack_argv(
            "serve", "placement", "--data", str(Path(tmp) / "data"), "--port", "0",
            "--policy", policy, "--no-fsync", "--log-level", "WARNING",
            *(arg for f in fixtures for arg in SERVER_ARGS.get(f, ()))))
        try:
            env: dict[str, str] = {}
            with httpx.Client(base_url=server.url, headers={"x-auth-token": "admin"},
                              timeout=30) as client:
                builder = Builder(client)
                for f in fixtures:
                    FIXTURES[f](builder, env)
            os.environ.update(env)
            handler_objects = [h() for h in handlers.RESPONSE_HANDLERS]
            suite = suitemaker.test_suite_from_dict(
                unittest.defaultTestLoader, name, doc, str(path.parent), server.host,
                server.port, None, None, handlers=handler_objects,
                test_loader_name="placement_gabbi")
            result = unittest.TestResult()
            suite.run(result)
        finally:
            server.stop()
    failures = [(t, tb) for t, tb in result.failures + result.errors]
    out: dict[str, Any] = {"file": name, "tests": result.testsRun, "failed": len(failures),
           "skipped": len(result.skipped) + len(result.expectedFailures),
           "failures": [{"test": _test_name(t), "why": _mismatch(tb, 30 if verbose else 6)}
                        for t, tb in failures]}
    out["passed"] = result.testsRun - out["failed"] - out["skipped"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--venv", default="/work/placement-venv")
    ap.add_argument("--gabbits", default=None)
    ap.add_argument("--json", default=None, help="write per-file counts here")
    ap.add_argument("-v", "--verbose", action="store_true", help="longer mismatch text")
    args = ap.parse_args(argv)
    gdir = Path(args.gabbits) if args.gabbits else Path(args.venv) / GABBITS_REL
    files = sorted(gdir.glob("*.yaml"))
    if args.names:
        wanted = {n.removesuffix(".yaml") for n in args.names}
        unknown = wanted - {f.stem for f in files}
        if unknown:
            print(f"no such gabbit in {gdir}: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        files = [f for f in files if f.stem in wanted]
    if not files:
        print(f"no gabbit files in {gdir}", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            res = run_file(path, args.verbose)
        except Exception as exc:  # noqa: BLE001 - a broken setup is one file's result
            n = len((yaml.safe_load(path.read_text()) or {}).get("tests", []))
            res = {"file": path.stem, "tests": n, "passed": 0, "failed": n, "skipped": 0,
                   "failures": [{"test": "(setup)", "why": _mismatch(str(exc), 4)}]}
        results.append(res)
        mark = "PASS" if res["failed"] == 0 and not res.get("why") else "FAIL"
        if res.get("why"):
            mark = "SKIP"
        print(f"{mark} {res['file']}: {res['passed']} passed, {res['failed']} failed, "
              f"{res['skipped']} skipped {res.get('why', '')}", flush=True)
        for fail in res["failures"]:
            print(f"    - {fail['test']}\n      {fail['why']}", flush=True)
    tot = {k: sum(int(r[k]) for r in results) for k in ("tests", "passed", "failed", "skipped")}
    clean = sum(1 for r in results if r["failed"] == 0 and not r.get("why"))
    print(f"TOTAL files {clean}/{len(results)} clean; tests {tot['passed']} passed, "
          f"{tot['failed']} failed, {tot['skipped']} skipped")
    if args.json:
        Path(args.json).write_text(json.dumps({"total": tot, "files": results}, indent=1))
    return 1 if tot["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
