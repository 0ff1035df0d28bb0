"""The limit decisions, as a named list: the rule, and the one source of every refusal's words.

The file store builds a ``KeyUsage`` for the key while it holds that key's lock (the ledger's
flock), then calls ``run_checks``: each check raises the ApiError the client sees, or returns.
The checks never read or write a store.

The SQL mirror: the PostgreSQL store decides admission in the database, in one round trip, with
a copy of ``CHECKS`` as one predicate in ``ziri_reserve``
(ledger/postgres/functions/ziri_reserve.sql); on a refusal it runs ``run_checks`` on the usage
the database read, for the refusal's code and words. A change to a check here needs the same
change there: tests/ledger/postgres/test_parity.py drives random usages and limits through both
and fails when their decisions differ.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone

from ..errors import ApiError
from .money import BUDGETS
from .money import format_ts
from .money import to_dollars
from .money import to_micros

RATE_WINDOW_SECONDS = 60
# A client's Idempotency-Key is remembered this long.
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600


@dataclass
class KeyUsage:
    """One key's usage at one moment, as the checks and ``GET /api/me/usage`` need it.

    ``spent``, ``reserved`` and ``requests`` are keyed by budget name ("daily", "monthly", as
    ``money.BUDGETS`` names them) and cover the periods that contain ``now``. Requests count at
    their admission time.
    """

    now: datetime | None = None  # the moment this usage describes

    spent: dict = field(default_factory=dict)  # budget name -> micros charged (expiries included)
    reserved: dict = field(default_factory=dict)  # budget name -> micros held by open reservations
    requests: dict = field(default_factory=dict)  # budget name -> requests admitted
    in_flight: int = 0  # open reservations
    # Admission times in the rate window ending now, sorted epoch seconds: any sequence with len() and [0].
    admissions: Sequence = field(default_factory=list)
    # (original request id, still open) for this request's Idempotency-Key digest within the window, or None.
    idempotent_match: tuple | None = None


def check_idempotency(key, usage, micros, now):
    """Refuse a second request with the same Idempotency-Key: it would be billed twice."""
    if usage.idempotent_match is None:
        return
    original, still_open = usage.idempotent_match
    if still_open:
        raise ApiError(409, "IDEMPOTENT_REQUEST_IN_PROGRESS",
                       "A request with this Idempotency-Key is still being generated.",
                       headers={"Retry-After": "5"}, originalRequestId=original)
    raise ApiError(409, "IDEMPOTENCY_KEY_REUSED",
                   "A request with this Idempotency-Key was already processed (and charged if it succeeded).",
                   originalRequestId=original)


def check_rate(key, usage, micros, now):
    """Refuse a request beyond the key's requests per minute, saying when the window frees a slot."""
    rpm = key.limit("requests_per_minute")
    window = usage.admissions
    if not rpm or len(window) < rpm:
        return
    now_epoch = now.timestamp()
    retry_after = max(1, math.ceil(window[0] + RATE_WINDOW_SECONDS - now_epoch))
    reset_at = datetime.fromtimestamp(window[0] + RATE_WINDOW_SECONDS, timezone.utc)
    raise ApiError(
        429, "RATE_LIMIT_EXCEEDED", f"Rate limit of {int(rpm)} requests per minute exceeded.",
        headers={"Retry-After": str(retry_after)}, should_retry=True,
        limit=int(rpm), retryAfter=retry_after, resetAt=format_ts(reset_at),
    )


def check_concurrency(key, usage, micros, now):
    """Refuse a request while the key has as many requests in flight as it may."""
    max_concurrent = key.limit("max_concurrent_requests")
    if max_concurrent and usage.in_flight >= max_concurrent:
        raise ApiError(
            503, "QUEUE_FULL", f"Too many requests in flight for this key (limit {int(max_concurrent)}).",
            headers={"Retry-After": "1"}, should_retry=True, limit=int(max_concurrent), inFlight=usage.in_flight,
        )


def _check_budget(budget, key, usage, micros, now):
    name, limit_name, _period_of, next_period = budget
    limit = key.limit(limit_name)
    if not limit:
        return
    spent, reserved = usage.spent.get(name, 0), usage.reserved.get(name, 0)
    if spent + reserved + micros > to_micros(limit):
        raise ApiError(
            402, "SPEND_LIMIT_EXCEEDED",
            f"The {name} spend limit of ${limit:.2f} would be exceeded by this request.",
            period=name, limit=limit, spent=to_dollars(spent), reserved=to_dollars(reserved),
            requested=to_dollars(micros), resetsAt=format_ts(next_period(now)),
        )


def check_daily_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take the day's spend past the daily limit."""
    _check_budget(BUDGETS[0], key, usage, micros, now)


def check_monthly_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take the month's spend past the monthly limit."""
    _check_budget(BUDGETS[1], key, usage, micros, now)


CHECKS = (check_idempotency, check_rate, check_concurrency, check_daily_budget, check_monthly_budget)


def run_checks(key, usage, micros, now):
    """Run every check in order; the first refusal raises."""
    for check in CHECKS:
        check(key, usage, micros, now)
