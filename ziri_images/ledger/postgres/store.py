"""The PostgreSQL store: the ledger's records and every limit decision in one shared database.

Budgets hold across hosts and survive a wiped disk. ``reserve`` is one transaction: lock the
key's row, settle the key's stale reservations, build its ``KeyUsage``, run ``checks.CHECKS``,
insert the reservation. ``settle`` is another. No lock is held while the provider works. Every
host's decisions are judged on one clock, the database's (functions/ziri_now.sql): expiries, the
rate window, the budgets' periods and the reservation's times; a host's own clock stamps only its charges.

Connections come from a pool opened in each process on first use (never before gunicorn
forks: a connection shared by two processes would interleave their traffic). Under gevent's
patches psycopg waits on sockets the cooperative way, so a slow query or a row lock parks one
greenlet, never the worker. The database down, restarting or slow: ``reserve`` refuses with
503 ``LEDGER_UNAVAILABLE`` (retryable) before the provider is called, and ``settle`` spools
the charge on local disk (``spool.py``) to be written, once, when the database is back.

A process's reservations carry its worker id; ``lease.LeaseKeeper`` renews a lease for it.
When a process dies its lease lapses, and its reservations are settled at the reserved amount
(``reservation_expired``, reason ``worker_died``) by the next request of that key on any host,
or by the next sweep of any live process, long before their full expiry.
"""

import json
import logging
import os
import threading
from collections.abc import Sequence
from datetime import timedelta
from datetime import timezone

import psycopg

from ...errors import ApiError
from ...errors import ConfigError
from ..base import Store
from ..base import ledger_unavailable
from ..checks import IDEMPOTENCY_WINDOW_SECONDS
from ..checks import RATE_WINDOW_SECONDS
from ..checks import KeyUsage
from ..checks import run_checks
from ..money import day_of
from ..money import format_ts
from ..money import month_of
from ..money import parse_ts
from ..money import to_micros
from ..records import Reservation
from ..records import charge_record
from ..records import encode_json
from ..records import expiry_record
from ..records import reservation_record
from ..records import summary_of
from . import sql
from .archive import PostgresArchive
from .batch import Combiner
from .connection import connect
from .connection import describe
from .connection import error_text
from .lease import LeaseKeeper
from .migrate import LATEST
from .migrate import schema_version
from .pool import DatabasePool
from .spool import ChargeSpool

log = logging.getLogger("ziri_images")

# Calls of ziri_reserve that may find stale reservations to settle first (each round settles
# every one it can see; a second is needed only if more went stale in between).
_STALE_ROUNDS = 3


def _ts(moment):
    return parse_ts(moment) if isinstance(moment, str) else moment


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


