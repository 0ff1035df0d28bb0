"""The limit decisions, as a named list: the rule, and the one source of every refusal's words.

The file store builds a ``KeyUsage`` for the key (with its team's usage, ``KeyUsage.team``, and
its end user's day, when they apply) while it holds the ledger's flock, then calls
``run_checks``: each check raises the ApiError the client sees, or returns. A request is
admitted only if the key's limits, its end user's and its team's all allow it. The checks never
read or write a store. A refusal says whose limit it is in ``scope``: "key", "end_user" or "team".

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
    """One key's (or team's) usage at one moment, as the checks and ``GET /api/me/usage`` need it.

    ``spent``, ``reserved`` and ``requests`` are keyed by budget name ("daily", "monthly", as
    ``money.BUDGETS`` names them) and cover the periods that contain ``now``. Requests count at
    their admission time. A team's usage has the same fields (no idempotency, no team, no end user).
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
    team: "KeyUsage | None" = None  # the key's team's usage, when the key has a team
    # The request's end user as counted (records.counted_end_user: "" for none), None when not known yet
    # (an edit's body not read), and what that end user of this key spent and holds today, in micros.
    end_user: str | None = None
    end_user_spent: int = 0
    end_user_reserved: int = 0


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


def _check_rate(rpm, window, now, whose, scope):
    if not rpm or len(window) < rpm:
        return
    now_epoch = now.timestamp()
    retry_after = max(1, math.ceil(window[0] + RATE_WINDOW_SECONDS - now_epoch))
    reset_at = datetime.fromtimestamp(window[0] + RATE_WINDOW_SECONDS, timezone.utc)
    raise ApiError(
        429, "RATE_LIMIT_EXCEEDED", f"Rate limit of {int(rpm)} requests per minute exceeded{whose}.",
        headers={"Retry-After": str(retry_after)}, should_retry=True,
        limit=int(rpm), retryAfter=retry_after, resetAt=format_ts(reset_at), **scope,
    )


def _check_concurrency(max_concurrent, in_flight, whose, scope):
    if max_concurrent and in_flight >= max_concurrent:
        raise ApiError(
            503, "QUEUE_FULL", f"Too many requests in flight for this {whose} (limit {int(max_concurrent)}).",
            headers={"Retry-After": "1"}, should_retry=True, limit=int(max_concurrent), inFlight=in_flight, **scope,
        )


def _check_budget(name, limit, spent, reserved, micros, now, whose, scope):
    """Refuse ``micros`` unless ``spent + reserved + micros`` fits ``limit`` (dollars) of the budget ``name``.

    ``whose`` is (words before the budget's name, words after "limit") for the message.
    """
    if not limit or spent + reserved + micros <= to_micros(limit):
        return
    next_period = {budget[0]: budget[3] for budget in BUDGETS}[name]
    owner, per = whose
    raise ApiError(
        402, "SPEND_LIMIT_EXCEEDED", f"The {owner}{name} spend limit{per} of ${limit:.2f} would be exceeded by "
                                     "this request.",
        period=name, limit=limit, spent=to_dollars(spent), reserved=to_dollars(reserved),
        requested=to_dollars(micros), resetsAt=format_ts(next_period(now)), **scope,
    )


def check_rate(key, usage, micros, now):
    """Refuse a request beyond the key's requests per minute, saying when the window frees a slot."""
    _check_rate(key.limit("requests_per_minute"), usage.admissions, now, "", {"scope": "key"})


def check_concurrency(key, usage, micros, now):
    """Refuse a request while the key has as many requests in flight as it may."""
    _check_concurrency(key.limit("max_concurrent_requests"), usage.in_flight, "key", {"scope": "key"})


def _check_key_budget(name, key, usage, micros, now):
    _check_budget(name, key.limit(f"{name}_spend_limit"), usage.spent.get(name, 0), usage.reserved.get(name, 0),
                  micros, now, ("", ""), {"scope": "key"})


def check_daily_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take the day's spend past the daily limit."""
    _check_key_budget("daily", key, usage, micros, now)


def check_monthly_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take the month's spend past the monthly limit."""
    _check_key_budget("monthly", key, usage, micros, now)


def check_end_user_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take its end user's day past the key's per-end-user limit."""
    if usage.end_user is None:
        return  # not known yet (an edit's body is checked before it is read): the reservation checks it
    _check_budget("daily", key.limit("end_user_daily_spend_limit"), usage.end_user_spent, usage.end_user_reserved,
                  micros, now, ("", " per end user"), {"scope": "end_user", "endUser": usage.end_user})


def _team(key, usage):
    """Return (the key's team, its usage), or (None, None) for a key without a team."""
    team = key.team
    return (team, usage.team) if team is not None and usage.team is not None else (None, None)


def check_team_rate(key, usage, micros, now):
    """Refuse a request beyond the requests per minute of the key's team (all its keys together)."""
    team, used = _team(key, usage)
    if team is not None:
        _check_rate(team.limit("requests_per_minute"), used.admissions, now, " for this key's team",
                    {"scope": "team", "teamId": team.id})


def check_team_concurrency(key, usage, micros, now):
    """Refuse a request while the key's team has as many requests in flight as it may."""
    team, used = _team(key, usage)
    if team is not None:
        _check_concurrency(team.limit("max_concurrent_requests"), used.in_flight, "key's team",
                           {"scope": "team", "teamId": team.id})


def _check_team_budget(name, key, usage, micros, now):
    team, used = _team(key, usage)
    if team is not None:
        _check_budget(name, team.limit(f"{name}_spend_limit"), used.spent.get(name, 0), used.reserved.get(name, 0),
                      micros, now, ("team's ", ""), {"scope": "team", "teamId": team.id})


def check_team_daily_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take the team's day past the team's daily limit."""
    _check_team_budget("daily", key, usage, micros, now)


def check_team_monthly_budget(key, usage, micros, now):
    """Refuse a request whose reservation would take the team's month past the team's monthly limit."""
    _check_team_budget("monthly", key, usage, micros, now)


CHECKS = (check_idempotency, check_rate, check_concurrency, check_daily_budget, check_monthly_budget,
          check_end_user_budget, check_team_rate, check_team_concurrency, check_team_daily_budget,
          check_team_monthly_budget)


def run_checks(key, usage, micros, now):
    """Run every check in order; the first refusal raises."""
    for check in CHECKS:
        check(key, usage, micros, now)
