"""Per-key spend, rate and concurrency limits: the request path's view of the store.

``Limiter`` is what ``api.py`` calls: ``reserve`` before the provider, ``settle`` after it (each
one commit, told to its observers: ``ops/metrics.py`` registers with ``observe``),
``usage`` for ``GET /api/me/usage`` and ``rate_headers`` for every authenticated response;
``hold_upload`` before an edit's body is read (``upload_holds.py``).
The decisions are ``ledger.checks.CHECKS``; the store (``ledger.file.store.FileStore`` or the PostgreSQL
store) makes each one atomic with the record it writes. This module turns amounts into
micro-dollars and the store's ``KeyUsage`` into the documents clients see.
"""

import math
import time

from .keys.store import LIMIT_NAMES
from .ledger.checks import RATE_WINDOW_SECONDS
from .ledger.records import budget_periods
from .ledger.records import format_ts
from .ledger.records import to_amount
from .ledger.records import to_micros
from .settings import DEFAULT_EDIT_WORKER_MAX_BYTES
from .upload_holds import UploadHolds


class Limiter:
    """Reserve and settle spend for requests, enforcing each key's limits, over one store."""

    def __init__(self, store, upload_bytes=DEFAULT_EDIT_WORKER_MAX_BYTES):
        self.store = store
        self.uploads = UploadHolds(upload_bytes)
        self.observers = []

    def observe(self, observer):
        """Tell ``observer`` of every commit: ``reserved(seconds)``, ``settled(record, seconds or None if refused)``."""
        self.observers.append(observer)

    def reserve(self, key, amount, details):
        """Check the key's limits and reserve ``amount`` (dollars); return the Reservation or raise."""
        started = time.perf_counter()
        reservation = self.store.reserve(key, to_micros(amount), details)
        # An edit's body held for this request is now counted by the store (rate window, in flight).
        self.uploads.admitted(details.get("requestId"))
        seconds = time.perf_counter() - started
        for observer in self.observers:
            observer.reserved(seconds)
        return reservation

    def hold_upload(self, key, size, request_id):
        """Hold ``size`` bytes of an edit's body for ``key`` before any is read; return the Hold, or raise.

        Refused as ``reserve`` would refuse it (the key's rate, concurrency, spent budgets: read from
        the store, with the bodies this process holds for the key counted in), or when the process
        holds as many upload bytes as it may.
        """
        limited = any(key.limit(name) for name in LIMIT_NAMES)
        usage = self.store.key_usage(key) if limited else None
        return self.uploads.hold(key, size, request_id, usage, usage.now if limited else None)

    def settle(self, reservation, record):
        """Write the request's ``charge`` record (the outcome fields in ``record``), releasing its reservation."""
        started, seconds = time.perf_counter(), None
        try:
            result = self.store.settle(reservation, record)
            seconds = time.perf_counter() - started
            return result
        finally:
            for observer in self.observers:
                observer.settled(record, seconds)

    def rate_headers(self, key):
        """Return the X-RateLimit-* headers for ``key`` (none when it has no rate limit)."""
        rpm = key.limit("requests_per_minute")
        if not rpm:
            return {}
        admitted, oldest = self.store.rate_summary(key.id)
        reset = oldest + RATE_WINDOW_SECONDS if oldest is not None else self.store.clock().timestamp()
        return {
            "X-RateLimit-Limit": str(int(rpm)),
            "X-RateLimit-Remaining": str(max(0, int(rpm) - admitted)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def usage(self, key):
        """Return the key's current spend, reservations, limits and counts."""
        usage = self.store.key_usage(key)
        report = {"keyId": key.id, "user": key.user, "currency": "USD"}
        for name, period, limit_name, resets in budget_periods(usage.now):
            spent, reserved = usage.spent[name], usage.reserved[name]
            limit = key.limit(limit_name)
            report[name] = {
                "period": period,
                "spent": to_amount(spent),
                "reserved": to_amount(reserved),
                "limit": limit,
                "remaining": to_amount(max(0, to_micros(limit) - spent - reserved)) if limit else None,
                "requests": usage.requests[name],
                "resetsAt": format_ts(resets),
            }
        report["inFlight"] = usage.in_flight
        report["requestsLastMinute"] = len(usage.admissions)
        report["limits"] = {name: key.limit(name) for name in LIMIT_NAMES}
        report["expiresAt"] = key.expires_at.isoformat() if key.expires_at else None
        return report
