"""Spend and image counts from the ledger, grouped by key, user, model, day, endpoint, team and/or end user.

Each request counts once, at the time it was admitted (its reservation's time, as the spend
limits count it), at its final amount: its ``charge`` record, or the conservative
``reservation_expired`` amount when no charge follows (a later charge replaces it).

Every store answers ``store.report(by, since, until)`` with a ``Report``: the file store
streams its ledger through an ``Aggregator``; the PostgreSQL store groups in SQL.
"""

import time
from dataclasses import dataclass
from dataclasses import field

from .money import MICROS
from .usage import fold_expiry

GROUPINGS = ("key", "user", "model", "day", "endpoint", "team", "end_user")
# Records written before edits existed name no endpoint: they were all generations.
DEFAULT_ENDPOINT = "generations"
UNKNOWN = "(unknown)"
# The group of requests of a key without a team, or that named no end user.
NONE = "(none)"


def check_groupings(by):
    """Raise ValueError unless every name in ``by`` is one of GROUPINGS."""
    for name in by:
        if name not in GROUPINGS:
            raise ValueError(f"cannot group by {name!r} (choose from {', '.join(GROUPINGS)})")


@dataclass
class Totals:
    """The counts of one group (or of the whole report)."""

    requests: int = 0
    images: int = 0
    cost_micros: int = 0
    expired: int = 0  # requests counted at their reserved amount because no charge followed

    def add(self, requests, images, micros, expired):
        self.requests += requests
        self.images += images
        self.cost_micros += micros
        self.expired += expired

    @property
    def cost(self):
        return self.cost_micros / MICROS

    def as_row(self):
        return {"requests": self.requests, "images": self.images, "cost": self.cost, "expired": self.expired}


@dataclass
class Report:
    """The result of ``store.report``: one Totals per group, plus what was read."""

    by: tuple
    since: str | None
    until: str | None
    groups: dict = field(default_factory=dict)
    lines: int = 0  # lines (rows) read
    parsed: int = 0  # records that were valid
    skipped_unparsable: int = 0  # lines that are not valid records (skipped and logged)

    def totals(self):
        total = Totals()
        for group in self.groups.values():
            total.add(group.requests, group.images, group.cost_micros, group.expired)
        return total

    def rows(self):
        """Yield (group values, Totals) sorted by group."""
        yield from sorted(self.groups.items())


class Aggregator:
    """Fold ``parse.Record`` values, oldest first, into per-group Totals."""

    def __init__(self, by, since, until):
        self.by = by
        self.since = since or ""
        self.until = until or "\uffff"
        self.groups = {}
        self.details = {}  # requestId -> its reservation's (user, model, endpoint, team, end user), until settled
        self.expired = {}  # requestId -> (group, micros, details) counted at the expiry amount so far
        self.users = {}  # keyId -> user, for expiry records (they name only the key)

    def group_of(self, record):
        if self.by == ("key",):
            return (record.key_id or UNKNOWN,)
        key_id = record.key_id or UNKNOWN
        user, model, endpoint = record.user, record.model, record.fields.get("endpoint")
        team, end_user = record.team, record.end_user
        if user is None or model is None or endpoint is None or team is None or end_user is None:
            # A late charge (after its expiry) finds its reservation's details with the expiry.
            seen = self.details.get(record.request_id) or self.expired.get(record.request_id, (0, 0, None))[2]
            user_seen, model_seen, endpoint_seen, team_seen, end_user_seen = seen or (None,) * 5
            user = user or user_seen or self.users.get(key_id, UNKNOWN)
            model = model or model_seen or UNKNOWN
            endpoint = endpoint or endpoint_seen or DEFAULT_ENDPOINT
            team, end_user = team or team_seen or NONE, end_user or end_user_seen or NONE
        values = {"key": key_id, "user": user, "model": model, "day": record.reserved_at[:10],
                  "endpoint": str(endpoint), "team": team, "end_user": end_user}
        return tuple(values[name] for name in self.by)

    def _add(self, group, requests, images, micros, expired):
        totals = self.groups.get(group)
        if totals is None:
            totals = self.groups[group] = Totals()
        totals.add(requests, images, micros, expired)

    def apply(self, record):
        if record.kind == "reservation":
            if self.since <= record.ts < self.until:
                self.details[record.request_id] = (record.user, record.model, record.fields.get("endpoint"),
                                                   record.team, record.end_user)
                self.users[record.key_id] = record.user
            return
        if not self.since <= record.reserved_at < self.until:
            return
        request_id = record.request_id
        group = self.group_of(record)
        details = self.details.pop(request_id, None)
        replaced = fold_expiry(self.expired, record, (group, record.micros, details))
        if record.kind == "reservation_expired":
            self._add(group, 1, 0, record.micros, 1)
            return
        if replaced is not None:
            self._add(replaced[0], -1, 0, -replaced[1], -1)
        self._add(group, 1, record.images or 0, record.micros, 0)


class Progress:
    """Print 'reading ledger: NN%' on ``stream`` once the work has taken more than ``delay`` seconds."""

    def __init__(self, stream, delay=1.0, interval=0.25):
        self.stream = stream
        self.delay = delay
        self.interval = interval
        self.started = time.monotonic()
        self.shown = 0  # length of the line on screen
        self.last = 0.0

    def __call__(self, done, total):
        now = time.monotonic()
        finished = done >= total
        if finished:
            if self.shown:
                self.stream.write("\r" + " " * self.shown + "\r")
                self.stream.flush()
            return
        if now - self.started < self.delay or now - self.last < self.interval:
            return
        self.last = now
        text = f"reading ledger: {100 * done // total}% ({done / 1e6:.0f} of {total / 1e6:.0f} MB)"
        self.stream.write("\r" + text.ljust(self.shown))
        self.stream.flush()
        self.shown = max(self.shown, len(text))
