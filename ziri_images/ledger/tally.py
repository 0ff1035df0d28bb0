"""Running totals per holder (a key, a team, or one end user of a key), as the file store's limits read them.

A ``Tally`` counts, per holder and period ("YYYY-MM-DD", "YYYY-MM"), what was spent, what open
reservations hold and how many requests were admitted, and per holder the requests in flight
and the admissions in the rate window. ``usage.UsageState`` keeps one for keys, one for teams
and one for the end users of keys, and folds every record into each that the record names. The
PostgreSQL store keeps the same totals in tables (``key_periods``, ``team_periods``,
``end_user_days``): migrations/.
"""

from collections import deque

from .checks import RATE_WINDOW_SECONDS
from .checks import KeyUsage
from .money import BUDGETS
from .money import day_of
from .money import format_ts
from .money import month_of


def _holder(value):
    """Return a holder as a snapshot's JSON gave it back: an end user's (key, end user) pair is a list there."""
    return tuple(value) if isinstance(value, list) else value


class Tally:
    """Spend, holds, requests, requests in flight and admissions per holder."""

    def __init__(self):
        self.spent = {}  # (holder, period) -> micros charged (expiries included)
        self.requests = {}  # (holder, period) -> requests admitted
        self.reserved = {}  # (holder, period) -> micros held by open reservations
        self.in_flight = {}  # holder -> open reservations
        self.admissions = {}  # holder -> deque of admission times (epoch seconds)

    @staticmethod
    def _add(table, holder, ts, amount):
        for period in (day_of(ts), month_of(ts)):
            table[(holder, period)] = table.get((holder, period), 0) + amount

    def hold(self, holder, reserved_at, micros):
        """Count ``micros`` held (negative: released) in the periods of ``reserved_at``."""
        self._add(self.reserved, holder, reserved_at, micros)

    def spend(self, holder, reserved_at, micros):
        """Count ``micros`` spent (negative: an expiry's amount a charge replaces) in the periods of ``reserved_at``."""
        self._add(self.spent, holder, reserved_at, micros)

    def admit(self, holder, ts, admitted_at):
        """Count one request admitted at ``ts`` (``admitted_at`` in epoch seconds), now in flight."""
        self._add(self.requests, holder, ts, 1)
        self.in_flight[holder] = self.in_flight.get(holder, 0) + 1
        window = self.admissions.setdefault(holder, deque())
        window.append(admitted_at)
        while window and window[0] <= admitted_at - RATE_WINDOW_SECONDS:
            window.popleft()

    def leave(self, holder):
        """Count one request of ``holder`` no longer in flight."""
        left = self.in_flight[holder] - 1
        if left:
            self.in_flight[holder] = left
        else:
            del self.in_flight[holder]  # a quiet key or team leaves nothing behind

    def window(self, holder, now_epoch):
        """Return the holder's admission times within the rate window ending now (trimmed in place)."""
        window = self.admissions.get(holder, deque())
        while window and window[0] <= now_epoch - RATE_WINDOW_SECONDS:
            window.popleft()
        return window

    def usage(self, holder, now):
        """Return the holder's KeyUsage at ``now`` (call it with the ledger held: the window is trimmed)."""
        usage = KeyUsage(now=now, in_flight=self.in_flight.get(holder, 0), admissions=self.window(holder,
                                                                                                  now.timestamp()))
        ts = format_ts(now)
        for name, _limit_name, period_of, _next_period in BUDGETS:
            period = period_of(ts)
            usage.spent[name] = self.spent.get((holder, period), 0)
            # Kept as a running total: summing the open reservations made every request O(requests in flight).
            usage.reserved[name] = self.reserved.get((holder, period), 0)
            usage.requests[name] = self.requests.get((holder, period), 0)
        return usage

    def day(self, holder, now):
        """Return (spent, reserved) micros of ``holder`` on the day of ``now``."""
        period = (holder, day_of(format_ts(now)))
        return self.spent.get(period, 0), self.reserved.get(period, 0)

    def snapshot(self, prefix):
        """Return the totals that are not rebuilt from the open reservations, as JSON-ready lists named ``prefix``..."""
        return {f"{prefix}spent": [[*key, value] for key, value in self.spent.items()],
                f"{prefix}requests": [[*key, value] for key, value in self.requests.items()],
                f"{prefix}admissions": [[holder, list(window)] for holder, window in self.admissions.items()]}

    def restore(self, snapshot, prefix):
        """Take back what ``snapshot(prefix)`` wrote (the holds and requests in flight follow the open reservations)."""
        self.spent = {(_holder(holder), period): value for holder, period, value in snapshot[f"{prefix}spent"]}
        self.requests = {(_holder(holder), period): value for holder, period, value in snapshot[f"{prefix}requests"]}
        self.admissions = {_holder(holder): deque(window) for holder, window in snapshot[f"{prefix}admissions"]}
