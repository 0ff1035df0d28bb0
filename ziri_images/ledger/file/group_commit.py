"""Group commit: the requests that arrive while one commit is syncing share the next one.

This module owns only the batching (who leads, who waits, who gets which result or error); the
file store's ``settle`` hands it the commit to run, one ``jsonl.Ledger`` transaction and one
fsync per batch.
"""

import threading

from ..base import ledger_unavailable


class GroupCommit:
    """Run ``commit_all(items)`` once for every item submitted while an earlier batch was committing.

    ``commit_all`` returns one result per item, or an exception for an item that alone failed.

    The first caller to find the batch lock free becomes the leader: it takes every item queued
    so far and commits them together (one transaction, one fsync); the callers that queued
    meanwhile wait on the lock and return as soon as their batch is done. Each caller returns
    only after the batch holding its item committed, so the durability promise is the one of a
    single commit, and a failed commit raises its error in every caller of that batch.
    """

    def __init__(self, commit_all):
        self._commit_all = commit_all  # items -> one result per item, in order
        self._queue_lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._queue = []

    def submit(self, item):
        """Return ``item``'s result once the batch holding it has committed; raise that batch's error."""
        entry = _Entry(item)
        with self._queue_lock:
            self._queue.append(entry)
        with self._batch_lock:
            if not entry.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch, entry)
        if entry.error is not None:
            raise entry.error
        return entry.result

    def _run(self, batch, leader):
        try:
            results = self._commit_all([entry.item for entry in batch])
            for entry, result in zip(batch, results, strict=True):
                # An exception as a result is that item's own failure: the rest of the batch committed.
                if isinstance(result, BaseException):
                    entry.error = result
                else:
                    entry.result = result
        except Exception as error:
            for entry in batch:
                entry.error = error
        except BaseException as error:
            # The leader was interrupted (its greenlet killed): that is its own exit, not the others'.
            # Their records may be written already, so they fail rather than write them again (the
            # file store then answers each whose charge is in the file as that charge says).
            for entry in batch:
                entry.error = error if entry is leader else ledger_unavailable("the commit was interrupted")
            raise
        finally:
            for entry in batch:
                entry.done = True


class _Entry:
    __slots__ = ("item", "result", "error", "done")

    def __init__(self, item):
        self.item = item
        self.result = self.error = None
        self.done = False
