"""Per-key spend, rate and concurrency limits that hold across workers.

The ledger is the single source of truth. Every process keeps a ``UsageState`` derived from
it (replayed once at start-up, then followed from its last offset), and every decision is
made inside a ledger transaction: catch up with what other workers appended, decide, append
the reservation. The decision and the record are therefore atomic across all workers and
threads, and the work per request depends on recent traffic, never on the ledger's size.
No lock is held while the provider is called: the reservation is settled in a second
transaction afterwards.

A reservation whose worker died is settled by whichever worker notices first, at the
reserved amount (the provider may have generated the images), with a visible
``reservation_expired`` record. If the original worker does settle later, its ``charge``
record replaces that conservative amount.
"""

import bisect
import math
import os
import secrets
import socket
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from .errors import ApiError
from .keys import LIMIT_NAMES

MICROS = 1_000_000
RATE_WINDOW_SECONDS = 60
# A client's Idempotency-Key is remembered this long (the replay keeps at least a day).
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
_LIVENESS_CACHE_SECONDS = 1.0


def to_micros(amount):
    return round(amount * MICROS)


def to_amount(micros):
    return micros / MICROS


def format_ts(moment):
    """Return the ledger's timestamp format: UTC, microseconds, 'Z'."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_of(ts):
    return ts[:10]


def month_of(ts):
    return ts[:7]


def next_day(now):
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def next_month(now):
    return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)


def budget_periods(now):
    """Yield (name, period, limit setting, reset time) for the budgets that apply at ``now``."""
    yield "daily", now.strftime("%Y-%m-%d"), "daily_spend_limit", next_day(now)
    yield "monthly", now.strftime("%Y-%m"), "monthly_spend_limit", next_month(now)


@dataclass
class Reservation:
    """Budget held for one in-flight request."""

    request_id: str
    key_id: str
    micros: int
    reserved_at: str
    expires_at: float
    worker: str


class UsageState:
    """Spend, reservations and admissions per key, derived from ledger records."""

    def __init__(self):
        self.offset = 0
        self.spent = {}  # (key_id, "YYYY-MM-DD" | "YYYY-MM") -> micros
        self.requests = {}  # (key_id, period) -> admitted requests
        self.open = {}  # request_id -> Reservation
        self.open_by_key = {}  # key_id -> {request_id: Reservation}
        self.expired = {}  # request_id -> micros charged conservatively, until a charge replaces it
        self.reserved = {}  # (key_id, "YYYY-MM-DD" | "YYYY-MM") -> micros held by open reservations
        self.admissions = {}  # key_id -> deque of admission times (epoch seconds)
        self.idempotency = {}  # (key_id, idempotency key digest) -> (request_id, admission time)
        self._idempotency_order = deque()  # (admission time, (key_id, digest)), oldest first, for pruning

    def _add(self, table, key_id, ts, amount):
        for period in (day_of(ts), month_of(ts)):
            table[(key_id, period)] = table.get((key_id, period), 0) + amount

    def apply(self, record):
        """Fold one ledger record into the state."""
        kind = record.get("type")
        request_id = record.get("requestId")
        key_id = record.get("keyId")
        if kind == "reservation":
            reservation = Reservation(
                request_id=request_id,
                key_id=key_id,
                micros=to_micros(record["amount"]),
                reserved_at=record["ts"],
                expires_at=parse_ts(record["expiresAt"]).timestamp(),
                worker=record.get("worker", ""),
            )
            self.open[request_id] = reservation
            self.open_by_key.setdefault(key_id, {})[request_id] = reservation
            self._add(self.reserved, key_id, reservation.reserved_at, reservation.micros)
            self._add(self.requests, key_id, record["ts"], 1)
            admitted_at = parse_ts(record["ts"]).timestamp()
            window = self.admissions.setdefault(key_id, deque())
            window.append(admitted_at)
            while window and window[0] <= admitted_at - RATE_WINDOW_SECONDS:
                window.popleft()
            if record.get("idempotencyKey"):
                self._remember_idempotency(key_id, record["idempotencyKey"], request_id, admitted_at)
        elif kind in ("charge", "reservation_expired"):
            micros = to_micros(record.get("cost", 0))
            reservation = self.open.pop(request_id, None)
            if reservation is not None:
                del self.open_by_key[reservation.key_id][request_id]
                self._add(self.reserved, reservation.key_id, reservation.reserved_at, -reservation.micros)
            if kind == "reservation_expired":
                self.expired[request_id] = micros
            else:
                micros -= self.expired.pop(request_id, 0)
            self._add(self.spent, key_id, record.get("reservedAt", record["ts"]), micros)

    def _remember_idempotency(self, key_id, digest, request_id, admitted_at):
        self.idempotency[(key_id, digest)] = (request_id, admitted_at)
        self._idempotency_order.append((admitted_at, (key_id, digest)))
        while self._idempotency_order and self._idempotency_order[0][0] <= admitted_at - IDEMPOTENCY_WINDOW_SECONDS:
            old_admitted_at, old = self._idempotency_order.popleft()
            if self.idempotency.get(old, (None, None))[1] == old_admitted_at:
                del self.idempotency[old]

    def idempotent_request(self, key_id, digest, now_epoch):
        """Return the request id that used ``digest`` for this key in the last day, or None."""
        request_id, admitted_at = self.idempotency.get((key_id, digest), (None, 0.0))
        return request_id if now_epoch - admitted_at < IDEMPOTENCY_WINDOW_SECONDS else None

    def reserved_micros(self, key_id, period):
        """Return the budget held by the key's open reservations made in ``period``."""
        # Kept as a running total: summing the open reservations made every request O(requests in flight).
        return self.reserved.get((key_id, period), 0)

    def window(self, key_id, now_epoch):
        """Return the key's admission times within the rate window ending now."""
        window = self.admissions.get(key_id, deque())
        while window and window[0] <= now_epoch - RATE_WINDOW_SECONDS:
            window.popleft()
        return window


