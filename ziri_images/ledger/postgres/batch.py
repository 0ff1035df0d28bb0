"""Group commit per key: the reserves (or settles) of one key waiting in a process go in one statement.

Every decision of a key runs under that key's row lock, and a transaction holds the lock until
its commit is flushed to the WAL: one key's transactions commit one after another, so one
key's throughput is one decision per WAL flush. ``Combiner.submit`` lets the calls of a key
that arrive while that key's previous statement is running wait for it, then sends them all
together (the database decides them one by one, in arrival order, in one transaction: one
lock, one flush). A lone request runs at once, alone: nothing waits on a timer.

One batch per key at a time in a process; a batch never spans keys, so processes lock keys
in no order that could deadlock.

A call interrupted while it runs its key's batch (its greenlet killed) exits on its own account;
the batch may have committed, so the other calls of the batch are answered as when the
connection is lost mid-statement: 503 ``LEDGER_UNAVAILABLE``, ``maybe_committed``. The store
then releases their reservations and spools their charges instead of leaving them held until
they expire.
"""

import threading

from ..base import ledger_unavailable


class _Slot:
    __slots__ = ("item", "result", "error", "lead", "done")

    def __init__(self, item):
        self.item = item
        self.result = self.error = None
        self.lead = False
        self.done = threading.Event()


class Combiner:
    """Queue calls per key; run each key's queue as one batch with ``run_batch(key, items) -> results``."""

    def __init__(self, run_batch):
        self.run_batch = run_batch
        self._lock = threading.Lock()
        self._queues = {}  # key -> [_Slot], waiting for the key's running batch to end
        self._running = set()  # keys with a batch in the database

    def submit(self, key, item):
        """Return ``item``'s result from its batch, or raise the batch's error."""
        slot = _Slot(item)
        with self._lock:
            self._queues.setdefault(key, []).append(slot)
            lead = key not in self._running
            self._running.add(key)
        if not lead:
            try:
                slot.done.wait()
            except BaseException:  # interrupted while queued (a greenlet killed): never strand the queue
                self._abandon(key, slot)
                raise
            if not slot.lead:
                return self._outcome(slot)
        # This call runs the key's next batch: everything queued so far, itself included.
        with self._lock:
            batch = self._queues.pop(key)
        try:
            results = self.run_batch(key, [queued.item for queued in batch])
            for queued, result in zip(batch, results, strict=True):
                queued.result = result
        except Exception as error:  # every caller of the batch sees its fault (a 503)
            for queued in batch:
                queued.error = error
        except BaseException as error:  # interrupted: its own exit, and the others' batch may have committed
            for queued in batch:
                queued.error = error if queued is slot else _interrupted_batch()
        with self._lock:
            self._hand_over(key)
        for queued in batch:
            if queued is not slot:
                queued.lead = False
                queued.done.set()
        return self._outcome(slot)

    def _hand_over(self, key):
        """Let the first waiter run the key's next batch, or mark the key idle (the lock is held)."""
        waiting = self._queues.get(key)
        if waiting:
            waiting[0].lead = True
            waiting[0].done.set()
        else:
            self._queues.pop(key, None)
            self._running.discard(key)

    def _abandon(self, key, slot):
        with self._lock:
            waiting = self._queues.get(key, [])
            if slot in waiting:  # not sent yet: leave the queue, and pass the turn on if it was ours
                waiting.remove(slot)
                if slot.lead:
                    self._hand_over(key)

    @staticmethod
    def _outcome(slot):
        if slot.error is not None:
            raise slot.error
        return slot.result


def _interrupted_batch():
    """Return the error of a call whose batch was interrupted: maybe committed, as a lost connection (pool.py)."""
    error = ledger_unavailable("the database call was interrupted", should_retry=True)
    error.maybe_committed = True
    return error
