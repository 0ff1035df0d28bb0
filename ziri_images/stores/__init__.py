"""Where the ledger's records are kept: one interface (``Store``), one module per store.

``file.FileStore`` keeps today's JSONL ledger on local disk; ``postgres.PostgresStore`` keeps
the same records in PostgreSQL. ``gateway.py`` chooses one; nothing else knows which.
"""
