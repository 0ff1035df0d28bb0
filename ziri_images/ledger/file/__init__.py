"""The file store: the ledger as a JSONL file on local disk (the default).

``jsonl`` appends and reads the file's lines (fsync, the lock between processes) and
``group_commit`` batches concurrent charges into one of its transactions; ``store.FileStore``
decides each reservation against the usage it replayed from the file, ``stale`` finds the
reservations of dead workers and past their time, ``archive`` exports, imports and reports,
``readiness`` says whether the ledger can take a write; ``scan`` reads the file back for replay
and reports, and ``checkpoint`` saves the replayed usage so that a restart need not read the
whole file again.
"""
