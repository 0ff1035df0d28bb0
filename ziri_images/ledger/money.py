"""Money, time and periods as the ledger counts them: micro-dollars, its timestamps, the budgets' periods.

Money is kept in integer micro-dollars and written in records as dollars (JSON numbers).
A timestamp is UTC with microseconds and a 'Z' (``format_ts``); a request counts in the day
and the month of its reservation's timestamp (``day_of``, ``month_of``).
"""

from datetime import datetime
from datetime import timedelta
from datetime import timezone

MICROS = 1_000_000
# No single request costs more: a larger amount is a corrupt record, and it would overflow
# a 64-bit column in micro-dollars.
MAX_AMOUNT = 1_000_000_000


def to_micros(dollars):
    """Return an amount in dollars as integer micro-dollars."""
    return round(dollars * MICROS)


def to_dollars(micros):
    """Return an amount in micro-dollars as dollars (a float, as records carry it)."""
    return micros / MICROS


def format_ts(moment):
    """Return the ledger's timestamp format: UTC, microseconds, 'Z'."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text):
    """Return the aware datetime of a ledger timestamp."""
    return datetime.fromisoformat(text)


def day_of(ts):
    """Return the day ("YYYY-MM-DD") a ledger timestamp counts in."""
    return ts[:10]


def month_of(ts):
    """Return the month ("YYYY-MM") a ledger timestamp counts in."""
    return ts[:7]


def next_day(now):
    """Return the start (UTC) of the day after ``now``."""
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def next_month(now):
    """Return the start (UTC) of the month after ``now``."""
    return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)


#: The spend budgets: (name, limit setting, its period of a timestamp, the start of the next period).
BUDGETS = (
    ("daily", "daily_spend_limit", day_of, next_day),
    ("monthly", "monthly_spend_limit", month_of, next_month),
)


def budget_periods(now):
    """Yield (name, period, limit setting, reset time) for the budgets that apply at ``now``."""
    ts = format_ts(now)
    for name, limit_name, period_of, next_period in BUDGETS:
        yield name, period_of(ts), limit_name, next_period(now)
