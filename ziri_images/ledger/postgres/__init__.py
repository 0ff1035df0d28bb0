"""The PostgreSQL store: the same records in one table, shared by every host.

``store.PostgresStore`` is the store; ``schema`` creates and migrates the tables and functions,
``sql`` holds the statements the request path runs, ``pool`` the connections, ``batch`` the group
commit per key, ``lease`` the worker leases that let another host expire a dead worker's
reservations, ``spool`` the charges kept on local disk while the database is away, ``clock`` the
database's clock every host is judged on, ``report`` the spend report and ``refusals`` the
refusal counts.
"""
