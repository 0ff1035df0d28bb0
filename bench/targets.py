"""What each figure of the benchmark must reach: one named list of (figure, target, check).

bench/table.py builds each row's figures into a dict of named facts (ratios, errors, counts)
and marks the row ``pass`` or ``MISS`` by the check of the target that names it. A row whose
figure has no target here is shown for reference only.
"""

from typing import Callable
from typing import NamedTuple

from bench.load import SLOW_SECONDS

NEEDED_RECORDS = 2 * 1024 / SLOW_SECONDS  # what 1024 conns write: a reservation and a charge per request


class Target(NamedTuple):
    figure: str  # the row it judges, as bench/table.py names it
    target: str  # the words in the table's target column
    check: Callable[[dict], bool]  # the row's facts -> whether the target is met


TARGETS = [
    Target("cpu", "≤ 1.3× forwarder",
           lambda facts: facts["ratio"] <= 1.3 and not facts["errors"]),
    Target("cpu-1024", "gateway ≤ ×1.1",
           lambda facts: facts["growth"] <= 1.1 and not facts["errors"]),
    Target("capacity-256", "all held, 0 errors, ≥ 95% of direct",
           lambda facts: facts["held"] >= facts["connections"] and facts["clean"] and facts["of_direct"] >= 0.95),
    Target("capacity-1024", "all held, 0 errors/timeouts, ≥ 95% of fwd",
           lambda facts: facts["held"] >= facts["connections"] and facts["clean"] and facts["of_forwarder"] >= 0.95),
    Target("memory", "RSS ≤ 1.1× forwarder",
           lambda facts: facts["gateway_rss"] <= 1.1 * facts["forwarder_rss"]),
    Target("ledger-cost", "both ratios ≤ 1.1",
           lambda facts: facts["cpu_ratio"] <= 1.1 and facts["p50_ratio"] <= 1.1 and not facts["errors"]),
    Target("restart", "≤ 1 s, ≤ 1.2× the small one",
           lambda facts: facts["large_s"] <= 1 and facts["large_s"] <= 1.2 * facts["small_s"]),
    Target("store", f"≥ {NEEDED_RECORDS:,.0f}/s (what 1024 conns at {SLOW_SECONDS:g} s write)",
           lambda facts: facts["records_per_s"] >= NEEDED_RECORDS and not facts["errors"]),
    Target("postgres-cpu", "≤ 1.2× file store",
           lambda facts: facts["ratio"] <= 1.2 and not facts["errors"]),
    Target("postgres-cpu-1024", "≤ ×1.1",
           lambda facts: facts["growth"] <= 1.1 and not facts["errors"]),
    Target("postgres-capacity", "all held, 0 errors/timeouts",
           lambda facts: facts["held"] >= facts["connections"] and facts["clean"]),
]
TARGET_OF = {target.figure: target for target in TARGETS}
