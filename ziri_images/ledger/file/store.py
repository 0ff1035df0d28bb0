"""The file store: the JSONL ledger on local disk, shared by every worker on one host.

The ledger is the single source of truth. Every process keeps a ``UsageState`` derived from
it (replayed once at start-up, then followed from its last offset), and every decision is
made inside a ledger transaction (an exclusive ``flock``): catch up with what other workers
appended, decide, append the reservation. The decision and the record are therefore atomic
across all workers and threads, and the work per request depends on recent traffic, never on
the ledger's size. The one flock covers every key and team: a request's key, team and end-user
limits are decided together, atomically, with no lock order to keep. No lock is held while the
provider is called: the reservation is settled in a second transaction afterwards. This module
owns that request path and the checkpoint cadence; stale reservations are found by
``stale.py``, the export, import and report are ``archive.py``'s, the ``/ready`` check
``readiness.py``'s, group commit ``group_commit.py``'s.
"""

import logging
from bisect import bisect_right
from datetime import timedelta

from ...errors import ApiError
from ..base import Store
from ..checks import RATE_WINDOW_SECONDS
from ..checks import run_checks
from ..parse import parse_line
from ..parse import parse_record
from ..records import charge_record
from ..records import counted_end_user
from ..records import reservation_record
from ..records import team_of
from ..usage import UsageState
from . import checkpoint
from .alerts import FileAlertOutbox
from .alerts import record_reached
from .archive import FileArchive
from .group_commit import GroupCommit
from .jsonl import off_loop
from .readiness import ledger_readiness
from .refusals import RefusalFile
from .scan import replay_prefilter
from .stale import WorkerLiveness
from .stale import stale_expiries

log = logging.getLogger("ziri_images")

# A running gateway checkpoints its state every this many ledger bytes (about 80,000 records).
CHECKPOINT_EVERY_BYTES = 32 * 1024 * 1024


