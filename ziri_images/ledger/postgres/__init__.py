"""The PostgreSQL store: the same records in one table, shared by every host.

``store.PostgresStore`` is the store; ``migrate`` applies ``migrations/*.sql`` (the tables, once
each) and ``functions/*.sql`` (the request path's decisions in the database, whenever their text
changes), ``sql`` reads the .sql files and holds the statements the request path runs
(``queries.sql``), ``connection`` names a database and its errors, ``pool`` the connections,
``batch`` the group commit per key, ``lease`` the worker leases that let another host expire a
dead worker's reservations, ``spool`` the charges kept on local disk while the database is away,
``archive`` the export, import and spend report (``archive.sql``) and ``refusals`` the refusal
counts (``refusals.sql``).
"""
