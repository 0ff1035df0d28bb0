"""The ledger's record format: the one place that builds, encodes and parses records.

Three record types exist, one line (or row) each:

``reservation``
    Budget held for a request before the provider is called: the request's summary (with the
    client's ``endUser``, OpenAI's ``user``, when sent) plus ``keyId``, ``user``, the key's
    ``team``, ``amount``, ``expiresAt`` and the ``worker`` that holds it.
``charge``
    What the request cost, written when it ends: the summary, the outcome, ``cost``,
    ``reservedAt`` (the reservation's time, which the budgets count it at) and ``reserved``.
    ``idempotencyReleased: true`` frees the request's Idempotency-Key for a retry
    (``releases_idempotency_key``); every store folds it the same way.

The summary names the ``endpoint`` (``generations`` or ``edits``); a streamed request's
reservation and charge also carry ``stream: true`` and ``partialImages``, and a stream charged
its reservation says why in ``streamEnd`` (``no_completed_event``, ``broken``, ``client_gone``).
``reservation_expired``
    A reservation whose worker died or whose time ran out, settled at the reserved amount
    (the provider may have generated the images). A later ``charge`` replaces it.

All three carry the reservation's ``team`` and ``endUser``: the counters rebuilt from them are the limits'.

Beside them, apart from the money (its own file or table, never counted by the limits or the report):

``audit``
    One change of a key or a team, by the command line or the admin API: ``auditId``, ``actor``
    (``cli``, or ``admin:`` and a digest of the admin token), ``action`` (``AUDIT_ACTIONS``),
    ``targetId`` and ``changes`` (``{field: {"from", "to"}}``). Never a key or its hash.

Money is kept in integer micro-dollars (``money.py``); the records carry dollars as JSON numbers. Only strict
JSON (RFC 8259) is written: a non-finite number in a record is written as ``null``. Parsing
never raises (``parse.py``): a line or value that is not a valid record is logged and yields ``None``.
"""

import json
import logging
import math
import secrets
from dataclasses import dataclass

from .money import format_ts
from .money import to_dollars

log = logging.getLogger("ziri_images")

RECORD_TYPES = ("reservation", "charge", "reservation_expired")
AUDIT_TYPE = "audit"
AUDIT_ACTIONS = ("key.created", "key.updated", "key.rotated", "key.deleted", "key.imported",
                 "team.created", "team.updated", "team.deleted", "team.imported")
TS_LENGTH = len("YYYY-MM-DDTHH:MM:SS.ffffffZ")
# Where ``peek`` finds the time and the type in a line as ``encode_json`` writes it.
_PREFIX = b'{"ts":"'
_TS_START = len(_PREFIX)
_TS_END = _TS_START + TS_LENGTH
_TYPE_SEPARATOR = b'","type":"'
_TYPE_AT = _TS_END + len(_TYPE_SEPARATOR)
_KINDS = {kind.encode(): kind for kind in RECORD_TYPES}
_RESERVED_AT = b'"reservedAt":"'
# The fields a reservation record adds to its request's summary (``reservation_record``).
_RESERVATION_OWN = frozenset(("ts", "type", "amount", "expiresAt", "worker"))
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --- typed records ----------------------------------------------------------------------

@dataclass
class Reservation:
    """Budget held for one in-flight request."""

    request_id: str
    key_id: str
    micros: int
    reserved_at: str
    expires_at: float
    worker: str
    team: str | None = None  # the id of the team it counts for (the key's when it was admitted)
    end_user: str | None = None  # the end user the client named (OpenAI's ``user``), or None

    @classmethod
    def from_record(cls, record):
        return cls(request_id=record.request_id, key_id=record.key_id, micros=record.micros,
                   reserved_at=record.reserved_at, expires_at=record.expires_at, worker=record.worker,
                   team=record.team, end_user=record.end_user)


def team_of(key):
    """Return the id of the team ``key`` belongs to, or None."""
    return key.team.id if key.team is not None else None


def counted_end_user(end_user):
    """Return the end user a request counts under: its own, or "" (requests naming none share one budget)."""
    return end_user or ""


def _own_fields(reservation):
    """Return the ``team`` and ``endUser`` a reservation's records carry (those it has)."""
    return {name: value for name, value in (("team", reservation.team), ("endUser", reservation.end_user))
            if value is not None}


# --- building ---------------------------------------------------------------------------

def request_summary(request_id, endpoint, key, generation, quote, idempotency_key):
    """Return the request's summary: the fields its reservation and charge records open with."""
    summary = {
        "requestId": request_id,
        "endpoint": endpoint,
        "keyId": key.id,
        "user": key.user,
        "provider": generation.provider,
        "model": generation.model,
        **quote.choices,
        "imagesRequested": quote.images,
        "pricePerImage": quote.price_per_image,
        "currency": quote.currency,
    }
    if idempotency_key:
        summary["idempotencyKey"] = idempotency_key
    if generation.end_user is not None:
        summary["endUser"] = generation.end_user
    if generation.stream:
        summary.update(stream=True, partialImages=generation.partial_images)
    return summary


def reservation_record(now, key, details, micros, expires_at, worker):
    """Return the ``reservation`` record for ``key``'s request summarised by ``details``."""
    return {
        "ts": format_ts(now),
        "type": "reservation",
        **details,
        "keyId": key.id,
        "user": key.user,
        **({"team": key.team.id} if key.team is not None else {}),
        "amount": to_dollars(micros),
        "expiresAt": format_ts(expires_at),
        "worker": worker,
    }


