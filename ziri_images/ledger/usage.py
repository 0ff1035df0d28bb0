"""Spend, reservations and admissions per key, folded from ledger records in memory.

The file store keeps one ``UsageState`` per process: replayed from the ledger at start-up,
then brought up to date with what other workers appended before every decision. Each update
and each ``usage`` snapshot costs the same however long the ledger is.
"""

import heapq
from collections import deque

from .checks import IDEMPOTENCY_WINDOW_SECONDS
from .checks import RATE_WINDOW_SECONDS
from .checks import KeyUsage
from .money import BUDGETS
from .money import day_of
from .money import format_ts
from .money import month_of
from .money import parse_ts
from .records import Reservation


def fold_expiry(expired, record, counted):
    """Apply "a charge replaces an expiry" to one settling record; return what its charge replaces, or None.

    The rule's one statement in Python, for the limits (``UsageState``) and the report
    (``report.Aggregator``). A ``reservation_expired`` record is remembered in ``expired`` under
    its request id as ``counted`` (whatever its caller counted it as); a ``charge`` takes its
    request's expiry back out, and the caller subtracts what that expiry had counted. The
    PostgreSQL store mirrors the rule in SQL (``ziri_settle_charge`` and the report's query).
    """
    if record.kind == "reservation_expired":
        expired[record.request_id] = counted
        return None
    return expired.pop(record.request_id, None)


