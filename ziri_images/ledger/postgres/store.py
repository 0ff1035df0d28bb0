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

Beside this module: ``settlement.py`` closes reservations (the charge, the spool, the expiry of
stale ones, the release of unconfirmed ones), ``admission.py`` reads ``ziri_reserve``'s answer,
``archive.py`` holds the operator's export, import and report.
"""

import json
import logging
import os
import threading
from datetime import timedelta
from datetime import timezone

import psycopg

from ...errors import ApiError
from ...errors import ConfigError
from ..base import Store
from ..base import ledger_unavailable
from ..checks import IDEMPOTENCY_WINDOW_SECONDS
from ..checks import RATE_WINDOW_SECONDS
from ..checks import run_checks
from ..money import format_ts
from ..records import Reservation
from ..records import counted_end_user
from ..records import encode_json
from ..records import reservation_record
from ..records import team_of
from . import sql
from .admission import reserve_limits
from .admission import usage_from
from .alerts import PostgresAlertOutbox
from .archive import PostgresArchive
from .batch import Combiner
from .connection import connect
from .connection import describe
from .connection import error_text
from .lease import LeaseKeeper
from .migrate import LATEST
from .migrate import schema_version
from .pool import DatabasePool
from .settlement import Settlements
from .spool import ChargeSpool

log = logging.getLogger("ziri_images")

# Calls of ziri_reserve that may find stale reservations to settle first (each round settles
# every one it can see; a second is needed only if more went stale in between).
_STALE_ROUNDS = 3


class PostgresStore(PostgresArchive, Settlements, Store):
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
        self._alerts = None  # the alert outbox, made on first use

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
        end_user = counted_end_user(details.get("endUser"))
        state, now, usage = self._decide(key, micros, record, details.get("idempotencyKey"), end_user)
        admitted = state == "admitted"
        self._remember_window(key.id, usage.admissions, now if admitted else None)
        if not admitted:
            run_checks(key, usage, micros, now)  # raises the refusal the database decided on
            log.error("the database refused %s, which the checks admit", record["requestId"])
            raise ledger_unavailable("the database and the gateway disagree on the limits")
        return Reservation(request_id=record["requestId"], key_id=key.id, micros=micros, reserved_at=format_ts(now),
                           expires_at=(now + timedelta(seconds=self.reservation_ttl)).timestamp(), worker=self.worker,
                           team=team_of(key), end_user=details.get("endUser"))

    def _decide(self, key, micros, record, digest, end_user=None):
        """Call ziri_reserve (settling the stale reservations of the key and its team first when it asks).

        Return (state, now, usage). ``end_user`` is the request's as counted, or None (not known).
        """
        call = {
            "key": key.id, "user": key.user, "model": record.get("model"), "request_id": record.get("requestId"),
            "now": record["ts"], "expires_at": record["expiresAt"], "micros": micros, "digest": digest,
            "worker": self.worker, "record": encode_json(record), **reserve_limits(key, end_user),
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
                return row[0], now, usage_from(row[2:], now, call["team"] is not None, end_user)
            for stale_key in self.stale_keys(key.id, call["team"], now):
                with self.transaction() as cursor:
                    self.lock_key(cursor, stale_key)
                    self.settle_stale(cursor, stale_key, now)
        raise ledger_unavailable("stale reservations kept appearing", should_retry=True)

    def stale_keys(self, key_id, team_id, now):
        """Return the key, and the keys of ``team_id`` whose stale reservations hold the team's counters."""
        if team_id is None:
            return [key_id]
        with self.transaction() as cursor:
            others = [row[0] for row in cursor.execute(sql.TEAM_STALE_KEYS, {"team": team_id, "now": now})]
        return [key_id, *(other for other in others if other != key_id)]

    def _reserve_batch(self, key_id, calls):
        return self.database.call(sql.RESERVE_MANY, {
            "batch": json.dumps(calls), "rate_window": timedelta(seconds=RATE_WINDOW_SECONDS),
            "idempotency_window": timedelta(seconds=IDEMPOTENCY_WINDOW_SECONDS)})

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

    def alert_outbox(self):
        if self._alerts is None:
            self._alerts = PostgresAlertOutbox(self)
        return self._alerts

    def close(self):
        self.lease.stopping()  # first: the pass it cuts short must not report a fault at exit
        self.database.closed = True  # the housekeeping thread's next call ends it
        self.lease.stop()
        self.database.close()
