"""The PostgreSQL store: the ledger's records and every limit decision in one shared database.

Budgets hold across hosts and survive a wiped disk. ``reserve`` is one transaction: lock the
key's row, settle the key's stale reservations, build its ``KeyUsage``, run ``checks.CHECKS``,
insert the reservation. ``settle`` is another. No lock is held while the provider works.

Connections come from a pool opened in each process on first use (never before gunicorn
forks: a connection shared by two processes would interleave their traffic). Under gevent's
patches psycopg waits on sockets the cooperative way, so a slow query or a row lock parks one
greenlet, never the worker. The database down, restarting or slow: ``reserve`` refuses with
503 ``LEDGER_UNAVAILABLE`` (retryable) before the provider is called, and ``settle`` spools
the charge on local disk (``spool.py``) to be written, once, when the database is back.

A process's reservations carry its worker id; ``pglease.LeaseKeeper`` renews a lease for it.
When a process dies its lease lapses, and its reservations are settled at the reserved amount
(``reservation_expired``, reason ``worker_died``) by the next request of that key on any host,
or by the next sweep of any live process, long before their full expiry.
"""

import logging
import os
import threading
from contextlib import contextmanager
from contextlib import nullcontext
from datetime import timedelta
from datetime import timezone

import psycopg
from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout

from ..checks import IDEMPOTENCY_WINDOW_SECONDS
from ..checks import RATE_WINDOW_SECONDS
from ..checks import KeyUsage
from ..checks import run_checks
from ..errors import ApiError
from ..errors import ConfigError
from ..records import Reservation
from ..records import charge_record
from ..records import day_of
from ..records import encode_json
from ..records import expiry_record
from ..records import format_ts
from ..records import month_of
from ..records import parse_ts
from ..records import reservation_record
from ..records import to_micros
from . import pgsql
from .base import Store
from .base import ledger_unavailable
from .pglease import LeaseKeeper
from .pgreport import PostgresReports
from .pgschema import LATEST
from .pgschema import connect
from .pgschema import describe
from .pgschema import error_text
from .pgschema import schema_version
from .spool import ChargeSpool

log = logging.getLogger("ziri_images")

# What a database fault looks like from here: the server gone or restarting, a statement or lock
# past its timeout, no pooled connection free in time, a schema that is not there.
DATABASE_FAULTS = (psycopg.Error, PoolTimeout)


def _ts(moment):
    return parse_ts(moment) if isinstance(moment, str) else moment