class UsageState:
    """Spend, reservations and admissions per key, derived from ``parse.Record`` values."""

    def __init__(self):
        self.offset = 0  # the ledger byte up to which records are applied
        self.spent = {}  # (key_id, "YYYY-MM-DD" | "YYYY-MM") -> micros
        self.requests = {}  # (key_id, period) -> admitted requests
        self.open = {}  # request_id -> Reservation
        self.open_by_key = {}  # key_id -> {request_id: Reservation}
        self.open_by_worker = {}  # worker -> {request_id: Reservation}, to free a dead worker's at once
        self._deadlines = []  # heap of (expires_at, request_id); closed ones are dropped when they surface
        self.expired = {}  # request_id -> micros charged conservatively, until a charge replaces it
        self.reserved = {}  # (key_id, "YYYY-MM-DD" | "YYYY-MM") -> micros held by open reservations
        self.admissions = {}  # key_id -> deque of admission times (epoch seconds)
        self.idempotency = {}  # (key_id, idempotency key digest) -> (request_id, admission time)
        self._idempotency_order = deque()  # (admission time, (key_id, digest)), oldest first, for pruning

    def _add(self, table, key_id, ts, amount):
        for period in (day_of(ts), month_of(ts)):
            table[(key_id, period)] = table.get((key_id, period), 0) + amount

    def apply(self, record):
        """Fold one ``parse.Record`` into the state."""
        if record.kind == "reservation":
            self._open(record)
            return
        request_id = record.request_id
        micros = record.micros
        reservation = self.open.pop(request_id, None)
        if reservation is not None:
            _discard(self.open_by_key, reservation.key_id, request_id)
            _discard(self.open_by_worker, reservation.worker, request_id)
            self._add(self.reserved, reservation.key_id, reservation.reserved_at, -reservation.micros)
        replaced = fold_expiry(self.expired, record, micros)
        if replaced is not None:
            micros -= replaced
        if record.kind == "charge" and record.idempotency_key and record.fields.get("idempotencyReleased") is True:
            self._release_idempotency(record.key_id, record.idempotency_key, request_id)
        self._add(self.spent, record.key_id, record.reserved_at, micros)

    def _open(self, record):
        if record.request_id in self.open:
            return  # the same reservation twice (an import): it holds the budget once
        reservation = Reservation.from_record(record)
        key_id = reservation.key_id
        self._index_open(reservation)
        self._add(self.reserved, key_id, reservation.reserved_at, reservation.micros)
        self._add(self.requests, key_id, record.ts, 1)
        admitted_at = parse_ts(record.ts).timestamp()
        window = self.admissions.setdefault(key_id, deque())
        window.append(admitted_at)
        while window and window[0] <= admitted_at - RATE_WINDOW_SECONDS:
            window.popleft()
        if record.idempotency_key:
            self._remember_idempotency(key_id, record.idempotency_key, reservation.request_id, admitted_at)

    def _index_open(self, reservation):
        request_id = reservation.request_id
        self.open[request_id] = reservation
        self.open_by_key.setdefault(reservation.key_id, {})[request_id] = reservation
        self.open_by_worker.setdefault(reservation.worker, {})[request_id] = reservation
        heapq.heappush(self._deadlines, (reservation.expires_at, request_id))

    def overdue(self, now_epoch):
        """Return the open reservations whose time ran out by ``now_epoch``, soonest first.

        Costs O(k log n) for k overdue reservations, never a walk of all n open ones. They stay
        open (and in the index) until their expiry records are applied.
        """
        due = []
        while self._deadlines and self._deadlines[0][0] <= now_epoch:
            entry = heapq.heappop(self._deadlines)
            reservation = self.open.get(entry[1])
            if reservation is not None and reservation.expires_at == entry[0]:
                due.append(entry)
        for entry in due:
            heapq.heappush(self._deadlines, entry)  # closed by its expiry record, dropped when it surfaces
        return [self.open[request_id] for _, request_id in due]

    def snapshot(self):
        """Return the state as JSON-ready lists (a checkpoint's body); ``restore`` reverses it."""
        return {
            "offset": self.offset,
            "spent": [[*key, value] for key, value in self.spent.items()],
            "requests": [[*key, value] for key, value in self.requests.items()],
            "open": [[r.request_id, r.key_id, r.micros, r.reserved_at, r.expires_at, r.worker]
                     for r in self.open.values()],
            "expired": self.expired,
            "admissions": {key_id: list(window) for key_id, window in self.admissions.items()},
            "idempotency": [[*key, *value] for key, value in self.idempotency.items()],
            "idempotencyOrder": [[admitted_at, *key] for admitted_at, key in self._idempotency_order],
        }

    @classmethod
    def restore(cls, snapshot):
        """Return the UsageState that ``snapshot()`` described (the indexes are rebuilt)."""
        state = cls()
        state.offset = snapshot["offset"]
        state.spent = {(key_id, period): value for key_id, period, value in snapshot["spent"]}
        state.requests = {(key_id, period): value for key_id, period, value in snapshot["requests"]}
        for fields in snapshot["open"]:
            reservation = Reservation(*fields)
            state._index_open(reservation)
            state._add(state.reserved, reservation.key_id, reservation.reserved_at, reservation.micros)
        state.expired = dict(snapshot["expired"])
        state.admissions = {key_id: deque(window) for key_id, window in snapshot["admissions"].items()}
        state.idempotency = {(key_id, digest): (request_id, admitted_at)
                             for key_id, digest, request_id, admitted_at in snapshot["idempotency"]}
        state._idempotency_order = deque((admitted_at, (key_id, digest))
                                         for admitted_at, key_id, digest in snapshot["idempotencyOrder"])
        return state

    def _remember_idempotency(self, key_id, digest, request_id, admitted_at):
        self.idempotency[(key_id, digest)] = (request_id, admitted_at)
        self._idempotency_order.append((admitted_at, (key_id, digest)))
        while self._idempotency_order and self._idempotency_order[0][0] <= admitted_at - IDEMPOTENCY_WINDOW_SECONDS:
            old_admitted_at, old = self._idempotency_order.popleft()
            if self.idempotency.get(old, (None, None))[1] == old_admitted_at:
                del self.idempotency[old]

    def _release_idempotency(self, key_id, digest, request_id):
        # As ziri_reserve does (postgres/functions/ziri_reserve.sql): only the request that holds the key releases it.
        if self.idempotency.get((key_id, digest), (None,))[0] == request_id:
            del self.idempotency[(key_id, digest)]  # its _idempotency_order entry no longer matches: skipped

    def idempotent_match(self, key_id, digest, now_epoch):
        """Return (request id, still open) for the request that used ``digest`` in the last day, or None."""
        request_id, admitted_at = self.idempotency.get((key_id, digest), (None, 0.0))
        if request_id is None or now_epoch - admitted_at >= IDEMPOTENCY_WINDOW_SECONDS:
            return None
        return request_id, request_id in self.open

    def window(self, key_id, now_epoch):
        """Return the key's admission times within the rate window ending now (trimmed in place)."""
        window = self.admissions.get(key_id, deque())
        while window and window[0] <= now_epoch - RATE_WINDOW_SECONDS:
            window.popleft()
        return window

    def usage(self, key_id, now, digest=None):
        """Return the key's KeyUsage at ``now``; call it with the ledger held (the window is trimmed)."""
        now_epoch = now.timestamp()
        usage = KeyUsage(now=now, in_flight=len(self.open_by_key.get(key_id, ())),
                         admissions=self.window(key_id, now_epoch))
        ts = format_ts(now)
        for name, _limit_name, period_of, _next_period in BUDGETS:
            period = period_of(ts)
            usage.spent[name] = self.spent.get((key_id, period), 0)
            # Kept as a running total: summing the open reservations made every request O(requests in flight).
            usage.reserved[name] = self.reserved.get((key_id, period), 0)
            usage.requests[name] = self.requests.get((key_id, period), 0)
        if digest:
            usage.idempotent_match = self.idempotent_match(key_id, digest, now_epoch)
        return usage


def _discard(index, group, request_id):
    members = index[group]
    del members[request_id]
    if not members:
        del index[group]  # a finished worker or a quiet key leaves nothing behind
