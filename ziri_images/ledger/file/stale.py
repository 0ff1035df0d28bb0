"""Stale reservations in the file store: which to settle, and whether their workers still live.

A reservation whose worker died (its pid is gone from this host) or whose time ran out is
settled by whichever worker notices first, at the reserved amount, with a visible
``reservation_expired`` record. If the original worker does settle later, its ``charge``
record replaces that conservative amount. A pid check cannot see another host's workers:
their reservations are freed only by their expiry time.

This module finds them and checks the pids; ``store.FileStore`` writes the records in its transaction.
"""

import os

from ..records import expiry_record

_LIVENESS_CACHE_SECONDS = 1.0


class WorkerLiveness:
    """Tell whether the worker that wrote a reservation is gone, checking each pid at most once a second."""

    def __init__(self, host):
        self._host = host
        self._checked = {}  # worker -> (checked_at, alive)

    def gone(self, worker, me, now_epoch):
        """Return True if ``worker`` (``host:pid:token``) is a process of this host that no longer runs.

        ``me`` is this process's own worker id (never gone).
        """
        host, _, rest = worker.partition(":")
        pid_text, _, _token = rest.partition(":")
        if host != self._host or not pid_text.isdigit():
            return False  # another machine's worker: only its expiry time can free it
        if worker == me:
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            return True  # an earlier process that had this pid
        checked_at, alive = self._checked.get(worker, (0.0, True))
        if now_epoch - checked_at > _LIVENESS_CACHE_SECONDS:
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
            except OverflowError:  # a pid no process can have
                alive = False
            self._checked[worker] = (now_epoch, alive)
        return not alive


def stale_expiries(state, now, worker_gone):
    """Return the expiry records for the reservations of ``state`` past their time or whose worker died.

    ``worker_gone(worker, now_epoch)`` says whether a worker died. The work is the overdue
    reservations (from the deadline index) and one liveness check per worker holding any, never
    a walk of every open reservation.
    """
    now_epoch = now.timestamp()
    stale = {reservation.request_id: (reservation, "expired") for reservation in state.overdue(now_epoch)}
    for worker, held in state.open_by_worker.items():
        if worker_gone(worker, now_epoch):
            for request_id, reservation in held.items():
                stale.setdefault(request_id, (reservation, "worker_died"))
    return [expiry_record(now, reservation, reason) for reservation, reason in stale.values()]
