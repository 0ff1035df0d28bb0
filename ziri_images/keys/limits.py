"""The limits a key or a team may carry, and what each may be: the one rule for keys.json and the command line.

Absent or 0 means unlimited. The soft limits refuse nothing: crossing a threshold of one only
sends a budget alert (``alerts/``), as crossing one of a hard limit does.
"""

import math

from ..errors import ConfigError

# Limits a team carries (every key of the team is held to them together, beside its own).
TEAM_LIMIT_NAMES = ("daily_spend_limit", "monthly_spend_limit", "requests_per_minute", "max_concurrent_requests",
                    "soft_daily_spend_limit", "soft_monthly_spend_limit")
# A key's: its team's kinds, and the daily spend of each of its end users (OpenAI's ``user`` field).
LIMIT_NAMES = (*TEAM_LIMIT_NAMES, "end_user_daily_spend_limit")
# The largest limits a key may carry. Spend is counted in micro-dollars in 64-bit integers (the
# PostgreSQL store's bigint columns): $1,000,000,000 a period is 1e15 micros, exact as a float
# (< 2**53) and 9,000 times below the bigint's range, room for the period's sums. Rate and
# concurrency are whole counts, bounded far beyond any one host's reach.
SPEND_MAXIMUM = 1_000_000_000
LIMIT_MAXIMUMS = {"daily_spend_limit": SPEND_MAXIMUM, "monthly_spend_limit": SPEND_MAXIMUM,
                  "requests_per_minute": 1_000_000, "max_concurrent_requests": 100_000,
                  "soft_daily_spend_limit": SPEND_MAXIMUM, "soft_monthly_spend_limit": SPEND_MAXIMUM,
                  "end_user_daily_spend_limit": SPEND_MAXIMUM}
WHOLE_LIMITS = ("requests_per_minute", "max_concurrent_requests")


def limit_rule(name):
    """Return what the limit ``name`` may be, in words (for error messages)."""
    whole = "whole " if name in WHOLE_LIMITS else ""
    return f"a {whole}number >= 0 and at most {LIMIT_MAXIMUMS[name]:,}"


def limit_problem(name, value):
    """Return why ``value`` cannot be the limit ``name``, or None when the gateway can enforce it.

    The one rule for keys.json and the command line: NaN, infinities, values past ``LIMIT_MAXIMUMS``
    (they would overflow the database's bigint) and fractional counts are refused, never stored.
    """
    enforceable = isinstance(value, (int, float)) and not isinstance(value, bool)
    # Compared without conversion: an integer too large for a float is refused, not an OverflowError.
    enforceable = enforceable and not (isinstance(value, float) and math.isnan(value))
    enforceable = enforceable and 0 <= value <= LIMIT_MAXIMUMS[name]
    if enforceable and (name not in WHOLE_LIMITS or value == int(value)):
        return None
    return f"limit '{name}' must be {limit_rule(name)} (0 = unlimited), got {value!r}"


def parse_limits(limits, names, where):
    """Return a copy of a key's or team's ``limits`` object, or raise ConfigError naming ``where`` and the problem."""
    limits = limits or {}
    if not isinstance(limits, dict):
        raise ConfigError(f"{where}: 'limits' must be an object")
    for name, value in limits.items():
        if name not in names:
            raise ConfigError(f"{where}: unknown limit '{name}' (known: {', '.join(names)})")
        problem = limit_problem(name, value)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")
    return dict(limits)
