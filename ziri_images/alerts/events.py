"""A budget alert as the stores keep it, the webhook event it is sent as, and the event's signature.

Both stores' outboxes (``ledger/file/alerts.py``, ``ledger/postgres/alerts.py``) read and write
``Alert`` values; ``event_body`` is the one builder of what the webhook receives:

    {"type": "budget.threshold", "scope": "key"|"team", "id": ..., "user": ... (a key's only),
     "period": "daily"|"monthly", "threshold": 80, "spent": 8.0, "limit": 10.0,
     "periodStart": "2026-11-26T00:00:00.000000Z", "at": "...", "limitName": "daily_spend_limit"}

signed ``X-Ziri-Signature: sha256=<hex HMAC-SHA256 of the body's bytes with the secret>``, and
named ``X-Ziri-Event-Id`` (the same on every retry: a receiver that saw it may drop a repeat).
"""

import hashlib
import hmac
import json
from dataclasses import dataclass

from ..ledger.money import to_dollars

EVENT_TYPE = "budget.threshold"
STATUSES = ("pending", "delivered", "failed")


@dataclass
class Alert:
    """One recorded budget alert and where its delivery stands."""

    id: str  # the outbox's own id: the event's X-Ziri-Event-Id
    scope: str  # "key" or "team"
    holder: str  # the key's id or the team's
    user: str | None  # the key's user (scope "key")
    period: str  # "daily" or "monthly"
    limit_name: str
    threshold: int  # percent
    spent_micros: int  # the period's spend when the threshold was reached
    limit_micros: int
    period_start: str  # ledger timestamp of the period's first moment (UTC)
    at: str  # ledger timestamp of the charge that reached it
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    finished_at: str | None = None  # when it was delivered or given up

    def unique_key(self):
        """Return what makes it once: (scope, holder, period, limit, threshold, period start)."""
        return self.scope, self.holder, self.period, self.limit_name, self.threshold, self.period_start

    def as_row(self):
        """Return it as a table row (``ziri-images alerts list``, the dashboard): money in dollars."""
        return {"id": self.id, "at": self.at, "scope": self.scope, "holder": self.holder, "user": self.user,
                "period": self.period, "periodStart": self.period_start, "limitName": self.limit_name,
                "threshold": self.threshold, "spent": to_dollars(self.spent_micros),
                "limit": to_dollars(self.limit_micros), "status": self.status, "attempts": self.attempts,
                "lastError": self.last_error, "finishedAt": self.finished_at}


def event_body(alert):
    """Return the bytes POSTed for ``alert`` (compact JSON, the fields in their documented order)."""
    event = {"type": EVENT_TYPE, "scope": alert.scope, "id": alert.holder}
    if alert.scope == "key" and alert.user is not None:
        event["user"] = alert.user
    event.update(period=alert.period, threshold=alert.threshold, spent=to_dollars(alert.spent_micros),
                 limit=to_dollars(alert.limit_micros), periodStart=alert.period_start, at=alert.at,
                 limitName=alert.limit_name)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(body, secret):
    """Return the ``X-Ziri-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
