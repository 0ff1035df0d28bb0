"""Refusals on record: how many requests were refused, per day, key and code, kept apart from the cost ledger.

A refused request (``metrics.is_refusal``: 402, 403, 409, 429, and 503 for a full queue) costs nothing and
reaches no provider, so it never enters the ledger. Each process counts refusals in memory by
``(day, keyId, code)`` and a background thread flushes the counts every ``flush_seconds`` as
aggregated rows into the store's refusal record (``Store.refusal_record()``: ``ledger/file/refusals.py``
next to the file ledger; the PostgreSQL store's ``refusal_counts`` table), so a flood of refusals
costs one dict increment each and writes at most one row per group and interval, never one per request:

- the key is the key's id (also for a disabled or expired key), or ``-`` (an unknown, malformed or
  missing key: never the raw value);
- at most ``max_groups`` groups are held between flushes; beyond that refusals count under ``(other)``;
- admitted requests never wait for a flush (it runs in its own thread, after the answer);
- a gunicorn worker writes what it still holds as it exits (``flush_refusals``, from ``worker_exit``).

``refusal_counts(rows)`` sums the rows any refusal record returns.
"""

import logging
import os
import threading
import weakref

from flask import current_app
from flask import g

from .metrics import is_refusal

log = logging.getLogger("ziri_images")

OTHER = "(other)"
NO_KEY = "-"


class RefusalCounter:
    """Count refusals per ``(day, keyId, code)`` in memory; flush them to ``sink.add_refusals(rows)``."""

    def __init__(self, sink, clock, flush_seconds=10.0, max_groups=10_000):
        self.sink = sink
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.max_groups = max_groups
        self._counts = {}
        self._lock = threading.Lock()
        self._flusher_pid = None
        self._wake = threading.Event()

    def count(self, key_id, code):
        """Count one refusal now (O(1), no I/O)."""
        group = (self.clock().strftime("%Y-%m-%d"), key_id or NO_KEY, code)
        with self._lock:
            if group not in self._counts and len(self._counts) >= self.max_groups:
                group = (group[0], OTHER, OTHER)
            self._counts[group] = self._counts.get(group, 0) + 1
        self._ensure_flusher()

    def flush(self):
        """Write the counts held so far as one row per group; keep them for the next try if the sink fails."""
        with self._lock:
            counts, self._counts = self._counts, {}
        if not counts:
            return 0
        rows = [{"day": day, "keyId": key_id, "code": code, "count": number}
                for (day, key_id, code), number in sorted(counts.items())]
        try:
            self.sink.add_refusals(rows)
        except Exception as error:  # the store has logged the fault itself
            log.error("refusal counts not written, kept for the next flush: %s", error)
            with self._lock:
                for group, number in counts.items():
                    self._counts[group] = self._counts.get(group, 0) + number
            return 0
        return len(rows)

    def _ensure_flusher(self):
        # One thread per process, started after gunicorn's fork (a thread does not survive a fork).
        if self._flusher_pid == os.getpid():
            return
        with self._lock:
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
        # The thread holds the counter weakly: it ends with its app (or at close()).
        threading.Thread(target=_flush_forever, args=(weakref.ref(self), self.flush_seconds, self._wake),
                         name="ziri-refusals", daemon=True).start()

    def close(self):
        """Stop the background writes and write what is held (before the store closes)."""
        self._wake.set()
        self.flush()


def _flush_forever(counter_ref, interval, stop):
    while not stop.wait(interval):
        counter = counter_ref()
        if counter is None:
            return
        counter.flush()
        del counter  # not held while waiting


def refusal_counts(rows):
    """Return ``{(day, keyId, code): count}`` summed over ``rows``."""
    totals = {}
    for row in rows:
        group = (row["day"], row["keyId"], row["code"])
        totals[group] = totals.get(group, 0) + int(row["count"])
    return totals


def count_refusal(response):
    """Count the answer if it refused the request (``after_request``; no I/O)."""
    code = g.get("error_code", "-")
    if is_refusal(response.status_code, code):
        key = g.get("api_key")
        key_id = key.id if key is not None else g.get("refused_key_id")
        current_app.extensions["ziri_images_refusals"].count(key_id, code)
    return response


def flush_refusals(app):
    """Write the refusal counts ``app`` holds now (gunicorn's ``worker_exit``: a worker's last seconds)."""
    counter = getattr(app, "extensions", {}).get("ziri_images_refusals")
    return counter.flush() if counter is not None else 0


def init_app(app):
    """Count this app's refusals and flush them to its store's refusal record every few seconds."""
    gateway = app.extensions["ziri_images"]
    counter = RefusalCounter(gateway.store.refusal_record(), gateway.clock)
    app.extensions["ziri_images_refusals"] = counter
    app.after_request(count_refusal)
