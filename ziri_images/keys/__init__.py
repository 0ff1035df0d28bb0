"""The gateway keys and teams: who may call, and within which limits.

Two key stores behind one interface (``base.py``): keys.json without a database (``store.KeyStore``
reads it, ``keyfile`` edits it under a lock, ``reloading.ReloadingFile`` notices when it changed on
disk), and with one the database's tables (``postgres.py`` reads them, ``postgres_registry.py``
edits them). Every edit goes through a ``KeyRegistry`` and writes an audit record.
"""
