"""What ``ziri_reserve`` is asked and answers, as the checks read it: the limits, the usage and the rate windows.

The database decides (functions/ziri_reserve.sql); a refusal is worded by running
``checks.run_checks`` on the usage it reports: the key's ``KeyUsage``, with its team's and its
end user's day when they apply.
"""

from collections.abc import Sequence

from ..checks import KeyUsage
from ..money import to_micros
from ..records import team_of


class AdmissionWindow(Sequence):
    """A key's rate window as the checks read it: how many admissions, and the first one's time."""

    def __init__(self, count, first):
        self.count, self.first = count, first

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if index != 0 or not self.count:
            raise IndexError("only the window's first admission is known")
        return self.first


def _limits(holder, prefix):
    """Return ``holder``'s limits as ``ziri_reserve`` takes them (None: no limit; spend in micros)."""
    def limit(name):
        value = holder.limit(name) if holder is not None else None
        return value if value else None  # checks.py: 0 or unset is no limit

    daily, monthly = limit("daily_spend_limit"), limit("monthly_spend_limit")
    return {f"{prefix}rpm": limit("requests_per_minute"), f"{prefix}max_concurrent": limit("max_concurrent_requests"),
            f"{prefix}daily": to_micros(daily) if daily else None,
            f"{prefix}monthly": to_micros(monthly) if monthly else None}


def reserve_limits(key, end_user):
    """Return the limit arguments of ``ziri_reserve`` for ``key``, its team and its end user (None: not known)."""
    per_end_user = key.limit("end_user_daily_spend_limit") if end_user is not None else None
    return {**_limits(key, ""), "team": team_of(key), **_limits(key.team, "team_"), "end_user": end_user,
            "end_user_daily": to_micros(per_end_user) if per_end_user else None}


def _usage(row, now):
    spent_day, spent_month, requests_day, requests_month, held_day, held_month, in_flight = row[:7]
    window_count, window_first = row[7:9]
    return KeyUsage(
        now=now, spent={"daily": spent_day, "monthly": spent_month},
        reserved={"daily": held_day, "monthly": held_month},
        requests={"daily": requests_day, "monthly": requests_month}, in_flight=in_flight,
        admissions=AdmissionWindow(window_count, window_first),
    )


def usage_from(row, now, with_team=False, end_user=None):
    """Return the ``KeyUsage`` that ``ziri_reserve``'s answer (its columns after state and now) describes."""
    usage = _usage(row, now)
    same, is_open = row[9:11]
    usage.idempotent_match = None if same is None else (same, bool(is_open))
    if with_team:
        usage.team = _usage(row[11:20], now)
    if end_user is not None:
        usage.end_user, usage.end_user_spent, usage.end_user_reserved = end_user, row[20], row[21]
    return usage
