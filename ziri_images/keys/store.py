"""The key and team records, their rules, and the key file (keys.json) as a key source.

Keys look like ``ziri-{userId}-{hex secret}``. Only ``sha256:`` hashes of whole keys are
stored; the raw key is never kept, logged or echoed. ``parse_key_record`` is the one rule for a
key's record wherever it is kept (keys.json or the database, ``keys/postgres_registry.py``).
Without a database the file is the key source: re-read when it changes on disk
(``reloading.ReloadingFile``), so keys can be added, limited or revoked without a restart: once
the file is replaced, every later request sees the new keys. A broken edit keeps the last good
version in service (and is logged once), while a broken file at start-up is fatal.
"""

import logging
import math
import re
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from ..errors import ConfigError
from ..strict_json import load_json_file
from .base import KEY_PATTERN  # noqa: F401 (the key's form, named here as always)
from .base import KeySource
from .base import hash_key  # noqa: F401
from .reloading import ReloadingFile

log = logging.getLogger("ziri_images")

# Limits a team carries (every key of the team is held to them together, beside its own). The soft
# limits refuse nothing: reaching a threshold of one only sends a budget alert (alerts/rules.py).
TEAM_LIMIT_NAMES = ("daily_spend_limit", "monthly_spend_limit", "requests_per_minute", "max_concurrent_requests",
                    "soft_daily_spend_limit", "soft_monthly_spend_limit")
# A key's: its team's kinds, and the daily spend of each of its end users (OpenAI's ``user`` field).
LIMIT_NAMES = (*TEAM_LIMIT_NAMES, "end_user_daily_spend_limit")
# The largest limits a key may carry. Spend is counted in micro-dollars in 64-bit integers (the
# PostgreSQL store's bigint columns): $1,000,000,000 a period is 1e15 micros, exact as a float
# (< 2**53) and 9,000 times below the bigint's range, room for the period's sums. Rate and
# concurrency are whole counts, bounded far beyond any one host's reach.
SPEND_MAXIMUM = 1_000_000_000
LIMIT_MAXIMUMS = {"daily_spend_limit": SPEND_MAXIMUM, "monthly_spend_limit": SPEND_MAXIMUM,
                  "requests_per_minute": 1_000_000, "max_concurrent_requests": 100_000,
                  "soft_daily_spend_limit": SPEND_MAXIMUM, "soft_monthly_spend_limit": SPEND_MAXIMUM,
                  "end_user_daily_spend_limit": SPEND_MAXIMUM}
WHOLE_LIMITS = ("requests_per_minute", "max_concurrent_requests")
STATUSES = ("active", "disabled")


@dataclass(frozen=True)
class ApiKey:
    """One key record; ``limits`` values of 0 or absent mean unlimited."""

    id: str
    user: str
    status: str
    demo: bool = False
    expires_at: datetime | None = None
    limits: dict = field(default_factory=dict)
    allowed_providers: tuple | None = None
    allowed_models: tuple | None = None
    team: "Team | None" = None  # the team the key belongs to, its limits as the key store read them

    def limit(self, name):
        """Return the limit ``name``, or None when unlimited."""
        return self.limits.get(name) or None


@dataclass(frozen=True)
class Team:
    """A group of keys held together to its own limits (``TEAM_LIMIT_NAMES``; 0 or absent: unlimited).

    A request of one of its keys is admitted only if both the key's and the team's limits allow it.
    """

    id: str
    name: str
    status: str = "active"
    limits: dict = field(default_factory=dict)

    def limit(self, name):
        """Return the limit ``name``, or None when unlimited."""
        return self.limits.get(name) or None


def limit_rule(name):
    """Return what the limit ``name`` may be, in words (for error messages)."""
    whole = "whole " if name in WHOLE_LIMITS else ""
    return f"a {whole}number >= 0 and at most {LIMIT_MAXIMUMS[name]:,}"


def limit_problem(name, value):
    """Return why ``value`` cannot be the limit ``name``, or None when the gateway can enforce it.

    The one rule for keys.json and the command line: NaN, infinities, values past ``LIMIT_MAXIMUMS``
    (they would overflow the database's bigint) and fractional counts are refused, never stored.
    """
    enforceable = isinstance(value, (int, float)) and not isinstance(value, bool)
    # Compared without conversion: an integer too large for a float is refused, not an OverflowError.
    enforceable = enforceable and not (isinstance(value, float) and math.isnan(value))
    enforceable = enforceable and 0 <= value <= LIMIT_MAXIMUMS[name]
    if enforceable and (name not in WHOLE_LIMITS or value == int(value)):
        return None
    return f"limit '{name}' must be {limit_rule(name)} (0 = unlimited), got {value!r}"


