"""Authenticate gateway API keys against the hashed key file (keys.json).

Keys look like ``ziri-{userId}-{hex secret}``. Only ``sha256:`` hashes of whole keys are
stored; the raw key is never kept, logged or echoed. The file is re-read when it changes
on disk (``reloading.ReloadingFile``), so keys can be added, limited or revoked without a
restart: once the file is replaced, every later request sees the new keys. A broken edit keeps
the last good version in service (and is logged once), while a broken file at start-up is fatal.

A key may belong to one team (``"team": "<id>"``), listed in the file's ``teams`` object with its
own limits; the key's ``ApiKey.team`` is that ``Team``, and the stores hold every request of the
key to both (ledger/checks.py). A key of a disabled team is refused as a disabled key is.
"""

import hashlib
import re
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from ..config import load_json_file
from ..errors import ApiError
from ..errors import ConfigError
from .limits import LIMIT_MAXIMUMS  # noqa: F401  (the limits' names and rule, re-exported)
from .limits import LIMIT_NAMES
from .limits import TEAM_LIMIT_NAMES
from .limits import limit_problem  # noqa: F401
from .limits import limit_rule  # noqa: F401
from .limits import parse_limits
from .reloading import ReloadingFile

KEY_PATTERN = re.compile(r"^ziri-([A-Za-z0-9][A-Za-z0-9_.-]*)-([0-9a-f]{16,128})\Z")
STATUSES = ("active", "disabled")


def hash_key(raw_key):
    """Return the stored form of a raw key."""
    return "sha256:" + hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


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


def parse_team_record(team_id, record, where):
    """Return the Team of one entry of keys.json's ``teams`` object, or raise ConfigError."""
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected an object")
    name = record.get("name", team_id)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    status = record.get("status", "active")
    if status not in STATUSES:
        raise ConfigError(f"{where}: 'status' must be one of {', '.join(STATUSES)}")
    return Team(id=team_id, name=name, status=status, limits=parse_limits(record.get("limits"), TEAM_LIMIT_NAMES,
                                                                             where))


def parse_teams(teams, path):
    """Return {team id: Team} of keys.json's optional ``teams`` object, or raise ConfigError naming ``path``."""
    if teams is None:
        return {}
    if not isinstance(teams, dict):
        raise ConfigError(f"key file {path}: 'teams' must be an object of teams by id")
    parsed = {}
    for team_id, record in teams.items():
        if not team_id:
            raise ConfigError(f"key file {path}: a team id must not be empty")
        parsed[team_id] = parse_team_record(team_id, record, f"key file {path}: teams.{team_id}")
    return parsed


def parse_key_record(record, where, teams=None):
    """Return the (hash, ApiKey) of one keys.json entry, or raise ConfigError.

    ``teams`` ({id: Team}) resolves the key's ``team``; a team it does not hold is an error.
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
    limits = parse_limits(record.get("limits"), LIMIT_NAMES, where)
    team_id = record.get("team")
    if team_id is not None and (not isinstance(team_id, str) or team_id not in (teams or {})):
        raise ConfigError(f"{where}: unknown team {team_id!r} (teams are listed in the file's 'teams' object)")
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
    """Return {hash: ApiKey} from a decoded key file, or raise ConfigError naming ``path``.

    The file may list ``teams`` (an object of teams by id); a key names its own with ``team``.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError(f"key file {path}: expected an object with a 'keys' list")
    teams = parse_teams(document.get("teams"), path)
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


class KeyStore:
    """Find keys by their hash, re-reading the file when it changes on disk."""

    def __init__(self, path):
        self.path = path
        self._file = ReloadingFile(path, load_key_file, "key file")

    def refresh(self):
        """Return the keys of the file as it is now (the last good version if the new one is broken)."""
        return self._file.current()

    def authenticate(self, raw_key, now):
        """Return the active ApiKey for ``raw_key`` or raise the contract's auth error."""
        if not raw_key:
            raise ApiError(400, "API_KEY_REQUIRED", "API key required. Include X-API-Key header.")
        if not KEY_PATTERN.match(raw_key):
            raise ApiError(
                401, "INVALID_API_KEY_FORMAT", "Invalid API key format. Expected ziri-{userId}-{hex secret}."
            )
        key = self.refresh().get(hash_key(raw_key))
        if key is None:
            raise ApiError(403, "API_KEY_INVALID", "Invalid API key.")
        if key.status != "active":
            raise ApiError(403, "API_KEY_REVOKED_OR_DISABLED", "API key has been revoked or disabled.", keyId=key.id)
        if key.team is not None and key.team.status != "active":
            raise ApiError(403, "API_KEY_REVOKED_OR_DISABLED", "The key's team has been disabled.", keyId=key.id,
                           teamId=key.team.id, reason="team_disabled")
        if key.expires_at is not None and now >= key.expires_at:
            raise ApiError(
                403, "API_KEY_EXPIRED", "API key has expired.", keyId=key.id, expiredAt=key.expires_at.isoformat()
            )
        return key
