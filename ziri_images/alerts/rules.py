"""Which budget alerts a charge can set off: the watches of a key and its team, and when one is reached.

A ``Watch`` is one (scope, holder, period, limit, threshold): the key's or its team's daily or
monthly spend limit, hard or soft (``soft_*`` limits only alert), at one of the thresholds
``ZIRI_ALERT_THRESHOLDS`` names (percent). It is **reached** when the period's spend (charged,
expiries included; never what is only reserved) is at least that percent of the limit:
``reached`` below. The stores evaluate every watch of a key after each charge they write, in
the same atomic step, and record each reached watch once per period start (their outbox's unique
key: scope, holder, period, limit, threshold, period start). A crossing made by an expiry or a
spooled charge is therefore recorded by the key's (or team's) next charge.

The SQL mirror: the PostgreSQL store decides in ``ziri_record_alerts``
(ledger/postgres/functions/ziri_record_alerts.sql) from the JSON of ``watches_json``; a
change to ``reached`` needs the same change there (tests/alerts/test_rules.py holds them together).
"""

from dataclasses import dataclass

from ..ledger.money import to_micros

# (period, the limit it watches): hard limits refuse and alert, soft ones only alert.
WATCHED_LIMITS = (("daily", "daily_spend_limit"), ("daily", "soft_daily_spend_limit"),
                  ("monthly", "monthly_spend_limit"), ("monthly", "soft_monthly_spend_limit"))


@dataclass(frozen=True)
class Watch:
    """One threshold of one spend limit of a key or its team."""

    scope: str  # "key" or "team"
    holder: str  # the key's id or the team's
    user: str | None  # the key's user (scope "key"); None for a team
    period: str  # "daily" or "monthly"
    limit_name: str  # e.g. "daily_spend_limit", "soft_monthly_spend_limit"
    limit_micros: int
    threshold: int  # percent


def reached(spent_micros, watch):
    """Return True once ``spent_micros`` is at least ``watch.threshold`` percent of its limit (exact, in integers)."""
    return spent_micros * 100 >= watch.limit_micros * watch.threshold


def _holder_watches(scope, holder, user, limits_of, thresholds):
    for period, limit_name in WATCHED_LIMITS:
        limit = limits_of(limit_name)
        if limit:
            for threshold in thresholds:
                yield Watch(scope, holder, user, period, limit_name, to_micros(limit), threshold)


def watches(key, thresholds):
    """Return the watches of ``key`` and its team for ``thresholds`` (percents): none when either is empty."""
    if not thresholds:
        return ()
    found = list(_holder_watches("key", key.id, key.user, key.limit, thresholds))
    if key.team is not None:
        found += _holder_watches("team", key.team.id, None, key.team.limit, thresholds)
    return tuple(found)


def watches_json(found):
    """Return ``found`` as the JSON-ready list ``ziri_record_alerts`` reads (its holders: the charge's key and team)."""
    return [{"scope": watch.scope, "user": watch.user, "period": watch.period, "limitName": watch.limit_name,
             "limit": watch.limit_micros, "threshold": watch.threshold} for watch in found]