class FileStore(Store, FileArchive):
    """Keep the records in one ``jsonl.Ledger`` file; decide under its flock."""

    def __init__(self, ledger, clock, reservation_ttl):
        super().__init__(clock, reservation_ttl)
        self.ledger = ledger
        self.state = UsageState()
        self._liveness = WorkerLiveness(self._host)
        self._checkpointed = -1  # the ledger offset of this process's last checkpoint
        self._due = None  # a checkpoint's bytes, taken by the first charge to finish after it was made
        # Charges that arrive while one is syncing are written and synced together, in one transaction.
        self._charges = GroupCommit(self._settle_together)
        self._written = {}  # request_id -> its charge, once in the file (for a batch whose sync then fails)
        self._alerts = None  # the alert outbox, opened on first use

    def start(self):
        path = self.ledger.path
        restored = checkpoint.load(path)
        if restored is None:
            summary = f"ledger {path} replayed: {self.replay()} records"
        else:
            covered, self.state = restored.offset, restored
            count = self.replay()
            summary = f"ledger {path}: checkpoint to byte {covered} loaded, {count} records after it replayed"
            if count == 0:
                self._checkpointed = self.state.offset  # it is still current: nothing to write
        data = self._due_checkpoint(every=0)
        if data is not None:
            checkpoint.save(path, data)
        return summary

    def refusal_record(self):
        return RefusalFile.beside(self.ledger.path)

    def replay(self):
        """Bring the state up to the end of the ledger from its offset; return the number of records applied."""
        count = 0

        def advance(offset):
            self.state.offset = offset

        prefilter = replay_prefilter(self.clock())
        for line in self.ledger.scan(self.state.offset, prefilter, on_block=advance):
            record = parse_line(line)
            if record is not None:
                self.state.apply(record)
                count += 1
        # Whatever other instances appended while we scanned (an overlapping deploy).
        with self.ledger.transaction():
            count += self._catch_up()
        return count

    def _due_checkpoint(self, every=None):
        """Return a checkpoint's bytes if the ledger grew ``every`` bytes since the last; call it holding the ledger."""
        every = CHECKPOINT_EVERY_BYTES if every is None else every
        if self.state.offset - self._checkpointed < max(every, 1):
            return None
        self._checkpointed = self.state.offset
        try:
            return checkpoint.encode(self.ledger.path, self.state.snapshot())
        except OSError as error:
            log.warning("checkpoint of %s: ledger unreadable: %s", self.ledger.path, error.strerror or error)
            return None

    def _catch_up(self):
        """Apply what other workers appended since this process last looked; return how many."""
        lines, self.state.offset = self.ledger.read_from(self.state.offset)
        count = 0
        for line in lines:
            record = parse_line(line)
            if record is not None:
                self.state.apply(record)
                count += 1
        return count

    def _commit(self, transaction, records, sync=True):
        end = transaction.commit(sync=sync)
        for record in records:
            parsed = parse_record(record)
            if parsed is not None:
                self.state.apply(parsed)
        if end is not None:
            self.state.offset = end

    def _settle_stale(self, transaction, now):
        """Write expiry records for reservations past their time or whose worker died (``stale.py`` finds them)."""
        expiries = stale_expiries(self.state, now, self._worker_gone)
        for expiry in expiries:
            transaction.append(expiry)
        # The state follows once they are in the file.
        self._commit(transaction, expiries, sync=False)

    def _worker_gone(self, worker, now_epoch):
        return self._liveness.gone(worker, self.worker, now_epoch)

    def reserve(self, key, micros, details):
        with self.ledger.transaction() as transaction:
            self._catch_up()
            now = self.clock()
            self._settle_stale(transaction, now)
            usage = self.state.usage(key.id, now, details.get("idempotencyKey"), team_of(key),
                                     counted_end_user(details.get("endUser")))
            run_checks(key, usage, micros, now)
            expires_at = now + timedelta(seconds=self.reservation_ttl)
            record = reservation_record(now, key, details, micros, expires_at, self.worker)
            transaction.append(record)
            # Not fsynced here: a killed worker cannot lose it (it is in the page cache), and
            # the request's charge, synced before the response is sent, flushes it too. Only
            # an OS crash within milliseconds of the write could lose it, before any answer.
            # After a failed commit it is synced: a disk that fails only at fsync (NFS, thin
            # volumes) must refuse requests before the provider is called, not after each one.
            self._commit(transaction, [record], sync=self.ledger.failing)
        return self.state.open[record["requestId"]]

    def settle(self, reservation, fields, watches=()):
        try:
            record = self._charges.submit((reservation, fields, watches))
        except ApiError:
            # Its record is in the file, but the commit failed after the write (an fsync made once the
            # file was released, an interrupted batch): it cannot be cut back, and every worker reads
            # and counts it. The client gets the answer the record says, or the record would lie.
            record = self._written.pop(reservation.request_id, None)
            if record is None:
                raise  # not written: the reservation stays open and expires at its amount
            log.error("ledger: charge of %s is in the file but not confirmed on disk: answered as recorded",
                      reservation.request_id)
        finally:
            self._written.pop(reservation.request_id, None)
        data, self._due = self._due, None
        if data is not None:
            off_loop(checkpoint.save, self.ledger.path, data)
        return record

    def _settle_together(self, charges):
        """Write the charge records of ``charges`` ((reservation, fields, watches)) in one synced commit.

        The budget alerts the charges make reached are recorded in the outbox before the ledger
        is released (``alerts.py``), so each is recorded once across the host's workers.
        """
        with self.ledger.transaction() as transaction:
            self._catch_up()
            now = self.clock()
            results, records, watched = [], [], []
            for reservation, fields, watches in charges:
                record = charge_record(now, reservation, fields, reservation.request_id not in self.state.open)
                try:
                    transaction.append(record)
                except (TypeError, ValueError) as error:  # a field JSON cannot hold: this charge alone fails
                    results.append(error)
                    continue
                results.append(record)
                records.append(record)
                watched += [(reservation, watches)] if watches else []
            self._commit(transaction, records)
            for record in records:
                self._written[record["requestId"]] = record
            if watched:
                record_reached(self.alert_outbox(), self.state, watched, now)
            self._due = self._due_checkpoint() or self._due
        return results

    def alert_outbox(self):
        if self._alerts is None:
            self._alerts = FileAlertOutbox.beside(self.ledger.path)
        return self._alerts

    def key_usage(self, key):
        with self.ledger.transaction() as transaction:
            self._catch_up()
            now = self.clock()
            # A crashed worker's reservation is spent, not reserved, as soon as anyone looks.
            self._settle_stale(transaction, now)
            return self.state.usage(key.id, now, team_id=team_of(key))

    def rate_summary(self, key_id):
        # On every response, without the ledger lock: the window is bisected in place (admissions are
        # in time order), neither copied nor trimmed, so the cost does not grow with the requests per minute.
        window = self.state.keys.admissions.get(key_id)
        if not window:
            return 0, None
        cutoff = self.clock().timestamp() - RATE_WINDOW_SECONDS
        try:
            return _after(window, cutoff)
        except IndexError:  # trimmed by another thread meanwhile (gthread): count a copy instead
            return _after(list(window), cutoff)

    def readiness(self):
        return ledger_readiness(self.ledger.path)

    def close(self):
        self.ledger.close()


def _after(times, cutoff):
    """Return (how many of the sorted ``times`` are after ``cutoff``, the first of them or None)."""
    stale = bisect_right(times, cutoff)
    return len(times) - stale, (times[stale] if stale < len(times) else None)