def _parse_time(value, where):
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise ConfigError(f"{where}: expected an ISO 8601 time, got {value!r}")
    if parsed.tzinfo is None:
        raise ConfigError(f"{where}: time {value!r} needs a timezone (e.g. 'Z')")
    return parsed


def _parse_allow_list(value, where):
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: expected a list of names")
    return tuple(value)


def _check_limits(limits, names, where):
    if not isinstance(limits, dict):
        raise ConfigError(f"{where}: 'limits' must be an object")
    for name, value in limits.items():
        if name not in names:
            raise ConfigError(f"{where}: unknown limit '{name}' (known: {', '.join(names)})")
        problem = limit_problem(name, value)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")
    return dict(limits)


def parse_team_record(team_id, record, where):
    """Return the Team of one entry of keys.json's ``teams`` (or a database row in that shape), or raise ConfigError."""
    if not isinstance(team_id, str) or not team_id:
        raise ConfigError(f"{where}: a team id must be a non-empty string")
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected an object")
    if not isinstance(record.get("name"), str) or not record["name"]:
        raise ConfigError(f"{where}: 'name' is required and must be a string")
    status = record.get("status", "active")
    if status not in STATUSES:
        raise ConfigError(f"{where}: 'status' must be one of {', '.join(STATUSES)}")
    limits = _check_limits(record.get("limits") or {}, TEAM_LIMIT_NAMES, where)
    return Team(id=team_id, name=record["name"], status=status, limits=limits)


def parse_teams(document, path):
    """Return {team id: Team} of a decoded key file's optional ``teams`` object, or raise ConfigError."""
    teams = document.get("teams") or {}
    if not isinstance(teams, dict):
        raise ConfigError(f"key file {path}: 'teams' must be an object of team id -> team")
    return {team_id: parse_team_record(team_id, record, f"key file {path}: teams.{team_id}")
            for team_id, record in teams.items()}


def parse_key_record(record, where, teams=None):
    """Return the (hash, ApiKey) of one keys.json entry, or raise ConfigError.

    ``teams`` ({id: Team}) are the teams a key may name in ``team``; the key carries its Team.
    """
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected an object")
    for name in ("id", "user", "hash"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise ConfigError(f"{where}: '{name}' is required and must be a string")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", record["hash"]):
        raise ConfigError(f"{where}: 'hash' must be 'sha256:' followed by 64 hex digits")
    status = record.get("status", "active")
    if status not in STATUSES:
        raise ConfigError(f"{where}: 'status' must be one of {', '.join(STATUSES)}")
    limits = _check_limits(record.get("limits") or {}, LIMIT_NAMES, where)
    team_id = record.get("team")
    if team_id is not None and (not isinstance(team_id, str) or team_id not in (teams or {})):
        raise ConfigError(f"{where}: 'team' names no known team ({team_id!r})")
    expires_at = record.get("expires_at")
    key = ApiKey(
        id=record["id"],
        user=record["user"],
        status=status,
        demo=bool(record.get("demo", False)),
        expires_at=_parse_time(expires_at, f"{where}.expires_at") if expires_at else None,
        limits=limits,
        allowed_providers=_parse_allow_list(record.get("allowed_providers"), f"{where}.allowed_providers"),
        allowed_models=_parse_allow_list(record.get("allowed_models"), f"{where}.allowed_models"),
        team=teams[team_id] if team_id is not None else None,
    )
    return record["hash"], key


def load_key_file(path):
    """Return {hash: ApiKey} from ``path``, or raise ConfigError naming the file."""
    return parse_key_document(load_json_file(path, "key file"), path)


def parse_key_document(document, path):
    """Return {hash: ApiKey} from a decoded key file, or raise ConfigError naming ``path``."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError(f"key file {path}: expected an object with a 'keys' list")
    teams = parse_teams(document, path)
    by_hash, ids = {}, set()
    for index, record in enumerate(document["keys"]):
        key_hash, key = parse_key_record(record, f"key file {path}: keys[{index}]", teams)
        if key.id in ids:
            raise ConfigError(f"key file {path}: duplicate key id '{key.id}'")
        if key_hash in by_hash:
            raise ConfigError(f"key file {path}: keys '{by_hash[key_hash].id}' and '{key.id}' share a hash")
        ids.add(key.id)
        by_hash[key_hash] = key
    return by_hash


class KeyStore(KeySource):
    """The key file as the key source: find keys by their hash, re-reading the file when it changes on disk."""

    def __init__(self, path):
        self.path = path
        self._file = ReloadingFile(path, load_key_file, "key file")

    def refresh(self):
        """Return the keys of the file as it is now (the last good version if the new one is broken)."""
        return self._file.current()

    def find(self, key_hash):
        return self.refresh().get(key_hash)

    def readiness(self):
        try:
            load_key_file(self.path)
        except ConfigError as error:
            log.warning("readiness: %s", error)
            return "the key file is missing or invalid"
        return None
