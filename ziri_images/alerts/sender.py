"""The alert sender: one background thread per process posts the store's pending budget alerts to the webhook.

Alerts are recorded by the store in the same step as the charge that reached them (``rules.py``),
so a request never waits for a webhook. Each process runs one sender (a thread; a greenlet under
gevent's patches, whose sockets and locks are then cooperative: the sender never blocks the
event loop). It wakes when this process records an alert (``wake``) and every ``interval``
seconds for the others' (another process or host recorded it, or a retry fell due), claims the
due alerts in the store (no two processes post one at once), posts each with a short timeout
and marks it delivered (any 2xx), to be retried later (backoff 1 s, 2 s, 4 s ... up to 5 min),
or failed once the next attempt would come more than ``retry_seconds`` after the first. The
pending ones live in the store, so a restart resumes them. Observers (``ops/metrics.py``) hear
each outcome. A sender that dies after posting and before marking posts that alert again once
its claim lapses: delivery is at least once, and ``X-Ziri-Event-Id`` lets a receiver drop a repeat.
"""

import logging
import os
import threading

import requests

from .._version import __version__
from .events import event_body
from .events import signature

log = logging.getLogger("ziri_images")

POLL_SECONDS = 2.0
CLAIM_SECONDS = 30.0  # longer than one post can take (TIMEOUT), so a claim outlives its attempt
TIMEOUT = (2.0, 5.0)  # connect, read: the webhook's answer is a status, nothing more
BATCH = 20
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 300.0


def backoff(attempts):
    """Return the seconds to wait after the ``attempts``-th failed attempt (1, 2, 4 ... at most 5 minutes)."""
    return min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempts - 1))


def retried_for(attempts):
    """Return how long after the first attempt the ``attempts``-th comes, by the backoff."""
    return sum(backoff(number) for number in range(1, attempts))


class AlertSender:
    """Post ``store.alert_outbox()``'s due alerts to ``url``, signed with ``secret``, from a background thread."""

    def __init__(self, store, url, secret, retry_seconds, autostart=True, interval=POLL_SECONDS):
        self.store = store
        self.outbox = store.alert_outbox()
        self.url = url
        self.secret = secret
        self.retry_seconds = retry_seconds
        self.autostart = autostart  # False in tests: they call run_once themselves
        self.interval = interval
        self.observers = []
        self._pid = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._session = None

    def observe(self, observer):
        """Tell ``observer.alert_delivery(result)`` of each attempt: "delivered", "retry" or "failed"."""
        self.observers.append(observer)

    def start(self):
        """Start this process's sender thread (once per process: a thread does not survive gunicorn's fork)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._session = requests.Session()
        threading.Thread(target=self._run, name="ziri-alerts", daemon=True).start()

    def wake(self):
        """Have the sender look for due alerts now (this process has just recorded one)."""
        if self.autostart:
            self.start()
        self._wake.set()

    def stop(self):
        self._stop.set()
        self._wake.set()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as error:  # the store is away (503): try again next pass
                log.warning("alerts: the outbox is unavailable: %s", getattr(error, "message", type(error).__name__))
            self._wake.wait(self.interval)
            self._wake.clear()

    def run_once(self):
        """Claim the due alerts, post each, record each outcome; return how many were delivered."""
        delivered = 0
        for alert in self.outbox.claim_due(self.store.worker, BATCH, CLAIM_SECONDS):
            error = self._post(alert)
            alert.attempts += 1
            if error is None:
                result = "delivered"
                self.outbox.finish(alert, "delivered", None)
                delivered += 1
            elif retried_for(alert.attempts) + backoff(alert.attempts) > self.retry_seconds:
                result = "failed"
                self.outbox.finish(alert, "failed", error)
                log.error("alert %s: not delivered after %d attempts (%s): given up", alert.id, alert.attempts, error)
            else:
                result = "retry"
                self.outbox.retry_later(alert, backoff(alert.attempts), error)
                log.warning("alert %s: attempt %d failed (%s): retried in %.0f s", alert.id, alert.attempts, error,
                            backoff(alert.attempts))
            for observer in self.observers:
                observer.alert_delivery(result)
        return delivered

    def _post(self, alert):
        """Post ``alert``; return None if the webhook took it (2xx), else why not (never the URL: secrets)."""
        body = event_body(alert)
        headers = {"Content-Type": "application/json", "X-Ziri-Signature": signature(body, self.secret),
                   "X-Ziri-Event-Id": alert.id, "User-Agent": f"ziri-images/{__version__}"}
        session = self._session or requests
        try:
            answer = session.post(self.url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        except requests.Timeout:
            return "timeout"
        except requests.RequestException as error:
            return type(error).__name__
        answer.close()
        return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
