"""Bring a database's schema up to date: migrations applied once, functions whenever their text changes.

``migrate(connection)`` is safe to run at every deploy (the Procfile's ``release:`` line). In one
transaction, under an advisory lock (two deploys never migrate at once), it applies

- each ``migrations/NNN_name.sql`` the database has not recorded in ``schema_migrations``, in
  order. Never edit one once released: add the next;
- each ``functions/*.sql`` (``CREATE OR REPLACE``) whose text is not the one last applied (its
  SHA-256 is kept in ``schema_functions``), as Flyway's repeatable migrations. Edit these in
  place; a change of a function's arguments or results needs a ``DROP FUNCTION`` in its file.

A current database is left untouched. A database migrated before the squash: see migrate.sql's
``adopt_squashed``.
"""

import hashlib

from .sql import named
from .sql import scripts

_SQL = named("migrate.sql")

#: (version, name, SQL) of migrations/NNN_name.sql, in order.
MIGRATIONS = [(int(file[:3]), file[4:-4], text) for file, text in scripts("migrations")]
LATEST = MIGRATIONS[-1][0]


def schema_version(connection):
    """Return the highest migration applied to the database (0 for an empty one)."""
    if not connection.execute(_SQL["has_schema"]).fetchone()[0]:
        return 0
    return connection.execute(_SQL["schema_version"]).fetchone()[0]


def migrate(connection):
    """Apply what the database lacks; return the names of the migrations and functions applied."""
    applied = []
    with connection.transaction():
        for step in ("lock", "adopt_squashed", "create_bookkeeping"):
            connection.execute(_SQL[step])
        done = {row[0] for row in connection.execute(_SQL["applied_versions"])}
        for version, name, text in MIGRATIONS:
            if version not in done:
                connection.execute(text)
                connection.execute(_SQL["record_version"], {"version": version, "name": name})
                applied.append(f"{version:03d}_{name}")
        hashes = dict(connection.execute(_SQL["applied_functions"]).fetchall())
        for file, text in scripts("functions"):
            name, sha256 = file[:-4], hashlib.sha256(text.encode()).hexdigest()
            if hashes.get(name) != sha256:
                connection.execute(text)
                connection.execute(_SQL["record_function"], {"name": name, "sha256": sha256})
                applied.append(name)
    return applied