def releases_idempotency_key(fields):
    """Return True if a request settled with the outcome ``fields`` leaves its Idempotency-Key free.

    Only an answer that told the client to retry (``shouldRetry``, the ``x-should-retry`` it was
    sent) and cost nothing, from a call that cannot have billed: the client's retry with the same
    key must be served. A key whose request may have billed stays used.
    """
    return (fields.get("shouldRetry") is True and fields.get("mayHaveBilled") is not True
            and fields.get("cost") == 0 and bool(fields.get("idempotencyKey")))


def charge_record(now, reservation, fields, after_expiry):
    """Return the ``charge`` record settling ``reservation`` with the outcome ``fields``."""
    record = {
        "ts": format_ts(now),
        "type": "charge",
        **fields,
        **_own_fields(reservation),
        "reservedAt": reservation.reserved_at,
        "reserved": to_dollars(reservation.micros),
    }
    if after_expiry:
        record["afterExpiry"] = True
    if releases_idempotency_key(fields):
        record["idempotencyReleased"] = True
    return record


def charge_outcome(*, images, provider_images, price_per_image, estimated_cost, token_cost, charged_by, usage, cost,
                   provider_choices, provider_billed=None, billed_undelivered=0):
    """Return a successful charge's outcome fields: what was delivered and charged, and what the provider reported.

    ``providerBilled``: what the provider reported it billed (USD), when it did; ``imagesBilledUndelivered``:
    images the provider billed but withheld (filtered for safety), charged too.
    """
    fields = {
        "imagesReturned": images, "providerImages": provider_images, "pricePerImage": price_per_image,
        "estimatedCost": estimated_cost, "tokenCost": token_cost, "chargedBy": charged_by, "usage": usage,
        "cost": cost,
    }
    if provider_choices:
        fields["providerChoices"] = provider_choices
    if provider_billed is not None:
        fields["providerBilled"] = provider_billed  # what the provider reported it billed (USD)
    if billed_undelivered:
        fields["imagesBilledUndelivered"] = billed_undelivered
    return fields


def summary_of(reservation):
    """Return the request summary a ``reservation`` record was written with (its own fields left out)."""
    return {name: value for name, value in reservation.items() if name not in _RESERVATION_OWN}


def expiry_record(now, reservation, reason):
    """Return the ``reservation_expired`` record settling ``reservation`` at its reserved amount."""
    return {
        "ts": format_ts(now),
        "type": "reservation_expired",
        "requestId": reservation.request_id,
        "keyId": reservation.key_id,
        **_own_fields(reservation),
        "reservedAt": reservation.reserved_at,
        "cost": to_dollars(reservation.micros),
        "reason": reason,
        "worker": reservation.worker,
    }


def audit_record(now, actor, action, target_id, changes):
    """Return the ``audit`` record of one change (``action`` of the key or team ``target_id``) made by ``actor``."""
    return {"ts": format_ts(now), "type": AUDIT_TYPE, "auditId": "aud_" + secrets.token_hex(12), "actor": actor,
            "action": action, "targetId": target_id, "changes": changes}


# --- encoding ---------------------------------------------------------------------------

def _finite(value):
    """Return ``value`` with every non-finite float (NaN, Infinity) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {name: _finite(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _ts_and_type_first(record):
    """Return ``record`` with ``ts`` and ``type`` as its first fields (``peek`` reads them there)."""
    names = iter(record)
    if next(names, None) == "ts" and next(names, None) == "type" or "ts" not in record or "type" not in record:
        return record  # the builders' order (or not a record: left as it is)
    return {"ts": record["ts"], "type": record["type"], **record}


def encode_json(record):
    """Return ``record`` as compact strict JSON text, ``ts`` and ``type`` first (non-finite numbers become null)."""
    record = _ts_and_type_first(record)
    try:
        return _ENCODER.encode(record)
    except ValueError:
        # Provider values (a usage count, a timestamp) can be NaN or Infinity: RFC 8259 has no such numbers.
        log.warning("ledger: non-finite numbers in a %s record written as null", record.get("type"))
        return _ENCODER.encode(_finite(record))


def encode_record(record):
    """Return the ledger line for ``record`` (compact strict JSON, one line, trailing newline)."""
    return (encode_json(record) + "\n").encode("utf-8")


def peek(line):
    """Return (ts as bytes, type) of a ledger line without decoding it, or None if it is not in the written shape.

    ``encode_json`` writes every record as ``{"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ","type":"...``, so
    both sit at fixed offsets; the type is None when it is not a record type. A prefilter may drop
    only a line ``peek`` reads; any other line goes to ``parse.parse_line``, which decides.
    """
    if not line.startswith(_PREFIX) or line[_TS_END:_TYPE_AT] != _TYPE_SEPARATOR:
        return None
    return line[_TS_START:_TS_END], _KINDS.get(line[_TYPE_AT:line.find(b'"', _TYPE_AT)])


def peek_reserved_at(line):
    """Return the ``reservedAt`` of a settling record's line as bytes without decoding it, or None."""
    start = line.find(_RESERVED_AT)
    return None if start < 0 else line[start + len(_RESERVED_AT):start + len(_RESERVED_AT) + TS_LENGTH]
