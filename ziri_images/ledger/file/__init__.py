"""The file store: the ledger as a JSONL file on local disk (the default).

``jsonl`` appends and reads the file's lines (group commit, fsync, the lock between processes),
``store.FileStore`` decides each reservation against the usage it replayed from the file,
``scan`` reads the file back for replay and reports, and ``checkpoint`` saves the replayed
usage so that a restart need not read the whole file again.
"""
