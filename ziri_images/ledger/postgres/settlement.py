"""The PostgreSQL store's settlements: every way an open reservation is closed.

``settle`` writes the charge (``ziri_settle_charge``, batched per key: batch.py), or keeps it on
local disk (spool.py) while the database is away, to be written once when it is back.
``settle_stale`` settles a key's expired reservations, and those of dead processes, at their
reserved amount under the key's lock (a reserve that meets them, or lease.py's sweep).
``release_unconfirmed`` settles at zero the reservations whose reserve committed but whose
answer was lost (lease.py's housekeeping pass).
"""

import json
import logging

from ...alerts.rules import watches_json
from ...errors import ApiError
from ..base import ledger_unavailable
from ..money import day_of
from ..money import format_ts
from ..money import month_of
from ..money import parse_ts
from ..money import to_micros
from ..records import Reservation
from ..records import charge_record
from ..records import counted_end_user
from ..records import encode_json
from ..records import expiry_record
from ..records import summary_of
from . import sql

log = logging.getLogger("ziri_images")


def _ts(moment):
    return parse_ts(moment) if isinstance(moment, str) else moment


class Settlements:
    """Write ``PostgresStore``'s charges, expiries and releases (a mixin: the store's database, spool, unconfirmed)."""

    def settle(self, reservation, fields, watches=()):
        now = self.clock()
        try:
            return self.write_charge(reservation, fields, now, watches)
        except ApiError:
            pass
        except Exception:
            raise
        except BaseException:
            # Interrupted mid-call (a killed greenlet): the charge may not have committed. Spooled, it
            # is written once (the unique index) instead of its reservation being held until it expires.
            try:
                self._spool_charge(now, reservation, fields)
            except ApiError:
                pass
            raise
        return self._spool_charge(now, reservation, fields)

    def _spool_charge(self, now, reservation, fields):
        """Keep the charge on disk, to be written once the database answers; return its record."""
        # The provider has answered: the charge must not be lost.
        try:
            self.spool.put({"settledAt": format_ts(now), "reservation": vars(reservation), "fields": fields})
        except OSError as error:
            # Neither the database nor the disk: the open reservation will be charged at its amount.
            log.critical("charge of %s lost to the spool %s: %s", reservation.request_id, self.spool.directory,
                         error.strerror or error)
            raise ledger_unavailable("neither the database nor the charge spool is writable") from None
        log.warning("database unavailable: charge of %s spooled in %s", reservation.request_id, self.spool.directory)
        return charge_record(now, reservation, fields, after_expiry=False)

    def write_charge(self, reservation, fields, now, watches=()):
        """Write the charge for ``reservation`` unless it is already stored; return the record.

        One statement, one round trip (with the settles of the same key queued meanwhile in this
        process: batch.py): ``ziri_settle_charge`` (functions/) releases the open
        reservation and writes the charge, the record for an open reservation or, when an expiry
        settled it first, the one that replaces the expiry's amount, and records the budget
        alerts of ``watches`` (``alerts.rules.Watch``) the charge makes reached.
        """
        open_record = charge_record(now, reservation, fields, after_expiry=False)
        late_record = charge_record(now, reservation, fields, after_expiry=True)
        images = open_record.get("imagesReturned")
        was_open, alerts = self._settles.submit(reservation.key_id, {
            "request_id": reservation.request_id, "key": reservation.key_id, "user": open_record.get("user"),
            "model": open_record.get("model"), "reserved_at": format_ts(_ts(reservation.reserved_at)),
            "ts": format_ts(now), "micros": to_micros(open_record.get("cost") or 0),
            "images": images if type(images) is int else None,
            "record": encode_json(open_record), "late_record": encode_json(late_record),
            "day": day_of(reservation.reserved_at), "month": month_of(reservation.reserved_at),
            "team": reservation.team, "end_user": counted_end_user(reservation.end_user),
            "watches": watches_json(watches) if watches else None,
        })
        if alerts:
            self.alert_outbox().recorded(alerts)
        return open_record if was_open else late_record

    def _settle_batch(self, key_id, calls):
        return [tuple(row) for row in self.database.call(sql.SETTLE_MANY, {"batch": json.dumps(calls)})]

    def release_unconfirmed(self):
        """Settle at zero the reservations whose reserve answered 503 but did commit; return how many."""
        with self._unconfirmed_lock:
            pending, self._unconfirmed = self._unconfirmed, {}
        released = 0
        for request_id, (key_id, record) in pending.items():
            try:
                with self.transaction() as cursor:
                    row = cursor.execute(sql.OPEN_RESERVATION, {"request_id": request_id, "key": key_id}).fetchone()
            except Exception:
                with self._unconfirmed_lock:
                    self._unconfirmed.setdefault(request_id, (key_id, record))
                raise
            if row is None:
                continue  # never committed, or settled since
            _id, micros, reserved_at, expires_at, worker, team, end_user = row
            reservation = Reservation(request_id=request_id, key_id=key_id, micros=micros,
                                      reserved_at=format_ts(reserved_at), expires_at=expires_at.timestamp(),
                                      worker=worker, team=team, end_user=end_user or None)
            # The client was refused (503 LEDGER_UNAVAILABLE, x-should-retry: true) before the provider was
            # called: nothing to pay, and its Idempotency-Key is free for the retry it was told to make.
            self.write_charge(reservation, {**summary_of(record), "status": "not_admitted", "httpStatus": 503,
                                            "imagesReturned": 0, "cost": 0.0, "shouldRetry": True}, self.clock())
            log.warning("reservation %s committed without its answer: settled at 0", request_id)
            released += 1
        return released

    def lock_key(self, cursor, key_id):
        """Hold ``key_id``'s row lock for the rest of the transaction (creating the row on first use)."""
        # The insert finds the row already there but for a key's first request (and takes no lock then).
        cursor.execute(sql.CREATE_KEY, {"key": key_id})
        cursor.execute(sql.LOCK_KEY, {"key": key_id}).fetchone()  # fetched: waits until the lock is held

    def settle_stale(self, cursor, key_id, now):
        """Settle ``key_id``'s stale reservations at their reserved amount (the caller holds the key's lock)."""
        stale = cursor.execute(sql.TAKE_STALE, {"key": key_id, "now": now}).fetchall()
        for request_id, micros, reserved_at, expires_at, worker, team, end_user in stale:
            reservation = Reservation(request_id=request_id, key_id=key_id, micros=micros,
                                      reserved_at=format_ts(reserved_at), expires_at=expires_at.timestamp(),
                                      worker=worker, team=team, end_user=end_user or None)
            reason = "expired" if expires_at <= now else "worker_died"
            self._write_settlement(cursor, expiry_record(now, reservation, reason), reservation, micros, micros)
            log.warning("reservation %s of %s settled at its reserved amount: %s", request_id, worker, reason)

    def _write_settlement(self, cursor, record, reservation, micros, delta):
        """Queue an expiry record and its ``delta`` to the spent totals (nothing if already stored)."""
        images = record.get("imagesReturned")
        cursor.execute(sql.WRITE_SETTLEMENT, {
            "ts": _ts(record["ts"]), "type": record["type"], "request_id": reservation.request_id,
            "key": reservation.key_id, "user": record.get("user"), "model": record.get("model"),
            "reserved_at": _ts(reservation.reserved_at), "micros": micros,
            "images": images if type(images) is int else None, "record": encode_json(record), "delta": delta,
            "day": day_of(reservation.reserved_at), "month": month_of(reservation.reserved_at),
            "team": reservation.team, "end_user": counted_end_user(reservation.end_user),
        })
