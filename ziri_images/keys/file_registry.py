"""Change the keys and teams of keys.json (no database), each change followed by its audit record.

Edits go through ``keyfile`` (an exclusive lock, the whole file checked by the gateway's parser,
an atomic replace), so the gateway sees them on its next request. Teams live in the file's
``teams`` object (``{"<team id>": {"name", "status", "limits", "created_at"}}``) and a key names
its team in ``team``. Once the file is written, the change's audit record is appended to the
audit file beside the ledger (``ledger/file/audit.py``): it records only what was written.
"""

import copy
from datetime import datetime
from datetime import timezone

from .base import Conflict
from .base import KeyRegistry
from .base import NotFound
from .edits import apply_changes
from .edits import audit_of
from .edits import check_new_id
from .edits import checked_team
from .edits import new_id
from .edits import new_key_record
from .edits import new_raw_key
from .edits import new_team_record
from .edits import public_view
from .edits import rotate_secret
from .keyfile import edit_key
from .keyfile import editing
from .keyfile import find_record
from .keyfile import read_document


def utc_now():
    return datetime.now(timezone.utc)


def _team_view(team_id, team, document):
    """Return a team of the file as a record: its id, its fields, and how many keys it has."""
    keys = sum(1 for record in document["keys"] if record.get("team") == team_id)
    return {"id": team_id, **team, "keys": keys}


class FileKeyRegistry(KeyRegistry):
    """The keys and teams of one keys.json; ``audit`` is the ``AuditFile`` the changes are recorded in."""

    def __init__(self, path, audit, clock=utc_now):
        self.path = path
        self.audit = audit
        self.clock = clock

    def _record(self, actor, action, target_id, before, after):
        if before != after:
            self.audit.append([audit_of(self.clock(), actor, action, target_id, before, after)])

    # --- keys -------------------------------------------------------------------------

    def list_keys(self, user=None, team=None):
        records = read_document(self.path)["keys"]  # in the file's order
        return [public_view(record) for record in records
                if (user is None or record["user"] == user) and (team is None or record.get("team") == team)]

    def get_key(self, key_id):
        return public_view(find_record(read_document(self.path), key_id))

    def create_key(self, actor, user, key_id=None, limits=None, **fields):
        raw_key = new_raw_key(user)
        with editing(self.path) as document:
            taken = {record.get("id") for record in document["keys"]}
            if key_id is None:
                key_id = new_id("key", taken)
            else:
                check_new_id(key_id, "key")
                if key_id in taken:
                    raise Conflict("KEY_EXISTS", f"a key with id {key_id!r} already exists")
            record = new_key_record(key_id, user, raw_key, self.clock())
            apply_changes(record, limits, **fields)
            document["keys"].append(record)
        self._record(actor, "key.created", key_id, None, record)
        return public_view(record), raw_key

    def _edit_key(self, actor, action, key_id, change):
        before, after, result = edit_key(self.path, key_id, change)
        self._record(actor, action, key_id, before, after)
        return public_view(after), result

    def update_key(self, actor, key_id, limits=None, **fields):
        return self._edit_key(actor, "key.updated", key_id,
                              lambda record, _document: apply_changes(record, limits, **fields))[0]

    def rotate_key(self, actor, key_id):
        return self._edit_key(actor, "key.rotated", key_id, rotate_secret)

    def delete_key(self, actor, key_id):
        before, _after, _ = edit_key(self.path, key_id, lambda record, document: document["keys"].remove(record))
        self._record(actor, "key.deleted", key_id, before, None)
        return public_view(before)

    # --- teams ------------------------------------------------------------------------

    def list_teams(self):
        document = read_document(self.path)
        return [_team_view(team_id, team, document) for team_id, team in sorted((document.get("teams") or {}).items())]

    def get_team(self, team_id):
        document = read_document(self.path)
        team = (document.get("teams") or {}).get(team_id)
        if team is None:
            raise NotFound("team", team_id)
        return _team_view(team_id, team, document)

    def create_team(self, actor, name, team_id=None, limits=None, status="active"):
        with editing(self.path) as document:
            teams = document.setdefault("teams", {})
            if team_id is None:
                team_id = new_id("team", teams)
            else:
                check_new_id(team_id, "team")
                if team_id in teams:
                    raise Conflict("TEAM_EXISTS", f"a team with id {team_id!r} already exists")
            record = new_team_record(team_id, name, status, self.clock())
            apply_changes(record, limits)
            checked_team(record)
            teams[team_id] = {name: value for name, value in record.items() if name != "id"}
        self._record(actor, "team.created", team_id, None, record)
        return {**record, "keys": 0}

    def _edit_team(self, team_id, change):
        """Apply ``change(record, document)`` to the team's record under the lock; return (before, after) views.

        ``change`` may remove the team from ``document["teams"]``: ``after`` is then None.
        """
        with editing(self.path) as document:
            teams = document.get("teams") or {}
            if team_id not in teams:
                raise NotFound("team", team_id)
            before = _team_view(team_id, copy.deepcopy(teams[team_id]), document)
            after = copy.deepcopy(before)
            change(after, document)
            if team_id not in teams:
                return before, None  # removed by ``change``
            checked_team(after)
            teams[team_id] = {name: value for name, value in after.items() if name not in ("id", "keys")}
        return before, after

    def update_team(self, actor, team_id, limits=None, **fields):
        before, after = self._edit_team(team_id, lambda record, _document: apply_changes(record, limits, **fields))
        self._record(actor, "team.updated", team_id, before, after)
        return after

    def delete_team(self, actor, team_id):
        def remove(record, document):
            if record["keys"]:
                raise Conflict("TEAM_NOT_EMPTY", f"team {team_id!r} has {record['keys']} key(s): move or delete "
                                                 "them first")
            del document["teams"][team_id]

        before, _after = self._edit_team(team_id, remove)
        self._record(actor, "team.deleted", team_id, before, None)
        return before
