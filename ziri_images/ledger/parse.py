"""Read ledger records back: every line or value is validated into a ``Record``, or logged and skipped.

``records.py`` says what each record type holds and how it is written; this module is its
reader, written for speed (a replay or a report parses millions of records). Parsing never
raises: a line or value that is not a valid record is logged and yields ``None``.
"""

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from .money import MAX_AMOUNT
from .money import MICROS
from .records import AUDIT_ACTIONS
from .records import AUDIT_TYPE
from .records import RECORD_TYPES
from .records import TS_LENGTH

log = logging.getLogger("ziri_images")

_DECODER = json.JSONDecoder()


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
    team: str | None = None  # the team the request counts for
    end_user: str | None = None  # the end user the client named


def _skip(reason, detail=""):
    log.error("ledger: skipping a record that is not valid: %s%s", reason, detail)


def _moment(value):
    """Return the datetime of ``value`` if it is a ledger timestamp, else None."""
    if type(value) is not str or len(value) != TS_LENGTH or value[-1] != "Z":
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
    team, end_user = get("team"), get("endUser")
    return Record(kind, ts, request_id, key_id, micros, reserved_at, user if type(user) is str else None,
                  model if type(model) is str else None, images, expires_at, worker if type(worker) is str else "",
                  digest if type(digest) is str else None, value, team if type(team) is str else None,
                  end_user if type(end_user) is str else None)


def parse_audit(value):
    """Return an ``audit`` record (the dict itself) if ``value`` is a valid one, else None (logged)."""
    if type(value) is not dict or value.get("type") != AUDIT_TYPE:
        _skip("not an audit record")
        return None
    get = value.get
    texts = (get("auditId"), get("actor"), get("targetId"))
    if (_moment(get("ts")) is None or not all(type(text) is str and text for text in texts)
            or get("action") not in AUDIT_ACTIONS or type(get("changes")) is not dict):
        _skip("audit record without a valid ts, auditId, actor, action, targetId or changes")
        return None
    return value


def is_audit(value):
    """Return True if ``value`` says it is an audit record (``parse_audit`` decides whether it is a valid one)."""
    return type(value) is dict and value.get("type") == AUDIT_TYPE


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
