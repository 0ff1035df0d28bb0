"""The PostgreSQL store's connections: one bounded pool per process, and "busy" told from "down".

A pool is opened in each process on first use (never before gunicorn forks: a connection
shared by two processes would interleave their traffic). Under gevent's patches psycopg waits
on sockets the cooperative way, so a slow query or a row lock parks one greenlet, never the worker.

Waiting for a pooled connection is not a fault. While the database answers, a request queues
for a connection up to ``queue_seconds`` (1,024 requests held on a slow provider settle in a
burst, far more than a pool's few connections at once). Once a statement or a connection
fails, and until one succeeds again (or before any has), the wait is bounded by ``timeout``
instead, so new requests are refused quickly (503 ``LEDGER_UNAVAILABLE``) while the database
is away. Statements and row locks are bounded by ``timeout`` either way.
"""

import logging
import os
import threading
import time
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout

from ..base import ledger_unavailable
from .connection import describe
from .connection import error_text
from .sql import SESSION_TIMEOUTS

log = logging.getLogger("ziri_images")

# What a database fault looks like from here: the server gone or restarting, a statement or lock
# past its timeout, no pooled connection free in time, a schema that is not there.
DATABASE_FAULTS = (psycopg.Error, PoolTimeout)


class DatabasePool:
    """Lend connections of this process's pool; turn a database fault into 503 LEDGER_UNAVAILABLE."""

    def __init__(self, conninfo, pool_size, timeout, queue_seconds, on_open=None):
        self.conninfo = conninfo
        self.pool_size = pool_size
        self.timeout = timeout
        self.queue_seconds = max(queue_seconds, timeout)
        self.on_open = on_open  # called once per process, when its pool opens
        self._pool_of = None  # (pid, ConnectionPool)
        self._opening = threading.Lock()
        self.closed = False
        # monotonic times of the last statement that succeeded and of the last fault (None: never)
        self._answered = None
        self._failed = None

    def pool(self):
        """Return this process's pool, opening it on first use after a fork."""
        if self.closed:
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
                self._answered = self._failed = None
                if self.on_open is not None:
                    self.on_open()
        return self._pool_of[1]

    def _configure(self, connection):
        """Set each new connection's timeouts (SET, not startup options: connection poolers refuse those)."""
        millis = round(self.timeout * 1000)
        # A statement or row lock waited on longer than this is cancelled: the request is refused
        # (503) instead of holding its greenlet and its connection indefinitely.
        connection.execute(SESSION_TIMEOUTS.format(millis=millis, idle_millis=millis * 4))

    def answering(self):
        """Return True if the last thing the database did was answer (a busy pool is then only busy)."""
        answered, failed = self._answered, self._failed
        return answered is not None and (failed is None or answered > failed)

    def _getconn(self, pool, wait):
        """Return a pooled connection, queueing up to the deadline while the database answers."""
        deadline = time.monotonic() + (wait if wait is not None else self.queue_seconds)
        while True:
            left = deadline - time.monotonic()
            try:
                # Slices of ``timeout``: a fault seen meanwhile ends the wait at the slice's end.
                return pool.getconn(timeout=max(0.001, min(left, self.timeout)))
            except PoolTimeout:
                if wait is not None or not self.answering() or time.monotonic() >= deadline:
                    raise

    @contextmanager
    def connection(self, wait=None):
        """Yield a pooled connection (autocommit); a database fault becomes 503 LEDGER_UNAVAILABLE.

        ``wait`` bounds the wait for a connection (default: queue while the database answers).
        """
        try:
            pool = self.pool()
            connection = self._getconn(pool, wait)
            try:
                with connection:  # psycopg's connection block: a failed transaction is rolled back
                    yield connection
            finally:
                pool.putconn(connection)
            self._answered = time.monotonic()
        except DATABASE_FAULTS as error:
            if self.closed:
                # Closed under a background pass (the process is ending): no database fault to report.
                raise ledger_unavailable("the store is closed") from None
            if not isinstance(error, PoolTimeout):
                self._failed = time.monotonic()
            log.error("database %s: %s: %s", describe(self.conninfo), type(error).__name__, error_text(error))
            unavailable = ledger_unavailable("the database is unavailable", should_retry=True)
            # A connection lost mid-statement: the statement may have committed, its answer lost.
            unavailable.maybe_committed = isinstance(error, psycopg.OperationalError) and not isinstance(
                error, (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable))
            raise unavailable from None

    @contextmanager
    def transaction(self, wait=None):
        """Yield a cursor in one transaction (see ``connection``)."""
        with self.connection(wait) as connection, connection.transaction(), connection.cursor() as cursor:
            yield cursor

    def call(self, sql, params):
        """Run one statement, its own transaction (one round trip, prepared); return its rows."""
        with self.connection() as connection:
            return connection.execute(sql, params, prepare=True).fetchall()

    def close(self):
        self.closed = True
        if self._pool_of is not None and self._pool_of[0] == os.getpid():
            self._pool_of[1].close()
        self._pool_of = None
