"""Run one ring benchmark case through OpenStack Swift (for side-by-side ratios).

Runs under Swift's interpreter: ``<swift-venv>/bin/python _swift_ring.py CASE
SINGLE_LOOKUPS``; prints one JSON object. Same cluster as ``bench_ring``
(``_ring_cases``), same steps: rebalance, add 10% drives, rebalance again
(min_part_hours pretended passed), then ``Ring.get_nodes`` lookups.
"""

import json
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import measure  # noqa: E402
from benchmarks._ring_cases import CASES, added_devices, initial_devices, lookup_names  # noqa: E402


def _swift_dev(dev_id, d):
    return {"id": dev_id, "region": d["region"], "zone": d["zone"], "ip": d["ip"], "port": d["port"],
            "device": d["device"], "weight": d["weight"], "meta": ""}


def main():
    import swift
    import swift.common.utils as utils
    from swift.common.ring import Ring, RingBuilder

    case = CASES[sys.argv[1]]
    n_single = int(sys.argv[2])
    utils.HASH_PATH_SUFFIX = b"ringstack-bench"
    builder = RingBuilder(case.part_power, case.replicas, 1)
    devs = initial_devices(case)
    for i, d in enumerate(devs):
        builder.add_dev(_swift_dev(i, d))
    with measure() as m1:
        builder.rebalance(seed=1)
    first = {"seconds": m1.seconds, "peak_mib": m1.peak_mib, "balance": builder.get_balance(),
             "dispersion": builder.dispersion}
    before = [list(row) for row in builder._replica2part2dev]
    for i, d in enumerate(added_devices(case)):
        builder.add_dev(_swift_dev(len(devs) + i, d))
    builder.pretend_min_part_hours_passed()
    with measure() as m2:
        builder.rebalance(seed=2)
    after = builder._replica2part2dev
    moved = sum(1 for row_b, row_a in zip(before, after, strict=True) for x, y in zip(row_b, row_a, strict=True) if x != y)
    total = case.replicas << case.part_power
    second = {"seconds": m2.seconds, "peak_mib": m2.peak_mib, "balance": builder.get_balance(),
              "dispersion": builder.dispersion, "moved": moved, "moved_fraction": moved / total}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "object.ring.gz")
        builder.get_ring().save(path)
        ring = Ring(path)
        names = lookup_names(n_single)
        get_nodes = ring.get_nodes
        t0, c0 = time.perf_counter(), time.process_time()
        for a, c, o in names:
            get_nodes(a, c, o)
        single = n_single / (time.perf_counter() - t0)
        single_cpu = n_single / (time.process_time() - c0)
    print(json.dumps({"version": swift.__version__, "rebalance": first, "add_10pct": second,
                      "lookups_per_s": {"single": single, "single_cpu": single_cpu}}))


if __name__ == "__main__":
    main()
