"""Change the keys and teams in the database, each change with its audit record in one transaction.

Every edit locks ``key_store_version`` first, so edits are applied one at a time across every
host (an id found free stays free until it is inserted), and bumps it when it changed anything:
every gateway process then reloads its keys (``postgres.py``). The records are checked by the
key file's own parser (``edits.checked_key``) before they are written.

Deleted keys leave tombstones (their id and hash), and a rotation one for the hash it replaced:
``import_document`` never brings back a key the database has deleted, and writes nothing for
what it already holds, so importing a file twice writes nothing twice.
"""

import copy
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone

from ..ledger.postgres.sql import named
from ..ledger.records import encode_json
from .base import Conflict
from .base import KeyRegistry
from .base import NotFound
from .edits import apply_changes
from .edits import audit_of
from .edits import check_new_id
from .edits import checked_key
from .edits import checked_team
from .edits import new_id
from .edits import new_key_record
from .edits import new_raw_key
from .edits import new_team_record
from .edits import public_view
from .edits import rotate_secret
from .rows import key_record
from .rows import key_row
from .rows import parse_time
from .rows import team_record
from .rows import team_row
from .store import parse_key_document

SQL = named("keys.sql")


def utc_now():
    return datetime.now(timezone.utc)


class PostgresKeyRegistry(KeyRegistry):
    """The keys and teams of the database; ``transaction()`` yields a cursor in one transaction."""

    def __init__(self, transaction, clock=utc_now, on_change=None):
        self._transaction = transaction
        self.clock = clock
        self.on_change = on_change  # called once a change is committed (this process's key source)

    @contextmanager
    def _editing(self, actor):
        """Yield (cursor, changes); write the audit records of ``changes`` and bump the version if there are any.

        Each change is (action, target id, before, after).
        """
        changes = []
        with self._transaction() as cursor:
            cursor.execute(SQL["lock_keys"])
            yield cursor, changes
            if changes:
                cursor.execute(SQL["bump_version"])
            for action, target_id, before, after in changes:
                record = audit_of(self.clock(), actor, action, target_id, before, after)
                cursor.execute(SQL["insert_audit"], {"ts": parse_time(record["ts"]), "audit_id": record["auditId"],
                                                     "record": encode_json(record)})
        if changes and self.on_change is not None:
            self.on_change()

    def _read(self, statement, params):
        with self._transaction() as cursor:
            return cursor.execute(SQL[statement], params).fetchall()

    # --- keys -------------------------------------------------------------------------

    def list_keys(self, user=None, team=None):
        return [public_view(key_record(row)) for row in self._read("select_keys", {"user": user, "team": team})]

    def get_key(self, key_id):
        rows = self._read("select_key", {"id": key_id})
        if not rows:
            raise NotFound("key", key_id)
        return public_view(key_record(rows[0]))

    def _key(self, cursor, key_id):
        row = cursor.execute(SQL["select_key"], {"id": key_id}).fetchone()
        if row is None:
            raise NotFound("key", key_id)
        return key_record(row)

    def _check_key(self, cursor, record):
        team_id = record.get("team")
        row = None if team_id is None else cursor.execute(SQL["select_team"], {"id": team_id}).fetchone()
        return checked_key(record, {} if row is None else {team_id: checked_team(team_record(row))})

    def _id_taken(self, cursor, key_id):
        return cursor.execute(SQL["id_taken"], {"id": key_id}).fetchone()[0]

    def create_key(self, actor, user, key_id=None, limits=None, **fields):
        raw_key = new_raw_key(user)
        with self._editing(actor) as (cursor, changes):
            if key_id is None:
                key_id = new_id("key", lambda candidate: self._id_taken(cursor, candidate))
            else:
                check_new_id(key_id, "key")
                if self._id_taken(cursor, key_id):
                    raise Conflict("KEY_EXISTS", f"a key with id {key_id!r} exists or existed")
            record = new_key_record(key_id, user, raw_key, self.clock())
            apply_changes(record, limits, **fields)
            cursor.execute(SQL["insert_key"], key_row(self._check_key(cursor, record)))
            changes.append(("key.created", key_id, None, record))
        return public_view(record), raw_key

    def _edit_key(self, actor, action, key_id, change):
        """Apply ``change(record)`` to the key's record; write it if it changed. Return (record, its result)."""
        with self._editing(actor) as (cursor, changes):
            record = self._key(cursor, key_id)
            before = copy.deepcopy(record)
            result = change(record)
            if record != before:
                cursor.execute(SQL["update_key"], key_row(self._check_key(cursor, record)))
                if before["hash"] != record["hash"]:
                    cursor.execute(SQL["tombstone"], {"kind": "hash", "value": before["hash"]})
                changes.append((action, key_id, before, record))
        return public_view(record), result

    def update_key(self, actor, key_id, limits=None, **fields):
        return self._edit_key(actor, "key.updated", key_id, lambda record: apply_changes(record, limits, **fields))[0]

    def rotate_key(self, actor, key_id):
        return self._edit_key(actor, "key.rotated", key_id, rotate_secret)

    def delete_key(self, actor, key_id):
        with self._editing(actor) as (cursor, changes):
            record = self._key(cursor, key_id)
            cursor.execute(SQL["delete_key"], {"id": key_id})
            for kind, value in (("id", key_id), ("hash", record["hash"])):
                cursor.execute(SQL["tombstone"], {"kind": kind, "value": value})
            changes.append(("key.deleted", key_id, record, None))
        return public_view(record)

    # --- teams ------------------------------------------------------------------------

    def list_teams(self):
        return [team_record(row) for row in self._read("select_teams", {})]

    def get_team(self, team_id):
        rows = self._read("select_team", {"id": team_id})
        if not rows:
            raise NotFound("team", team_id)
        return team_record(rows[0])

    def _team(self, cursor, team_id):
        row = cursor.execute(SQL["select_team"], {"id": team_id}).fetchone()
        if row is None:
            raise NotFound("team", team_id)
        return team_record(row)

    def create_team(self, actor, name, team_id=None, limits=None, status="active"):
        with self._editing(actor) as (cursor, changes):
            def taken(candidate):
                return cursor.execute(SQL["select_team"], {"id": candidate}).fetchone() is not None

            if team_id is None:
                team_id = new_id("team", taken)
            else:
                check_new_id(team_id, "team")
                if taken(team_id):
                    raise Conflict("TEAM_EXISTS", f"a team with id {team_id!r} already exists")
            record = new_team_record(team_id, name, status, self.clock())
            apply_changes(record, limits)
            checked_team(record)
            cursor.execute(SQL["insert_team"], team_row(record))
            changes.append(("team.created", team_id, None, record))
        return {**record, "keys": 0}

    def update_team(self, actor, team_id, limits=None, **fields):
        with self._editing(actor) as (cursor, changes):
            record = self._team(cursor, team_id)
            before = copy.deepcopy(record)
            apply_changes(record, limits, **fields)
            checked_team(record)
            if record != before:
                cursor.execute(SQL["update_team"], team_row(record))
                changes.append(("team.updated", team_id, before, record))
        return record

    def delete_team(self, actor, team_id):
        with self._editing(actor) as (cursor, changes):
            record = self._team(cursor, team_id)
            if record["keys"]:
                raise Conflict("TEAM_NOT_EMPTY", f"team {team_id!r} has {record['keys']} key(s): move or delete "
                                                 "them first")
            cursor.execute(SQL["delete_team"], {"id": team_id})
            changes.append(("team.deleted", team_id, record, None))
        return record

    # --- import -----------------------------------------------------------------------

    def import_document(self, actor, document, path):
        """Write the teams and keys of a key file the database does not hold; return the counts (a Counter).

        ``keys``/``teams``: written; ``existing``: already there (by id, or a key by its hash);
        ``deleted``: keys the database deleted (or whose secret it rotated away), never brought back.
        """
        parse_key_document(document, path)  # the whole file is valid, or nothing is written
        counts = Counter()
        with self._editing(actor) as (cursor, changes):
            teams = {row[0] for row in cursor.execute(SQL["select_teams"]).fetchall()}
            for team_id, team in (document.get("teams") or {}).items():
                if team_id in teams:
                    counts["existing"] += 1
                    continue
                record = {"id": team_id, **team}
                cursor.execute(SQL["insert_team"], team_row(record))
                changes.append(("team.imported", team_id, None, record))
                counts["teams"] += 1
            tombstones = set(cursor.execute(SQL["tombstones"]).fetchall())
            for record in document["keys"]:
                stored = cursor.execute(SQL["select_key"], {"id": record["id"]}).fetchone() or cursor.execute(
                    SQL["key_with_hash"], {"hash": record["hash"]}).fetchone()
                if stored:
                    counts["existing"] += 1  # left as the database has it (a rotated key keeps its new secret)
                elif ("id", record["id"]) in tombstones or ("hash", record["hash"]) in tombstones:
                    counts["deleted"] += 1
                else:
                    cursor.execute(SQL["insert_key"], key_row(record))
                    changes.append(("key.imported", record["id"], None, record))
                    counts["keys"] += 1
        return counts
