"""The per-request cost of the limit checks alone, with a small and a large ledger, side by side.

    python -m bench.limits_overhead                # 1,000 vs 1,000,000 lines
    python -m bench.limits_overhead --large 100000

For each ledger it times the file store's replay at start-up, then ``Limiter.reserve`` + ``Limiter.settle``
(what every request does: catch up, settle stale reservations, check rate, concurrency and
spend, append; then append the charge) for a key with every limit set. Rounds alternate between
the two ledgers so both see the same machine; it prints the median per-request time of each,
their ratio, and the replay times. The ledger is durable (fsynced) as in production.
"""

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime
from datetime import timezone

from bench.ledger_bench import PRICE
from bench.ledger_bench import RESERVATION_TTL
from bench.ledger_bench import SUMMARY
from bench.ledger_bench import write_ledger
from ziri_images.billing import Limiter
from ziri_images.keys.store import ApiKey
from ziri_images.ledger.file.jsonl import Ledger
from ziri_images.ledger.file.store import FileStore

KEYS = [("key_bench_0", "bench-0"), ("key_bench_1", "bench-1"), ("key_bench_2", "bench-2"), ("key_bench_3", "bench-3")]
LIMITED_KEY = ApiKey(id="key_bench_0", user="bench-0", status="active", limits={
    "daily_spend_limit": 1_000_000_000, "monthly_spend_limit": 1_000_000_000, "requests_per_minute": 1_000_000,
    "max_concurrent_requests": 100_000})


def utc_now():
    return datetime.now(timezone.utc)


def start_limiter(path):
    """Return (limiter, replay seconds) for the ledger at ``path``."""
    store = FileStore(Ledger(path, durable=True), utc_now, RESERVATION_TTL)
    started = time.perf_counter()
    store.start()
    return Limiter(store), time.perf_counter() - started


def time_requests(limiter, count, serial):
    """Return the mean seconds of ``count`` reserve + settle pairs."""
    started = time.perf_counter()
    for index in range(count):
        request_id = f"req_overhead_{serial}_{index}"
        reservation = limiter.reserve(LIMITED_KEY, PRICE, {"requestId": request_id, **SUMMARY})
        limiter.settle(reservation, {"requestId": request_id, "keyId": LIMITED_KEY.id, "user": LIMITED_KEY.user,
                                     **SUMMARY, "status": "succeeded", "cost": PRICE})
    return (time.perf_counter() - started) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000, help="lines in the small ledger")
    parser.add_argument("--large", type=int, default=1_000_000, help="lines in the large ledger")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds per ledger")
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ziri-limits-") as directory:
        limiters, replays, samples = {}, {}, {}
        for label, lines in (("small", args.small), ("large", args.large)):
            path = os.path.join(directory, f"{label}.jsonl")
            write_ledger(path, lines, KEYS, utc_now())
            limiters[label], replays[label] = start_limiter(path)
            samples[label] = []
        for round_number in range(args.rounds):
            for label in ("small", "large"):
                samples[label].append(time_requests(limiters[label], args.requests, round_number))
    small, large = (statistics.median(samples[label]) * 1000 for label in ("small", "large"))
    print(f"limit checks per request (reserve + settle, durable), median of {args.rounds} rounds "
          f"x {args.requests} requests:")
    print(f"  {args.small:>9,} lines: {small:.3f} ms   (replay at start-up {replays['small']:.2f} s)")
    print(f"  {args.large:>9,} lines: {large:.3f} ms   (replay at start-up {replays['large']:.2f} s)")
    print(f"  ratio large/small: {large / small:.2f}")


if __name__ == "__main__":
    main()