class PostgresStore(PostgresReports, Store):
    """Keep the ledger in PostgreSQL; one row lock per key makes each decision atomic across hosts."""

    def __init__(self, conninfo, clock, reservation_ttl, pool_size=4, timeout=5.0, lease_seconds=30.0,
                 spool_dir="var/spool"):
        super().__init__(clock, reservation_ttl)
        self.conninfo = conninfo
        self.pool_size = pool_size
        self.timeout = timeout
        self.spool = ChargeSpool(spool_dir)
        self.lease = LeaseKeeper(self, lease_seconds)
        self._pool_of = None  # (pid, ConnectionPool)
        self._opening = threading.Lock()
        self._closed = False
        self._windows = {}  # key_id -> admission times this process last saw (for the rate headers)

    def __repr__(self):
        return f"PostgresStore({describe(self.conninfo)})"

    # --- connections ----------------------------------------------------------------------

    def _pool(self):
        """Return this process's pool, opening it (and the lease) on first use after a fork."""
        if self._closed:
            raise psycopg.OperationalError("the store is closed")
        pid = os.getpid()
        opened = self._pool_of
        if opened is not None and opened[0] == pid:
            return opened[1]
        with self._opening:  # the threads of a new process race here: one pool per process
            if self._pool_of is None or self._pool_of[0] != pid:
                pool = ConnectionPool(
                    self.conninfo, min_size=1, max_size=self.pool_size, timeout=self.timeout, open=False,
                    name=f"ziri-{pid}", reconnect_timeout=max(60.0, self.timeout), configure=self._configure,
                    kwargs={"autocommit": True, "connect_timeout": max(1, round(self.timeout))})
                pool.open(wait=False)
                self._pool_of = (pid, pool)
                self.lease.start()
        return self._pool_of[1]

    def _configure(self, connection):
        """Set each new connection's timeouts (SET, not startup options: connection poolers refuse those)."""
        millis = round(self.timeout * 1000)
        # A statement or row lock waited on longer than this is cancelled: the request is refused
        # (503) instead of holding its greenlet and its connection indefinitely.
        connection.execute(f"SET statement_timeout = {millis}")
        connection.execute(f"SET lock_timeout = {millis}")
        connection.execute(f"SET idle_in_transaction_session_timeout = {millis * 4}")

    @contextmanager
    def transaction(self, wait=None, pipelined=False):
        """Yield a cursor in one transaction; a database fault becomes 503 LEDGER_UNAVAILABLE.

        ``wait`` bounds the wait for a pooled connection (default: the database timeout).
        ``pipelined``: statements are sent without waiting for each other's answers, until one
        is fetched (or the commit), so a few statements cost one round trip.
        """
        try:
            with (self._pool().connection(timeout=wait) as connection,
                  connection.pipeline() if pipelined else nullcontext(), connection.transaction(),
                  connection.cursor() as cursor):
                yield cursor
        except DATABASE_FAULTS as error:
            log.error("database %s: %s: %s", describe(self.conninfo), type(error).__name__, error_text(error))
            raise ledger_unavailable("the database is unavailable", should_retry=True) from None

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
        refusal = None
        self.lease.ensure()
        # Two round trips: the lock, stale reservations and usage (one function call); then the
        # expiry records, the reservation and the commit, sent together.
        with self.transaction(pipelined=True) as cursor:
            digest = details.get("idempotencyKey")
            now, usage = self._lock_and_usage(cursor, key.id, digest)
            try:
                run_checks(key, usage, micros, now)
            except ApiError as error:
                refusal = error  # raised after the commit: the stale settlements above are kept
            else:
                record = reservation_record(now, key, details, micros, now + timedelta(seconds=self.reservation_ttl),
                                            self.worker)
                cursor.execute(pgsql.INSERT_RESERVATION, {
                    "ts": now, "request_id": record["requestId"], "key": key.id, "user": key.user,
                    "model": record.get("model"), "micros": micros, "digest": digest, "record": encode_json(record),
                    "expires_at": parse_ts(record["expiresAt"]), "worker": self.worker,
                    "day": day_of(record["ts"]), "month": month_of(record["ts"]),
                })
        self._windows[key.id] = list(usage.admissions) + ([] if refusal else [now.timestamp()])
        if refusal is not None:
            raise refusal
        return Reservation(request_id=record["requestId"], key_id=key.id, micros=micros, reserved_at=record["ts"],
                           expires_at=parse_ts(record["expiresAt"]).timestamp(), worker=self.worker)

    def settle(self, reservation, fields):
        now = self.clock()
        try:
            return self.write_charge(reservation, fields, now)
        except ApiError:
            pass
        # The provider has answered: the charge must not be lost. Keep it on disk, write it later.
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

        One round trip, no key lock: ``ziri_settle_charge`` (pgschema.py) releases the open
        reservation and writes the charge, the record for an open reservation or, when an expiry
        settled it first, the one that replaces the expiry's amount. A reserve reads its usage
        in one statement (one snapshot), so it sees this whole transaction or none of it.
        """
        open_record = charge_record(now, reservation, fields, after_expiry=False)
        late_record = charge_record(now, reservation, fields, after_expiry=True)
        images = open_record.get("imagesReturned")
        with self.transaction(pipelined=True) as cursor:
            was_open = cursor.execute(pgsql.SETTLE_CHARGE, {
                "request_id": reservation.request_id, "key": reservation.key_id, "user": open_record.get("user"),
                "model": open_record.get("model"), "reserved_at": _ts(reservation.reserved_at), "ts": now,
                "micros": to_micros(open_record.get("cost") or 0), "images": images if type(images) is int else None,
                "record": encode_json(open_record), "late_record": encode_json(late_record),
                "day": day_of(reservation.reserved_at), "month": month_of(reservation.reserved_at),
            }).fetchone()[0]
        return open_record if was_open else late_record

    def key_usage(self, key):
        with self.transaction(pipelined=True) as cursor:
            # A crashed worker's reservation is spent, not reserved, as soon as anyone looks.
            _now, usage = self._lock_and_usage(cursor, key.id, None)
        self._windows[key.id] = list(usage.admissions)
        return usage

    def rate_window(self, key_id):
        # What this process saw at its last decision for the key: no query on every response.
        start = self.clock().timestamp() - RATE_WINDOW_SECONDS
        return [moment for moment in self._windows.get(key_id, ()) if moment > start]

    def readiness(self):
        # The local half: where charges wait while the database is away. readiness.py's database
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

    def close(self):
        self._closed = True
        self.lease.stop()
        if self._pool_of is not None and self._pool_of[0] == os.getpid():
            self._pool_of[1].close()
        self._pool_of = None

    # --- steps --------------------------------------------------------------------------------

    def lock_key(self, cursor, key_id):
        """Hold ``key_id``'s row lock for the rest of the transaction (creating the row on first use)."""
        # The insert finds the row already there but for a key's first request (and takes no lock then).
        cursor.execute(pgsql.CREATE_KEY, {"key": key_id})
        cursor.execute(pgsql.LOCK_KEY, {"key": key_id}).fetchone()  # fetched: waits until the lock is held

    def _lock_and_usage(self, cursor, key_id, digest):
        """Lock ``key_id``'s row, settle its stale reservations; return (now, its KeyUsage) in one round trip.

        ``now`` is the clock read before the lock, moved forward past the key's latest
        reservation if another request took the lock in between (a key's records stay in time order).
        """
        row = cursor.execute(pgsql.RESERVE_BEGIN, {
            "key": key_id, "now": self.clock(), "digest": digest,
            "rate_window": timedelta(seconds=RATE_WINDOW_SECONDS),
            "idempotency_window": timedelta(seconds=IDEMPOTENCY_WINDOW_SECONDS),
        }).fetchone()
        now = row[0].astimezone(timezone.utc)
        if row[11] is not None:  # stale reservations, already out of the open set: write their expiries
            self._expire(cursor, key_id, zip(*row[11:16]), now)
        return now, self._usage_from(row[1:11], now)

    def settle_stale(self, cursor, key_id, now):
        """Settle ``key_id``'s stale reservations at their reserved amount (the caller holds the key's lock)."""
        self._expire(cursor, key_id, cursor.execute(pgsql.TAKE_STALE, {"key": key_id, "now": now}).fetchall(), now)

    def _expire(self, cursor, key_id, stale, now):
        for request_id, micros, reserved_at, expires_at, worker in stale:
            reservation = Reservation(request_id=request_id, key_id=key_id, micros=micros,
                                      reserved_at=format_ts(reserved_at), expires_at=expires_at.timestamp(),
                                      worker=worker)
            reason = "expired" if expires_at <= now else "worker_died"
            self._write_settlement(cursor, expiry_record(now, reservation, reason), reservation, micros, micros)
            log.warning("reservation %s of %s settled at its reserved amount: %s", request_id, worker, reason)

    def _write_settlement(self, cursor, record, reservation, micros, delta):
        """Queue a charge or expiry record and its ``delta`` to the spent totals (nothing if already stored)."""
        images = record.get("imagesReturned")
        cursor.execute(pgsql.WRITE_SETTLEMENT, {
            "ts": _ts(record["ts"]), "type": record["type"], "request_id": reservation.request_id,
            "key": reservation.key_id, "user": record.get("user"), "model": record.get("model"),
            "reserved_at": _ts(reservation.reserved_at), "micros": micros,
            "images": images if type(images) is int else None, "record": encode_json(record), "delta": delta,
            "day": day_of(reservation.reserved_at), "month": month_of(reservation.reserved_at),
        })

    def _usage_from(self, row, now):
        spent_day, spent_month, requests_day, requests_month, held_day, held_month, in_flight, window = row[:8]
        same, is_open = row[8:]
        return KeyUsage(
            now=now, spent={"daily": spent_day, "monthly": spent_month},
            reserved={"daily": held_day, "monthly": held_month},
            requests={"daily": requests_day, "monthly": requests_month}, in_flight=in_flight,
            admissions=window, idempotent_match=None if same is None else (same, bool(is_open)),
        )
