"""A key's and a team's database row, turned into a record in keys.json's shape and back.

The columns are migrations/002_keys.sql's, in keys.sql's order; a record is what ``base.py``
says. Times are ``timestamptz`` in the database and ``2026-11-26T12:00:00Z`` text in records.
"""

from datetime import datetime
from datetime import timezone

from psycopg.types.json import Jsonb


def time_text(moment):
    """Return a database time as a record's text (microseconds only when there are some), or None."""
    if moment is None:
        return None
    moment = moment.astimezone(timezone.utc)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def parse_time(text):
    """Return a record's time text as an aware datetime, or None (``expires_at`` was checked by the parser)."""
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _noted_time(text):
    """Return a time the record only notes (created, revoked, rotated) as a datetime; None when it is no time."""
    try:
        moment = parse_time(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def key_record(row):
    """Return the record (hash included) of an ``api_keys`` row."""
    (key_id, key_hash, user, status, demo, team, expires_at, allowed_providers, allowed_models, limits,
     created_at, revoked_at, rotated_at) = row
    record = {"id": key_id, "user": user, "hash": key_hash, "status": status}
    if demo:
        record["demo"] = True
    if team is not None:
        record["team"] = team
    record.update(created_at=time_text(created_at), expires_at=time_text(expires_at),
                  allowed_providers=None if allowed_providers is None else list(allowed_providers),
                  allowed_models=None if allowed_models is None else list(allowed_models), limits=dict(limits))
    for name, moment in (("revoked_at", revoked_at), ("rotated_at", rotated_at)):
        if moment is not None:
            record[name] = time_text(moment)
    return record


def key_row(record):
    """Return the parameters of insert_key / update_key for a checked key ``record``."""
    return {"id": record["id"], "hash": record["hash"], "user_id": record["user"],
            "status": record.get("status", "active"),
            "demo": bool(record.get("demo", False)), "team_id": record.get("team"),
            "expires_at": parse_time(record.get("expires_at")),
            "allowed_providers": record.get("allowed_providers"), "allowed_models": record.get("allowed_models"),
            "limits": Jsonb(record.get("limits") or {}),
            "created_at": _noted_time(record.get("created_at")) or datetime.now(timezone.utc),
            "revoked_at": _noted_time(record.get("revoked_at")), "rotated_at": _noted_time(record.get("rotated_at"))}


def team_record(row):
    """Return the record of a ``teams`` row (select_team's, with ``keys``: how many keys it has)."""
    team_id, name, status, limits, created_at, keys = row
    return {"id": team_id, "name": name, "status": status, "limits": dict(limits), "created_at": time_text(created_at),
            "keys": keys}


def team_row(record):
    """Return the parameters of insert_team / update_team for a checked team ``record``."""
    return {"id": record["id"], "name": record["name"], "status": record.get("status", "active"),
            "limits": Jsonb(record.get("limits") or {}),
            "created_at": _noted_time(record.get("created_at")) or datetime.now(timezone.utc)}