class PostgresStore(PostgresArchive, Store):
    """Keep the ledger in PostgreSQL; one row lock per key makes each decision atomic across hosts."""

    def __init__(self, conninfo, clock, reservation_ttl, pool_size=4, timeout=5.0, lease_seconds=30.0,
                 spool_dir="var/spool", queue_seconds=25.0):
        super().__init__(clock, reservation_ttl)
        self.conninfo = conninfo
        self.timeout = timeout
        self.spool = ChargeSpool(spool_dir)
        self.lease = LeaseKeeper(self, lease_seconds)
        self.database = DatabasePool(conninfo, pool_size, timeout, queue_seconds, on_open=self.lease.start)
        self._windows = {}  # key_id -> (admissions, first admission) this process last saw (for the rate headers)
        self._unconfirmed = {}  # request_id -> (key_id, details): reserves whose answer was lost
        self._unconfirmed_lock = threading.Lock()
        self._reserves = Combiner(self._reserve_batch)
        self._settles = Combiner(self._settle_batch)

    def __repr__(self):
        return f"PostgresStore({describe(self.conninfo)})"

    def _pool(self):
        return self.database.pool()

    def transaction(self, wait=None):
        """Yield a cursor in one transaction; a database fault becomes 503 LEDGER_UNAVAILABLE (pool.py)."""
        return self.database.transaction(wait)

    # --- the Store interface ----------------------------------------------------------------

    def start(self):
        """Check the schema with a short-lived connection (the master must not keep one past the fork)."""
        where = describe(self.conninfo)
        try:
            with connect(self.conninfo, self.timeout) as connection:
                version = schema_version(connection)
        except psycopg.Error as error:
            # Serve anyway: requests get 503 and /ready says so until the database answers.
            log.warning("database %s: not reachable at start-up: %s", where, error_text(error))
            return f"database {where}: not reachable yet"
        if version < LATEST:
            raise ConfigError(f"database {where}: schema version {version}, this gateway needs {LATEST}: "
                              "run 'ziri-images db migrate'")
        return f"database {where}: schema version {version}"

    def reserve(self, key, micros, details):
        self.lease.ensure()
        now = self.clock()
        record = reservation_record(now, key, details, micros, now + timedelta(seconds=self.reservation_ttl),
                                    self.worker)
        state, now, usage = self._decide(key, micros, record, details.get("idempotencyKey"))
        admitted = state == "admitted"
        self._remember_window(key.id, usage.admissions, now if admitted else None)
        if not admitted:
            run_checks(key, usage, micros, now)  # raises the refusal the database decided on
            log.error("the database refused %s, which the checks admit", record["requestId"])
            raise ledger_unavailable("the database and the gateway disagree on the limits")
        return Reservation(request_id=record["requestId"], key_id=key.id, micros=micros, reserved_at=format_ts(now),
                           expires_at=(now + timedelta(seconds=self.reservation_ttl)).timestamp(), worker=self.worker)

    def _decide(self, key, micros, record, digest):
        """Call ziri_reserve (settling the key's stale reservations first when it asks); return (state, now, usage)."""
        def limit(name):
            value = key.limit(name)
            return value if value else None  # checks.py: 0 or unset is no limit

        daily, monthly = limit("daily_spend_limit"), limit("monthly_spend_limit")
        call = {
            "key": key.id, "user": key.user, "model": record.get("model"), "request_id": record.get("requestId"),
            "now": record["ts"], "expires_at": record["expiresAt"], "micros": micros, "digest": digest,
            "worker": self.worker, "record": encode_json(record),
            "rpm": limit("requests_per_minute"), "max_concurrent": limit("max_concurrent_requests"),
            "daily": to_micros(daily) if daily else None, "monthly": to_micros(monthly) if monthly else None,
        }
        for _ in range(_STALE_ROUNDS):
            try:
                row = self._reserves.submit(key.id, call)
            except BaseException as error:
                # A connection lost mid-statement, an interrupted batch (a killed greenlet): the
                # reservation may have committed with its answer lost. Release it later.
                if micros is not None and (not isinstance(error, ApiError) or getattr(error, "maybe_committed", False)):
                    with self._unconfirmed_lock:
                        self._unconfirmed[record["requestId"]] = (key.id, record)
                raise
            now = row[1].astimezone(timezone.utc)
            if row[0] != "stale":
                return row[0], now, self._usage_from(row[2:], now)
            with self.transaction() as cursor:
                self.lock_key(cursor, key.id)
                self.settle_stale(cursor, key.id, now)
        raise ledger_unavailable("stale reservations kept appearing", should_retry=True)

    def _reserve_batch(self, key_id, calls):
        return self.database.call(sql.RESERVE_MANY, {
            "batch": json.dumps(calls), "rate_window": timedelta(seconds=RATE_WINDOW_SECONDS),
            "idempotency_window": timedelta(seconds=IDEMPOTENCY_WINDOW_SECONDS)})

    def _settle_batch(self, key_id, calls):
        return [row[0] for row in self.database.call(sql.SETTLE_MANY, {"batch": json.dumps(calls)})]

    def release_unconfirmed(self):
        """Settle at zero the reservations whose reserve answered 503 but did commit; return how many."""
        with self._unconfirmed_lock:
            pending, self._unconfirmed = self._unconfirmed, {}
        released = 0
        for request_id, (key_id, record) in pending.items():
            try:
                with self.transaction() as cursor:
                    row = cursor.execute(sql.OPEN_RESERVATION, {"request_id": request_id, "key": key_id}).fetchone()
            except Exception:
                with self._unconfirmed_lock:
                    self._unconfirmed.setdefault(request_id, (key_id, record))
                raise
            if row is None:
                continue  # never committed, or settled since
            _id, micros, reserved_at, expires_at, worker = row
            reservation = Reservation(request_id=request_id, key_id=key_id, micros=micros,
                                      reserved_at=format_ts(reserved_at), expires_at=expires_at.timestamp(),
                                      worker=worker)
            # The client was refused (503 LEDGER_UNAVAILABLE, x-should-retry: true) before the provider was
            # called: nothing to pay, and its Idempotency-Key is free for the retry it was told to make.
            self.write_charge(reservation, {**summary_of(record), "status": "not_admitted", "httpStatus": 503,
                                            "imagesReturned": 0, "cost": 0.0, "shouldRetry": True}, self.clock())
            log.warning("reservation %s committed without its answer: settled at 0", request_id)
            released += 1
        return released

    def settle(self, reservation, fields):
        now = self.clock()
        try:
            return self.write_charge(reservation, fields, now)
        except ApiError:
            pass
        except Exception:
            raise
        except BaseException:
            # Interrupted mid-call (a killed greenlet): the charge may not have committed. Spooled, it
            # is written once (the unique index) instead of its reservation being held until it expires.
            try:
                self._spool_charge(now, reservation, fields)
            except ApiError:
                pass
            raise
        return self._spool_charge(now, reservation, fields)

    def _spool_charge(self, now, reservation, fields):
        """Keep the charge on disk, to be written once the database answers; return its record."""
        # The provider has answered: the charge must not be lost.
        try:
            self.spool.put({"settledAt": format_ts(now), "reservation": vars(reservation), "fields": fields})
        except OSError as error:
            # Neither the database nor the disk: the open reservation will be charged at its amount.
            log.critical("charge of %s lost to the spool %s: %s", reservation.request_id, self.spool.directory,
                         error.strerror or error)
            raise ledger_unavailable("neither the database nor the charge spool is writable") from None
        log.warning("database unavailable: charge of %s spooled in %s", reservation.request_id, self.spool.directory)
        return charge_record(now, reservation, fields, after_expiry=False)

    def write_charge(self, reservation, fields, now):
        """Write the charge for ``reservation`` unless it is already stored; return the record.

        One statement, one round trip (with the settles of the same key queued meanwhile in this
        process: batch.py): ``ziri_settle_charge`` (functions/) releases the open
        reservation and writes the charge, the record for an open reservation or, when an expiry
        settled it first, the one that replaces the expiry's amount.
        """
        open_record = charge_record(now, reservation, fields, after_expiry=False)
        late_record = charge_record(now, reservation, fields, after_expiry=True)
        images = open_record.get("imagesReturned")
        was_open = self._settles.submit(reservation.key_id, {
            "request_id": reservation.request_id, "key": reservation.key_id, "user": open_record.get("user"),
            "model": open_record.get("model"), "reserved_at": format_ts(_ts(reservation.reserved_at)),
            "ts": format_ts(now), "micros": to_micros(open_record.get("cost") or 0),
            "images": images if type(images) is int else None,
            "record": encode_json(open_record), "late_record": encode_json(late_record),
            "day": day_of(reservation.reserved_at), "month": month_of(reservation.reserved_at),
        })
        return open_record if was_open else late_record

    def key_usage(self, key):
        # A crashed worker's reservation is spent, not reserved, as soon as anyone looks.
        record = {"ts": format_ts(self.clock()), "expiresAt": format_ts(self.clock())}
        _state, _now, usage = self._decide(key, None, record, None)
        self._remember_window(key.id, usage.admissions, None)
        return usage

    def _remember_window(self, key_id, window, admitted_at):
        count, first = len(window), window.first if len(window) else None
        if admitted_at is not None:
            count, first = count + 1, admitted_at.timestamp() if first is None else first
        self._windows[key_id] = (count, first)

    def rate_summary(self, key_id):
        # What this process saw at its last decision for the key: no query on every response. Its
        # count is an upper bound once the first admission has left the window.
        count, first = self._windows.get(key_id, (0, None))
        if not count or first is None:
            return 0, None
        return count, max(first, self.clock().timestamp() - RATE_WINDOW_SECONDS)

    def readiness(self):
        # The local half: where charges wait while the database is away. ops/readiness.py's database
        # check asks ping_database for the other half.
        try:
            os.makedirs(self.spool.directory, exist_ok=True)
            if not os.access(self.spool.directory, os.W_OK):
                raise PermissionError(self.spool.directory)
        except OSError as error:
            log.warning("readiness: spool %s is not writable: %s", self.spool.directory, error)
            return False, "the charge spool is not writable"
        return True, None

    def ping_database(self):
        """Return (ok, reason): does the database answer, with the schema this gateway needs?"""
        try:
            # A health check must answer before a load balancer's own timeout gives up on it.
            with self.transaction(wait=min(2.0, self.timeout)) as cursor:
                version = schema_version(cursor.connection)
        except ApiError:
            return False, "the database is unavailable"
        if version < LATEST:
            return False, "the database schema is not migrated"
        return True, None

    def refusal_record(self):
        from .refusals import PostgresRefusals  # the refusal_counts table

        return PostgresRefusals(self)

    def close(self):
        self.lease.stopping()  # first: the pass it cuts short must not report a fault at exit
        self.database.closed = True  # the housekeeping thread's next call ends it
        self.lease.stop()
        self.database.close()

    # --- steps --------------------------------------------------------------------------------

    def lock_key(self, cursor, key_id):
        """Hold ``key_id``'s row lock for the rest of the transaction (creating the row on first use)."""
        # The insert finds the row already there but for a key's first request (and takes no lock then).
        cursor.execute(sql.CREATE_KEY, {"key": key_id})
        cursor.execute(sql.LOCK_KEY, {"key": key_id}).fetchone()  # fetched: waits until the lock is held

    def settle_stale(self, cursor, key_id, now):
        """Settle ``key_id``'s stale reservations at their reserved amount (the caller holds the key's lock)."""
        stale = cursor.execute(sql.TAKE_STALE, {"key": key_id, "now": now}).fetchall()
        for request_id, micros, reserved_at, expires_at, worker in stale:
            reservation = Reservation(request_id=request_id, key_id=key_id, micros=micros,
                                      reserved_at=format_ts(reserved_at), expires_at=expires_at.timestamp(),
                                      worker=worker)
            reason = "expired" if expires_at <= now else "worker_died"
            self._write_settlement(cursor, expiry_record(now, reservation, reason), reservation, micros, micros)
            log.warning("reservation %s of %s settled at its reserved amount: %s", request_id, worker, reason)

    def _write_settlement(self, cursor, record, reservation, micros, delta):
        """Queue an expiry record and its ``delta`` to the spent totals (nothing if already stored)."""
        images = record.get("imagesReturned")
        cursor.execute(sql.WRITE_SETTLEMENT, {
            "ts": _ts(record["ts"]), "type": record["type"], "request_id": reservation.request_id,
            "key": reservation.key_id, "user": record.get("user"), "model": record.get("model"),
            "reserved_at": _ts(reservation.reserved_at), "micros": micros,
            "images": images if type(images) is int else None, "record": encode_json(record), "delta": delta,
            "day": day_of(reservation.reserved_at), "month": month_of(reservation.reserved_at),
        })

    def _usage_from(self, row, now):
        spent_day, spent_month, requests_day, requests_month, held_day, held_month, in_flight = row[:7]
        window_count, window_first, same, is_open = row[7:11]
        return KeyUsage(
            now=now, spent={"daily": spent_day, "monthly": spent_month},
            reserved={"daily": held_day, "monthly": held_month},
            requests={"daily": requests_day, "monthly": requests_month}, in_flight=in_flight,
            admissions=AdmissionWindow(window_count, window_first),
            idempotent_match=None if same is None else (same, bool(is_open)),
        )