def replay_filter(now):
    """Return a cheap line filter that skips records too old to affect current limits."""
    # Keep the current month, plus a day before it for requests still in flight at midnight.
    threshold = min(datetime(now.year, now.month, 1, tzinfo=timezone.utc), now - timedelta(days=1))
    prefix = b'{"ts":"'
    floor = threshold.strftime("%Y-%m-%d").encode()
    return lambda line: not line.startswith(prefix) or line[7:17] >= floor


class Limiter:
    """Reserve and settle spend for requests, enforcing each key's limits."""

    def __init__(self, ledger, clock, reservation_ttl):
        self.ledger = ledger
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self.state = UsageState()
        self._host = socket.gethostname()
        self._worker = None
        self._liveness = {}  # worker -> (checked_at, alive)

    @property
    def worker(self):
        # Computed per process: gunicorn forks after the app (and this object) is created.
        pid = os.getpid()
        if self._worker is None or self._worker[0] != pid:
            self._worker = (pid, f"{self._host}:{pid}:{secrets.token_hex(4)}")
        return self._worker[1]

    def replay(self):
        """Rebuild the state from the whole ledger; return the number of records read."""
        count = 0

        def advance(offset):
            self.state.offset = offset

        for record, _ in self.ledger.scan(0, replay_filter(self.clock()), on_block=advance):
            self.state.apply(record)
            count += 1
        # Whatever other instances appended while we scanned (an overlapping deploy).
        with self.ledger.transaction():
            count += self._catch_up()
        return count

    def _catch_up(self):
        """Apply what other workers appended since this process last looked; return how many."""
        records, self.state.offset = self.ledger.read_from(self.state.offset)
        for record in records:
            self.state.apply(record)
        return len(records)

    def _commit(self, transaction, records, sync=True):
        end = transaction.commit(sync=sync)
        for record in records:
            self.state.apply(record)
        if end is not None:
            self.state.offset = end

    def _worker_gone(self, worker, now_epoch):
        host, _, rest = worker.partition(":")
        pid_text, _, token = rest.partition(":")
        if host != self._host or not pid_text.isdigit():
            return False  # another machine's worker: only its expiry time can free it
        if worker == self.worker:
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            return True  # an earlier process that had this pid
        checked_at, alive = self._liveness.get(worker, (0.0, True))
        if now_epoch - checked_at > _LIVENESS_CACHE_SECONDS:
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
            self._liveness[worker] = (now_epoch, alive)
        return not alive

    def _expire_stale(self, now):
        """Return expiry records for reservations past their time or whose worker died."""
        now_epoch = now.timestamp()
        records = []
        gone = {}  # worker -> verdict: the open reservations share a few workers; ask once per worker
        for reservation in list(self.state.open.values()):
            if now_epoch >= reservation.expires_at:
                reason = "expired"
            else:
                if reservation.worker not in gone:
                    gone[reservation.worker] = self._worker_gone(reservation.worker, now_epoch)
                if not gone[reservation.worker]:
                    continue
                reason = "worker_died"
            records.append({
                "ts": format_ts(now),
                "type": "reservation_expired",
                "requestId": reservation.request_id,
                "keyId": reservation.key_id,
                "reservedAt": reservation.reserved_at,
                "cost": to_amount(reservation.micros),
                "reason": reason,
                "worker": reservation.worker,
            })
        return records

    def _settle_stale(self, transaction, now):
        """Write expiry records for stale reservations; the state follows once they are in the file."""
        expiries = self._expire_stale(now)
        for expiry in expiries:
            transaction.append(expiry)
        self._commit(transaction, expiries, sync=False)

    def _check_idempotency(self, key, digest, now):
        """Refuse a second request with the same Idempotency-Key: it would be billed twice."""
        original = self.state.idempotent_request(key.id, digest, now.timestamp()) if digest else None
        if original is None:
            return
        if original in self.state.open:
            raise ApiError(409, "IDEMPOTENT_REQUEST_IN_PROGRESS",
                           "A request with this Idempotency-Key is still being generated.",
                           headers={"Retry-After": "5"}, originalRequestId=original)
        raise ApiError(409, "IDEMPOTENCY_KEY_REUSED",
                       "A request with this Idempotency-Key was already processed (and charged if it succeeded).",
                       originalRequestId=original)

    def _check(self, key, micros, now):
        state = self.state
        now_epoch = now.timestamp()
        rpm = key.limit("requests_per_minute")
        window = state.window(key.id, now_epoch)
        if rpm and len(window) >= rpm:
            retry_after = max(1, math.ceil(window[0] + RATE_WINDOW_SECONDS - now_epoch))
            reset_at = datetime.fromtimestamp(window[0] + RATE_WINDOW_SECONDS, timezone.utc)
            raise ApiError(
                429, "RATE_LIMIT_EXCEEDED", f"Rate limit of {int(rpm)} requests per minute exceeded.",
                headers={"Retry-After": str(retry_after)}, should_retry=True,
                limit=int(rpm), retryAfter=retry_after, resetAt=format_ts(reset_at),
            )
        max_concurrent = key.limit("max_concurrent_requests")
        in_flight = len(state.open_by_key.get(key.id, ()))
        if max_concurrent and in_flight >= max_concurrent:
            raise ApiError(
                503, "QUEUE_FULL", f"Too many requests in flight for this key (limit {int(max_concurrent)}).",
                headers={"Retry-After": "1"}, should_retry=True, limit=int(max_concurrent), inFlight=in_flight,
            )
        for period_name, period, limit_name, resets in budget_periods(now):
            limit = key.limit(limit_name)
            if not limit:
                continue
            spent = state.spent.get((key.id, period), 0)
            reserved = state.reserved_micros(key.id, period)
            if spent + reserved + micros > to_micros(limit):
                raise ApiError(
                    402, "SPEND_LIMIT_EXCEEDED",
                    f"The {period_name} spend limit of ${limit:.2f} would be exceeded by this request.",
                    period=period_name, limit=limit, spent=to_amount(spent), reserved=to_amount(reserved),
                    requested=to_amount(micros), resetsAt=format_ts(resets),
                )

    def reserve(self, key, amount, details):
        """Check the key's limits and reserve ``amount``; return the Reservation or raise."""
        micros = to_micros(amount)
        with self.ledger.transaction() as transaction:
            self._catch_up()
            now = self.clock()
            self._settle_stale(transaction, now)
            self._check_idempotency(key, details.get("idempotencyKey"), now)
            self._check(key, micros, now)
            record = {
                "ts": format_ts(now),
                "type": "reservation",
                **details,
                "keyId": key.id,
                "user": key.user,
                "amount": to_amount(micros),
                "expiresAt": format_ts(now + timedelta(seconds=self.reservation_ttl)),
                "worker": self.worker,
            }
            transaction.append(record)
            # Not fsynced here: a killed worker cannot lose it (it is in the page cache), and
            # the request's charge, synced before the response is sent, flushes it too. Only
            # an OS crash within milliseconds of the write could lose it, before any answer.
            # After a failed commit it is synced: a disk that fails only at fsync (NFS, thin
            # volumes) must refuse requests before the provider is called, not after each one.
            self._commit(transaction, [record], sync=self.ledger.failing)
        return self.state.open[record["requestId"]]

    def settle(self, reservation, record):
        """Append the request's ``charge`` record, releasing its reservation."""
        with self.ledger.transaction() as transaction:
            self._catch_up()
            record = {
                "ts": format_ts(self.clock()),
                "type": "charge",
                **record,
                "reservedAt": reservation.reserved_at,
                "reserved": to_amount(reservation.micros),
            }
            if reservation.request_id not in self.state.open:
                record["afterExpiry"] = True
            transaction.append(record)
            self._commit(transaction, [record])
        return record

    def rate_headers(self, key):
        """Return the X-RateLimit-* headers for ``key`` (none when it has no rate limit)."""
        rpm = key.limit("requests_per_minute")
        if not rpm:
            return {}
        now_epoch = self.clock().timestamp()
        # Read without the ledger lock: copy the window instead of trimming it in place, and bisect
        # it (admissions are in time order) rather than filter it in Python, O(window) per request.
        window = list(self.state.admissions.get(key.id, ()))
        window = window[bisect.bisect_right(window, now_epoch - RATE_WINDOW_SECONDS):]
        reset = window[0] + RATE_WINDOW_SECONDS if window else now_epoch
        return {
            "X-RateLimit-Limit": str(int(rpm)),
            "X-RateLimit-Remaining": str(max(0, int(rpm) - len(window))),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def usage(self, key):
        """Return the key's current spend, reservations, limits and counts."""
        with self.ledger.transaction() as transaction:
            self._catch_up()
            now = self.clock()
            # A crashed worker's reservation is spent, not reserved, as soon as anyone looks.
            self._settle_stale(transaction, now)
            state = self.state
            report = {"keyId": key.id, "user": key.user, "currency": "USD"}
            for name, period, limit_name, resets in budget_periods(now):
                spent = state.spent.get((key.id, period), 0)
                reserved = state.reserved_micros(key.id, period)
                limit = key.limit(limit_name)
                report[name] = {
                    "period": period,
                    "spent": to_amount(spent),
                    "reserved": to_amount(reserved),
                    "limit": limit,
                    "remaining": to_amount(max(0, to_micros(limit) - spent - reserved)) if limit else None,
                    "requests": state.requests.get((key.id, period), 0),
                    "resetsAt": format_ts(resets),
                }
            report["inFlight"] = len(state.open_by_key.get(key.id, ()))
            report["requestsLastMinute"] = len(state.window(key.id, now.timestamp()))
            report["limits"] = {name: key.limit(name) for name in LIMIT_NAMES}
            report["expiresAt"] = key.expires_at.isoformat() if key.expires_at else None
            return report
