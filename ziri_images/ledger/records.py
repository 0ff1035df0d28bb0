"""The ledger's record format: the one place that builds, encodes and parses records.

Three record types exist, one line (or row) each:

``reservation``
    Budget held for a request before the provider is called: the request's summary plus
    ``keyId``, ``user``, ``amount``, ``expiresAt`` and the ``worker`` that holds it.
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

Money is kept in integer micro-dollars; the records carry dollars as JSON numbers. Only strict
JSON (RFC 8259) is written: a non-finite number in a record is written as ``null``. Parsing
never raises: a line or value that is not a valid record is logged and yields ``None``.
"""

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone

log = logging.getLogger("ziri_images")

MICROS = 1_000_000
RECORD_TYPES = ("reservation", "charge", "reservation_expired")
# No single request costs more: a larger amount is a corrupt record, and it would overflow
# a 64-bit column in micro-dollars.
MAX_AMOUNT = 1_000_000_000
_TS_LENGTH = len("YYYY-MM-DDTHH:MM:SS.ffffffZ")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder()


# --- money, time and periods ------------------------------------------------------------

def to_micros(amount):
    return round(amount * MICROS)


def to_amount(micros):
    return micros / MICROS


def format_ts(moment):
    """Return the ledger's timestamp format: UTC, microseconds, 'Z'."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text):
    return datetime.fromisoformat(text)


def day_of(ts):
    return ts[:10]


def month_of(ts):
    return ts[:7]


def next_day(now):
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def next_month(now):
    return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)


#: The spend budgets: (name, limit setting, its period of a timestamp, the start of the next period).
BUDGETS = (
    ("daily", "daily_spend_limit", day_of, next_day),
    ("monthly", "monthly_spend_limit", month_of, next_month),
)


def budget_periods(now):
    """Yield (name, period, limit setting, reset time) for the budgets that apply at ``now``."""
    ts = format_ts(now)
    for name, limit_name, period_of, next_period in BUDGETS:
        yield name, period_of(ts), limit_name, next_period(now)


# --- typed records ----------------------------------------------------------------------

@dataclass(slots=True)
class Record:
    """One validated ledger record: the fields the limits and the report use, and the whole record.

    Field order is the constructor's: ``parse_record`` builds it positionally (replay speed).
    """

    kind: str  # one of RECORD_TYPES
    ts: str  # when it was written (ledger format)
    request_id: str
    key_id: str
    micros: int  # reservation: the amount held; charge / reservation_expired: the cost
    reserved_at: str  # the reservation's ts: the time the budgets count the request at
    user: str | None
    model: str | None
    images: int | None  # charge: imagesReturned
    expires_at: float | None  # reservation: epoch seconds
    worker: str
    idempotency_key: str | None
    fields: dict  # the record as written


@dataclass
class Reservation:
    """Budget held for one in-flight request."""

    request_id: str
    key_id: str
    micros: int
    reserved_at: str
    expires_at: float
    worker: str

    @classmethod
    def from_record(cls, record):
        return cls(request_id=record.request_id, key_id=record.key_id, micros=record.micros,
                   reserved_at=record.reserved_at, expires_at=record.expires_at, worker=record.worker)


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
        "amount": to_amount(micros),
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
        "reservedAt": reservation.reserved_at,
        "reserved": to_amount(reservation.micros),
    }
    if after_expiry:
        record["afterExpiry"] = True
    if releases_idempotency_key(fields):
        record["idempotencyReleased"] = True
    return record


def expiry_record(now, reservation, reason):
    """Return the ``reservation_expired`` record settling ``reservation`` at its reserved amount."""
    return {
        "ts": format_ts(now),
        "type": "reservation_expired",
        "requestId": reservation.request_id,
        "keyId": reservation.key_id,
        "reservedAt": reservation.reserved_at,
        "cost": to_amount(reservation.micros),
        "reason": reason,
        "worker": reservation.worker,
    }


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


def encode_json(record):
    """Return ``record`` as compact strict JSON text (non-finite numbers become null)."""
    try:
        return _ENCODER.encode(record)
    except ValueError:
        # Provider values (a usage count, a timestamp) can be NaN or Infinity: RFC 8259 has no such numbers.
        log.warning("ledger: non-finite numbers in a %s record written as null", record.get("type"))
        return _ENCODER.encode(_finite(record))


def encode_record(record):
    """Return the ledger line for ``record`` (compact strict JSON, one line, trailing newline)."""
    return (encode_json(record) + "\n").encode("utf-8")


# --- parsing ----------------------------------------------------------------------------

def _skip(reason, detail=""):
    log.error("ledger: skipping a record that is not valid: %s%s", reason, detail)


def _moment(value):
    """Return the datetime of ``value`` if it is a ledger timestamp, else None."""
    if type(value) is not str or len(value) != _TS_LENGTH or value[-1] != "Z":
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _micros(value):
    """Return ``value`` in micro-dollars if it is a plausible amount in dollars, else None."""
    kind = type(value)
    if (kind is float and math.isfinite(value) or kind is int) and 0 <= value <= MAX_AMOUNT:
        return round(value * MICROS)
    return None


def parse_record(value):
    """Return the Record for a decoded JSON value, or None (logged) if it is not a valid record."""
    # Written for speed (a replay or a report parses millions of records): no helper per field.
    if type(value) is not dict:
        _skip("not an object")
        return None
    get = value.get
    kind, ts, request_id, key_id = get("type"), get("ts"), get("requestId"), get("keyId")
    if kind not in RECORD_TYPES:
        _skip("unknown type")
        return None
    if _moment(ts) is None or type(request_id) is not str or type(key_id) is not str or not request_id:
        _skip(f"{kind} without a valid ts, requestId or keyId")
        return None
    expires_at = images = None
    if kind == "reservation":
        micros = _micros(get("amount"))
        expires = _moment(get("expiresAt"))
        if micros is None or expires is None:
            _skip("reservation without a valid amount or expiresAt", f" ({request_id})")
            return None
        expires_at = expires.timestamp()
        reserved_at = ts
    else:
        micros = _micros(get("cost"))
        reserved_at = get("reservedAt", ts)
        images = get("imagesReturned")
        if (micros is None or (reserved_at is not ts and _moment(reserved_at) is None)
                or not (images is None or type(images) is int and images >= 0)):
            _skip(f"{kind} without a valid cost, reservedAt or imagesReturned", f" ({request_id})")
            return None
    user, model, worker, digest = get("user"), get("model"), get("worker"), get("idempotencyKey")
    return Record(kind, ts, request_id, key_id, micros, reserved_at, user if type(user) is str else None,
                  model if type(model) is str else None, images, expires_at, worker if type(worker) is str else "",
                  digest if type(digest) is str else None, value)


def decode_line(line):
    """Return the JSON value of one whole line (bytes or str), or raise ValueError."""
    text = line.decode("utf-8") if type(line) is bytes else line
    try:
        value, end = _DECODER.raw_decode(text)  # faster than json.loads, which also sniffs the encoding
    except ValueError:
        return json.loads(text)  # leading whitespace is fine; anything else that is not JSON raises
    if end != len(text) and not text[end:].isspace():
        raise ValueError("extra data after the record")
    return value


def parse_line(line):
    """Return the Record on one ledger line, or None (logged) for any line that is not a record."""
    try:
        value = decode_line(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        _skip("unparsable line", f" ({len(line)} bytes)")
        return None
    return parse_record(value)
