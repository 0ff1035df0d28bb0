"""Spend, reservations and admissions per key, team and end user, folded from ledger records in memory.

The file store keeps one ``UsageState`` per process: replayed from the ledger at start-up,
then brought up to date with what other workers appended before every decision. Each update
and each ``usage`` snapshot costs the same however long the ledger is.
"""

import heapq
from collections import deque

from .checks import IDEMPOTENCY_WINDOW_SECONDS
from .money import parse_ts
from .records import Reservation
from .records import counted_end_user
from .tally import Tally


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
    """Spend, reservations and admissions per key, per team and per end user of a key, from ``parse.Record`` values.

    A request counts for its key, for the team and the end user its records name (``records.py``:
    a reservation's, repeated by its charge and expiry), in three ``tally.Tally``: ``keys`` (by key
    id), ``teams`` (by team id) and ``end_users`` (by (key id, ``records.counted_end_user``)).
    """

    def __init__(self):
        self.offset = 0  # the ledger byte up to which records are applied
        self.keys = Tally()
        self.teams = Tally()
        self.end_users = Tally()  # only its spent and reserved are read (end_user_daily_spend_limit)
        self.open = {}  # request_id -> Reservation
        self.open_by_worker = {}  # worker -> {request_id: Reservation}, to free a dead worker's at once
        self._deadlines = []  # heap of (expires_at, request_id); closed ones are dropped when they surface
        self.expired = {}  # request_id -> micros charged conservatively, until a charge replaces it
        self.idempotency = {}  # (key_id, idempotency key digest) -> (request_id, admission time)
        self._idempotency_order = deque()  # (admission time, (key_id, digest)), oldest first, for pruning

    def apply(self, record):
        """Fold one ``parse.Record`` into the state."""
        if record.kind == "reservation":
            self._open(record)
            return
        request_id = record.request_id
        micros = record.micros
        reservation = self.open.pop(request_id, None)
        if reservation is not None:
            _discard(self.open_by_worker, reservation.worker, request_id)
            self._hold(reservation, -1)
        replaced = fold_expiry(self.expired, record, micros)
        if replaced is not None:
            micros -= replaced
        if record.kind == "charge" and record.idempotency_key and record.fields.get("idempotencyReleased") is True:
            self._release_idempotency(record.key_id, record.idempotency_key, request_id)
        self.keys.spend(record.key_id, record.reserved_at, micros)
        if record.team is not None:
            self.teams.spend(record.team, record.reserved_at, micros)
        self.end_users.spend((record.key_id, counted_end_user(record.end_user)), record.reserved_at, micros)

    def _hold(self, reservation, sign):
        """Count an open reservation (``sign`` 1) or its closing (-1) for its key, team and end user."""
        reserved_at, micros = reservation.reserved_at, sign * reservation.micros
        self.keys.hold(reservation.key_id, reserved_at, micros)
        self.end_users.hold((reservation.key_id, counted_end_user(reservation.end_user)), reserved_at, micros)
        if reservation.team is not None:
            self.teams.hold(reservation.team, reserved_at, micros)
        if sign < 0:
            self.keys.leave(reservation.key_id)
            if reservation.team is not None:
                self.teams.leave(reservation.team)

    def _open(self, record):
        if record.request_id in self.open:
            return  # the same reservation twice (an import): it holds the budget once
        reservation = Reservation.from_record(record)
        self._index_open(reservation)
        admitted_at = parse_ts(record.ts).timestamp()
        self.keys.admit(reservation.key_id, record.ts, admitted_at)
        if reservation.team is not None:
            self.teams.admit(reservation.team, record.ts, admitted_at)
        if record.idempotency_key:
            self._remember_idempotency(reservation.key_id, record.idempotency_key, reservation.request_id,
                                       admitted_at)

    def _index_open(self, reservation):
        request_id = reservation.request_id
        self.open[request_id] = reservation
        self.open_by_worker.setdefault(reservation.worker, {})[request_id] = reservation
        heapq.heappush(self._deadlines, (reservation.expires_at, request_id))
        self._hold(reservation, 1)

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
            **self.keys.snapshot(""), **self.teams.snapshot("team_"), **self.end_users.snapshot("end_user_"),
            "open": [[r.request_id, r.key_id, r.micros, r.reserved_at, r.expires_at, r.worker, r.team, r.end_user]
                     for r in self.open.values()],
            "expired": self.expired,
            "idempotency": [[*key, *value] for key, value in self.idempotency.items()],
            "idempotencyOrder": [[admitted_at, *key] for admitted_at, key in self._idempotency_order],
        }

    @classmethod
    def restore(cls, snapshot):
        """Return the UsageState that ``snapshot()`` described (the indexes and holds are rebuilt)."""
        state = cls()
        state.offset = snapshot["offset"]
        for tally, prefix in ((state.keys, ""), (state.teams, "team_"), (state.end_users, "end_user_")):
            tally.restore(snapshot, prefix)
        for fields in snapshot["open"]:
            reservation = Reservation(*fields)
            state._index_open(reservation)
            state.keys.in_flight[reservation.key_id] = state.keys.in_flight.get(reservation.key_id, 0) + 1
            if reservation.team is not None:
                state.teams.in_flight[reservation.team] = state.teams.in_flight.get(reservation.team, 0) + 1
        state.expired = dict(snapshot["expired"])
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

    def usage(self, key_id, now, digest=None, team_id=None, end_user=None):
        """Return the key's KeyUsage at ``now`` (with its team's, and its end user's day, when given).

        Call it with the ledger held (the rate windows are trimmed). ``end_user`` is the request's
        as counted (``records.counted_end_user``), or None when not known.
        """
        usage = self.keys.usage(key_id, now)
        if digest:
            usage.idempotent_match = self.idempotent_match(key_id, digest, now.timestamp())
        if team_id is not None:
            usage.team = self.teams.usage(team_id, now)
        if end_user is not None:
            usage.end_user = end_user
            usage.end_user_spent, usage.end_user_reserved = self.end_users.day((key_id, end_user), now)
        return usage


def _discard(index, group, request_id):
    members = index[group]
    del members[request_id]
    if not members:
        del index[group]  # a finished worker leaves nothing behind
