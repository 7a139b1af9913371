"""Run OpenStack Swift's own functional tests against a live ringstack cluster.

    .venv/bin/python tests/conformance/swift_functional.py --tests /work/swift-functests \
        [--python /work/swift-venv/bin/python] [--json out.json] [-v] [MODULE ...]

``--tests`` is a directory holding Swift's ``test/`` package (``test/__init__.py``,
``test/unit/``, ``test/functional/``), e.g. unpacked from the swift sdist of the
version installed in the Swift venv (``pip download swift==2.38.0 --no-binary
:all:``); upstream code is never copied into this repository. ``--python`` is
an interpreter that has ``swift`` (the tests import ``swift.common``),
``pytest``, ``pytest-timeout``, ``mock`` and ``python-swiftclient``.

What it does: starts a cluster (``tests.support.cluster.start_cluster``: 4
nodes x 2 drives and a proxy with Swift all-in-one's tempauth users), writes a
``test.conf`` from Swift's ``sample.conf`` keys (``auth_uri`` at our
``/auth/v1.0``, ``test:tester``, ``test2:tester2``, ``test:tester3``, and
``admin:admin`` as the reseller admin ``account6``), runs each module with
pytest in the Swift interpreter (``SWIFT_TEST_CONFIG_FILE``), and prints
passed/failed/errors/skipped per module plus the failing test ids. A script,
not a pytest module: ``make test`` never collects it. The default modules take
about eight minutes on a quiet machine (tests.py alone about five).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.cluster import start_cluster  # noqa: E402

DEFAULT_MODULES = (
    "test_account", "test_container", "test_object", "tests",
    "test_slo", "test_dlo", "test_access_control", "test_protocol",
)
CONF = """[func_test]
auth_uri = {auth_uri}
auth_version = 1
account = test
username = tester
password = testing
account2 = test2
username2 = tester2
password2 = testing2
username3 = tester3
password3 = testing3
account6 = admin
username6 = admin
password6 = admin
collate = C
insecure = no
storage_domain =
"""


def write_conf(path: Path, auth_uri: str) -> Path:
    path.write_text(CONF.format(auth_uri=auth_uri))
    return path


def counts(junit: Path) -> dict[str, object]:
    """passed/failed/errors/skipped and the failing ids from a junit file."""
    out: dict[str, object] = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": []}
    if not junit.exists():
        out["errors"] = 1
        out["failures"] = ["<no junit output: pytest crashed or timed out>"]
        return out
    failures: list[str] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if case.find("failure") is not None:
            out["failed"] = int(out["failed"]) + 1  # type: ignore[call-overload]
            failures.append(name)
        elif case.find("error") is not None:
            out["errors"] = int(out["errors"]) + 1  # type: ignore[call-overload]
            failures.append(name + " (error)")
        elif case.find("skipped") is not None:
            out["skipped"] = int(out["skipped"]) + 1  # type: ignore[call-overload]
        else:
            out["passed"] = int(out["passed"]) + 1  # type: ignore[call-overload]
    out["failures"] = failures
    return out


def run_module(python: str, tests: Path, module: str, conf: Path, work: Path, verbose: bool,
               timeout: float) -> dict[str, object]:
    junit = work / f"{module}.xml"
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--timeout", "120",
            f"--junitxml={junit}", f"test/functional/{module}.py"]
    env = dict(os.environ, SWIFT_TEST_CONFIG_FILE=str(conf), PYTHONPATH=str(tests))
    env.pop("SWIFT_TEST_IN_PROCESS", None)
    try:
        proc = subprocess.run(argv, cwd=tests, env=env, capture_output=True, text=True, timeout=timeout)
        (work / f"{module}.log").write_text(proc.stdout + proc.stderr)
        if verbose:
            print(proc.stdout[-20000:], proc.stderr[-5000:], sep="\n")
    except subprocess.TimeoutExpired:
        pass
    return counts(junit)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", required=True, type=Path, help="directory holding Swift's test/ package")
    ap.add_argument("--python", default="/work/swift-venv/bin/python", help="interpreter with swift + pytest")
    ap.add_argument("--json", type=Path, help="write the per-module results here")
    ap.add_argument("--keep", type=Path, help="keep logs and junit files in this directory")
    ap.add_argument("--module-timeout", type=float, default=1800.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    args = ap.parse_args(argv)
    tests = args.tests.resolve()
    if not (tests / "test" / "functional" / "__init__.py").exists():
        ap.error(f"{tests} has no test/functional/__init__.py (unpack Swift's test/ package there)")
    results: dict[str, dict[str, object]] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops the cluster
    with tempfile.TemporaryDirectory(prefix="swift-functional-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cluster = start_cluster(Path(tmp) / "cluster")
        try:
            conf = write_conf(work / "test.conf", cluster.auth_url)
            print(f"cluster at {cluster.proxy_url}, test.conf {conf}", flush=True)
            for module in args.modules:
                res = run_module(args.python, tests, module.removesuffix(".py"), conf, work, args.verbose,
                                 args.module_timeout)
                results[module] = res
                print(f"{module:22s} passed {res['passed']:4d}  failed {res['failed']:3d}  "
                      f"errors {res['errors']:3d}  skipped {res['skipped']:3d}", flush=True)
                for name in res["failures"]:  # type: ignore[attr-defined]
                    print(f"    FAIL {name}")
        finally:
            cluster.stop()
    total = {k: sum(int(r[k]) for r in results.values()) for k in ("passed", "failed", "errors", "skipped")}  # type: ignore[call-overload]
    print("total".ljust(22), "  ".join(f"{k} {v}" for k, v in total.items()))
    if args.json:
        args.json.write_text(json.dumps({"modules": results, "total": total}, indent=2))
    return 0 if total["failed"] == 0 and total["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
