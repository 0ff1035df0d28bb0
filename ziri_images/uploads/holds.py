"""The edit bodies one worker process holds: bounded in all, and per key by the key's own limits.

An edit's multipart body is held in memory from the moment its first byte is read until its
answer has been sent (its uploads go upstream as they came). ``UploadHolds.hold`` admits each
body before any of it is read, at its declared size:

1. the key's limits, with the bodies this worker holds for the key counted in: one more request
   must fit its ``max_concurrent_requests`` and ``requests_per_minute`` (and its budgets must not
   be spent already), else the refusal ``reserve`` would give once the body was read
   (``QUEUE_FULL``, ``RATE_LIMIT_EXCEEDED``, ``SPEND_LIMIT_EXCEEDED``);
2. the worker's budget (``ZIRI_EDIT_WORKER_MAX_BYTES``): every held body's size must fit it,
   and one key holds at most half of it (or one body of any size), else 503
   ``UPLOAD_CAPACITY_FULL``, safe to retry: nothing was reserved or sent.

Money is still reserved only after pricing (``Limiter.reserve``, which marks the body admitted:
from then on the store counts it in the key's rate window and in-flight requests).
"""

import threading
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace

from ..errors import ApiError
from ..ledger.checks import check_concurrency
from ..ledger.checks import check_daily_budget
from ..ledger.checks import check_monthly_budget
from ..ledger.checks import check_rate
from ..ledger.checks import check_team_daily_budget
from ..ledger.checks import check_team_monthly_budget

# Run before any body is read; the budgets with nothing requested refuse only a key (or its team) already
# past them. A team's rate and concurrency are left to the reservation: this worker's held bodies are counted
# per key, not per team.
KEY_CHECKS = (check_rate, check_concurrency, check_daily_budget, check_monthly_budget, check_team_daily_budget,
              check_team_monthly_budget)


class AdmissionWindow:
    """The rate window as ``check_rate`` reads it (``len`` and ``[0]``), counting bodies not yet admitted."""

    def __init__(self, admissions, pending, now_epoch):
        self.count = len(admissions) + pending
        try:
            self.first = admissions[0]
        except IndexError:  # none admitted (or the window was trimmed meanwhile): the pending ones are now
            self.first = now_epoch

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if index != 0:
            raise IndexError(index)
        return self.first


@dataclass
class Hold:
    """One body held for one request: its key, its declared size, and whether it was admitted (reserved)."""

    holds: object = field(repr=False)  # the UploadHolds it is counted in
    request_id: str
    key_id: str
    size: int
    admitted: bool = False

    def release(self):
        """Give the body's bytes back to the worker's budget (once its answer has been sent)."""
        self.holds.release(self.request_id)


class UploadHolds:
    """Count the edit bodies this process holds, and refuse one that would break a bound."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._holds = {}  # request id -> Hold
        self._lock = threading.Lock()  # gevent's under gunicorn.conf.py's patches; never held during I/O

    @property
    def held_bytes(self):
        return sum(hold.size for hold in self._holds.values())

    def hold(self, key, size, request_id, usage, now):
        """Hold ``size`` bytes for ``key``'s request; return the Hold, or raise the client's ApiError.

        ``usage`` is the key's ``KeyUsage`` from the store (None when the key has no limits).
        """
        with self._lock:
            mine = [hold for hold in self._holds.values() if hold.key_id == key.id]
            if usage is not None:
                self._check_key(key, usage, mine, now)
            self._check_budget(size, sum(hold.size for hold in mine))
            hold = self._holds[request_id] = Hold(self, request_id, key.id, size)
            return hold

    def _check_key(self, key, usage, mine, now):
        pending = sum(not hold.admitted for hold in mine)
        # The store sees admitted requests; the bodies held here and not yet admitted are added, and
        # every body held here counts as in flight until its answer is sent.
        seen = replace(usage, admissions=AdmissionWindow(usage.admissions, pending, now.timestamp()),
                       in_flight=max(usage.in_flight + pending, len(mine)))
        for check in KEY_CHECKS:
            check(key, seen, 0, now)

    def _check_budget(self, size, key_bytes):
        held = self.held_bytes
        if held + size > self.max_bytes:
            raise capacity_full("This server holds as many uploads as it may; retry shortly.", "server")
        if key_bytes and key_bytes + size > self.max_bytes // 2:
            raise capacity_full("This key's uploads take half of this server's room for uploads; retry once "
                                "one of them is answered.", "key")

    def admitted(self, request_id):
        """Mark the request's body admitted: the store now counts the request in the key's limits."""
        # On every reservation's path: one dict read and one flag, atomic without the lock.
        hold = self._holds.get(request_id)
        if hold is not None:
            hold.admitted = True

    def release(self, request_id):
        with self._lock:
            self._holds.pop(request_id, None)


def capacity_full(message, reason):
    """Return the 503 for a body that does not fit: ``reason`` says whose share is full ("server" or "key")."""
    return ApiError(503, "UPLOAD_CAPACITY_FULL", message, headers={"Retry-After": "1"}, should_retry=True,
                    reason=reason)

