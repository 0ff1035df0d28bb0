"""The edits every key registry makes to a record, wherever it is kept: new keys and teams, changes, the audit's diff.

A record is a dict in keys.json's shape (``base.py``). Both registries build and change records
with these functions and check the result with the one parser (``store.parse_key_record``,
``store.parse_team_record``), so a key means the same in the file and in the database.
"""

import re
import secrets
from datetime import datetime
from datetime import timezone

from ..errors import ConfigError
from ..ledger.records import audit_record
from .base import KEY_PATTERN
from .base import KeyEditError
from .base import hash_key
from .store import parse_key_record
from .store import parse_team_record

# Ids given to new keys and teams: they appear in URLs, the ledger and the logs.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Fields of a key record that are never shown, logged or audited.
SECRET_FIELDS = ("hash",)


def utc_timestamp(moment=None):
    """Return ``moment`` (default: now) as a record's time, ``2026-11-26T12:00:00Z``."""
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_raw_key(user):
    """Return a fresh key ``ziri-{user}-{32 hex}`` for ``user``, or raise KeyEditError."""
    raw_key = f"ziri-{user}-{secrets.token_hex(16)}"
    match = KEY_PATTERN.match(raw_key)
    if match is None or match.group(1) != user:
        raise KeyEditError(f"user {user!r} cannot be part of a key: use letters, digits, '_', '.' and '-', "
                           "starting with a letter or digit")
    return raw_key


def new_id(prefix, taken):
    """Return ``prefix`` + 8 random hex digits, not in ``taken`` (a container or a predicate)."""
    is_taken = taken if callable(taken) else taken.__contains__
    while True:
        candidate = f"{prefix}_{secrets.token_hex(4)}"
        if not is_taken(candidate):
            return candidate


def check_new_id(item_id, kind):
    """Raise KeyEditError unless ``item_id`` may name a new key or team."""
    if not isinstance(item_id, str) or not ID_PATTERN.match(item_id):
        raise KeyEditError(f"{kind} id {item_id!r}: use up to 64 letters, digits, '_', '.' and '-', starting "
                           "with a letter or digit")


def new_key_record(key_id, user, raw_key, now=None):
    """Return the record of a new active key (its hash, never ``raw_key`` itself)."""
    return {"id": key_id, "user": user, "hash": hash_key(raw_key), "status": "active", "created_at": utc_timestamp(now),
            "expires_at": None, "allowed_providers": None, "allowed_models": None, "limits": {}}


def new_team_record(team_id, name, status="active", now=None):
    return {"id": team_id, "name": name, "status": status, "limits": {}, "created_at": utc_timestamp(now)}


def apply_changes(record, limits=None, **fields):
    """Set ``fields`` on ``record``; in ``limits`` a value of None removes that limit.

    A team of None takes the key out of its team; enabling a key clears its ``revoked_at``.
    """
    record.update(fields)
    if record.get("team", "") is None:
        del record["team"]
    if fields.get("status") == "active":
        record.pop("revoked_at", None)
    if limits:
        merged = dict(record.get("limits") or {})
        for name, value in limits.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        record["limits"] = merged


def rotate_secret(record, _document=None):
    """Give ``record`` a new secret; return the raw key (the caller shows it once)."""
    raw_key = new_raw_key(record["user"])
    record["hash"] = hash_key(raw_key)
    record["rotated_at"] = utc_timestamp()
    return raw_key


def checked_key(record, teams):
    """Return ``record`` if the key parser takes it (``teams``: {id: Team} it may name), else raise KeyEditError."""
    try:
        parse_key_record(record, f"key {record.get('id')!r}", teams)
    except ConfigError as error:
        raise KeyEditError(str(error)) from None
    return record


def checked_team(record):
    """Return the Team of a team ``record`` ({"id", "name", ...}), or raise KeyEditError."""
    try:
        return parse_team_record(record.get("id"), record, f"team {record.get('id')!r}")
    except ConfigError as error:
        raise KeyEditError(str(error)) from None


def public_view(record):
    """Return ``record`` without its hash (for listing, showing and answering)."""
    return {name: value for name, value in record.items() if name not in SECRET_FIELDS}


def _flatten(record):
    flat = {name: value for name, value in record.items() if name not in SECRET_FIELDS and name != "limits"}
    flat.update({f"limits.{name}": value for name, value in (record.get("limits") or {}).items()})
    return flat


def audit_of(now, actor, action, target_id, before, after):
    """Return the audit record of one change: what differs between ``before`` and ``after`` (never the hash)."""
    return audit_record(now, actor, action, target_id, changed_fields(before, after))


def changed_fields(before, after):
    """Return {field: {"from", "to"}} of what differs between two records (limits one by one), for the audit.

    The hash is never part of it: a rotation shows as its ``rotated_at``.
    """
    old, new = _flatten(before or {}), _flatten(after or {})
    old.pop("keys", None), new.pop("keys", None)  # a team's count of keys: shown, not stored
    return {name: {"from": old.get(name), "to": new.get(name)}
            for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)}
