"""The two interfaces of every key store, and what they share: the key's form, its hash, authentication.

``KeySource`` is the request path: find a key by its hash (``authenticate``), nothing else. It
is implemented by the key file (``store.KeyStore``, re-read when it changes on disk) and by the
database (``postgres.PostgresKeySource``, a per-process cache checked against the database's
key version). ``KeyRegistry`` is the operator's: list, create, change, rotate and delete keys and
teams, and import a key file, each change recorded in an audit record. The command line and the
admin API use it, never a request. ``file_registry.FileKeyRegistry`` and
``postgres_registry.PostgresKeyRegistry`` implement it.

Records cross the registry as dicts in keys.json's shape, never with the key's hash: a key
``{"id", "user", "status", "team", "created_at", "expires_at", "allowed_providers",
"allowed_models", "limits", ...}``, a team ``{"id", "name", "status", "limits", "created_at"}``.
"""

import abc
import hashlib
import re

from ..errors import ApiError

KEY_PATTERN = re.compile(r"^ziri-([A-Za-z0-9][A-Za-z0-9_.-]*)-([0-9a-f]{16,128})\Z")


def hash_key(raw_key):
    """Return the stored form of a raw key."""
    return "sha256:" + hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


class KeyEditError(Exception):
    """An edit that cannot be made; the message says why (the admin API answers 400)."""


class NotFound(KeyEditError):
    """No key (or team) with that id (the admin API answers 404)."""

    def __init__(self, kind, item_id):
        super().__init__(f"no {kind} with id {item_id!r}")
        self.kind = kind


class Conflict(KeyEditError):
    """The edit clashes with what is stored: an id taken, a team that still has keys (409)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class KeySource(abc.ABC):
    """Find the gateway's keys by their hash: what a request reads, and all it reads."""

    @abc.abstractmethod
    def find(self, key_hash):
        """Return the ApiKey stored with ``key_hash``, or None. Cheap: called by every request."""

    @abc.abstractmethod
    def refresh(self):
        """Return {hash: ApiKey} of every key as the source holds it now."""

    @abc.abstractmethod
    def readiness(self):
        """Return None when keys can be found, else a short, secret-free reason."""

    def changed(self):
        """Take note that this process has just changed the keys: later requests must see the change."""

    def key_by_id(self, key_id):
        """Return the ApiKey with ``key_id``, or None (the operator's look-up: a scan, never on a request's path)."""
        return next((key for key in self.refresh().values() if key.id == key_id), None)

    def authenticate(self, raw_key, now):
        """Return the active ApiKey for ``raw_key`` or raise the contract's auth error.

        The key is looked up by its hash (a dict or an indexed column), so the time taken says nothing
        of how much of a key matched; the raw key is never stored or logged.
        """
        if not raw_key:
            raise ApiError(400, "API_KEY_REQUIRED", "API key required. Include X-API-Key header.")
        if not KEY_PATTERN.match(raw_key):
            raise ApiError(
                401, "INVALID_API_KEY_FORMAT", "Invalid API key format. Expected ziri-{userId}-{hex secret}."
            )
        key = self.find(hash_key(raw_key))
        if key is None:
            raise ApiError(403, "API_KEY_INVALID", "Invalid API key.")
        if key.status != "active":
            raise ApiError(403, "API_KEY_REVOKED_OR_DISABLED", "API key has been revoked or disabled.", keyId=key.id)
        if key.team is not None and key.team.status != "active":
            raise ApiError(403, "API_KEY_REVOKED_OR_DISABLED", "The key's team has been disabled.", keyId=key.id,
                           reason="team_disabled")
        if key.expires_at is not None and now >= key.expires_at:
            raise ApiError(
                403, "API_KEY_EXPIRED", "API key has expired.", keyId=key.id, expiredAt=key.expires_at.isoformat()
            )
        return key


class KeyRegistry(abc.ABC):
    """Change the keys and teams; every change writes one audit record naming ``actor`` (``audit.py``).

    Raw keys exist only in the return values of ``create_key`` and ``rotate_key``. Every method
    raises ``NotFound``, ``Conflict`` or ``KeyEditError`` for an edit it refuses, before anything is written.
    """

    @abc.abstractmethod
    def list_keys(self, user=None, team=None):
        """Return every key record (of ``user``, of ``team``, when given): the file's order, or by id."""

    @abc.abstractmethod
    def get_key(self, key_id):
        """Return the key's record."""

    @abc.abstractmethod
    def create_key(self, actor, user, key_id=None, limits=None, **fields):
        """Add a key for ``user``; return (record, raw key). ``fields``: team, expires_at, allowed_*, status."""

    @abc.abstractmethod
    def update_key(self, actor, key_id, limits=None, **fields):
        """Change the key's fields; in ``limits`` a value of None removes that limit. Return the record."""

    @abc.abstractmethod
    def rotate_key(self, actor, key_id):
        """Give the key a new secret (the old one is refused from now on); return (record, raw key)."""

    @abc.abstractmethod
    def delete_key(self, actor, key_id):
        """Remove the key (its ledger records keep its id); return its last record."""

    def revoke_key(self, actor, key_id, at):
        """Disable the key, recording when (``revoked_at``); return its record."""
        return self.update_key(actor, key_id, status="disabled", revoked_at=at)

    @abc.abstractmethod
    def list_teams(self):
        """Return every team record, by id, each with ``keys``: how many keys it has."""

    @abc.abstractmethod
    def get_team(self, team_id):
        """Return the team's record."""

    @abc.abstractmethod
    def create_team(self, actor, name, team_id=None, limits=None, status="active"):
        """Add a team; return its record."""

    @abc.abstractmethod
    def update_team(self, actor, team_id, limits=None, **fields):
        """Change the team's name, status or limits (None removes one); return its record."""

    @abc.abstractmethod
    def delete_team(self, actor, team_id):
        """Remove a team that has no keys (``Conflict`` otherwise); return its last record."""
