"""A key's or team's figures as ``GET /api/me/usage`` and the dashboard show them: the day, the month, the counts."""

from .ledger.money import budget_periods
from .ledger.money import format_ts
from .ledger.money import to_dollars
from .ledger.money import to_micros


def usage_figures(holder, usage, limit_names):
    """Return the day's and month's figures, requests in flight and in the last minute, and limits of a key or team."""
    figures = {}
    for name, period, limit_name, resets in budget_periods(usage.now):
        spent, reserved = usage.spent[name], usage.reserved[name]
        limit = holder.limit(limit_name)
        figures[name] = {
            "period": period,
            "spent": to_dollars(spent),
            "reserved": to_dollars(reserved),
            "limit": limit,
            "remaining": to_dollars(max(0, to_micros(limit) - spent - reserved)) if limit else None,
            "requests": usage.requests[name],
            "resetsAt": format_ts(resets),
        }
    figures["inFlight"] = usage.in_flight
    figures["requestsLastMinute"] = len(usage.admissions)
    figures["limits"] = {name: holder.limit(name) for name in limit_names}
    return figures
