"""A process's lease in the database, and the housekeeping that runs beside it.

Every process that reserves renews a row in ``worker_leases`` (on the database's clock) every
third of ``lease_seconds`` from a background thread (a greenlet under gevent). A process that
dies stops renewing; once its lease lapses, its open reservations count as its worker's death
and are settled at the reserved amount by the next request of their key, or by the sweep
below, whichever comes first. Worst case, a dead process's reservations are settled
``lease_seconds`` + one renewal interval after its last renewal (40 s with the default 30 s),
instead of the reservation's full expiry (4 min 5 s by default).

Each pass of the thread also writes the spooled charges (``spool.py``) once the database
answers again, settles at zero the reservations whose reserve committed but whose answer was
lost (the client got 503 before the provider was called), and sweeps the keys that hold
reservations of dead processes.
"""

import logging
import threading
import time

from ..money import parse_ts
from ..records import Reservation
from . import sql
from .connection import error_text

log = logging.getLogger("ziri_images")


class LeaseKeeper:
    """Renew this process's lease; flush the charge spool; sweep dead processes' reservations."""

    def __init__(self, store, lease_seconds):
        self.store = store
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self._renewed = None  # (worker, monotonic time) of the last renewal that committed
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        """Start the background pass in this process (after a fork: threads do not survive one)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ziri-lease", daemon=True)
        self._thread.start()

    def stopping(self):
        """Say the process is closing the store: a pass cut short from now on is no fault."""
        self._stop.set()

    def stop(self):
        """End the background pass, waiting for one under way (bounded by the store's timeout)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.store.timeout + 1)

    def _fresh(self):
        renewed = self._renewed
        return renewed is not None and renewed[0] == self.store.worker and time.monotonic() - renewed[1] < self.interval

    def ensure(self):
        """Renew the lease first unless a recent renewal stands (called before each reservation).

        A reservation must never be committed under a lapsed (or not yet written) lease, or any
        other process would take it for a dead one's at once. The renewal is a transaction of
        its own, by one thread at a time: inside the reservation's it would hold the lease's row
        while waiting for the key's, and queue every request of the process behind it.
        """
        if self._fresh():
            return
        with self._renewing:
            if not self._fresh():
                self.renew()

    def renew(self):
        """Renew the lease now (raise the store's 503 if the database is away)."""
        worker = self.store.worker
        # Counted from before the statement: the lease runs from the database's clock at the statement.
        started = time.monotonic()
        with self.store.transaction() as cursor:
            cursor.execute(sql.RENEW_LEASE, {"worker": worker, "seconds": self.lease_seconds})
            cursor.execute(sql.FORGET_LEASES)
        self._renewed = (worker, started)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as error:  # the database is away: try again next pass
                if self._stop.is_set():
                    return  # the store closed under this pass, on purpose
                log.warning("database housekeeping: %s: %s", type(error).__name__, error_text(error))
            self._stop.wait(self.interval)

    def run_once(self):
        """Renew the lease, write spooled charges, settle dead processes' reservations; return charges written."""
        self.renew()
        written = self.store.spool.flush(self._write_spooled)
        if written:
            log.warning("database back: %d spooled charge(s) written", written)
        self.store.release_unconfirmed()
        self.sweep()
        return written

    def _write_spooled(self, entry):
        reservation = Reservation(**entry["reservation"])
        self.store.write_charge(reservation, entry["fields"], parse_ts(entry["settledAt"]))

    def sweep(self):
        """Settle the reservations of processes whose lease has lapsed, key by key, under each key's lock."""
        with self.store.transaction() as cursor:
            keys = [row[0] for row in cursor.execute(sql.KEYS_WITH_DEAD_WORKERS).fetchall()]
        for key_id in keys:
            with self.store.transaction() as cursor:
                self.store.lock_key(cursor, key_id)
                # The database's clock, not this host's: a host ahead would expire live reservations.
                now = cursor.execute(sql.DATABASE_NOW).fetchone()[0]
                self.store.settle_stale(cursor, key_id, now)
