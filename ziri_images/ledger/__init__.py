"""The ledger: every reservation, charge and expiry the gateway records, and where it keeps them.

It owns the record (``records`` builds, encodes and parses the three types), the limit decisions
(``checks``), a key's usage folded from its records (``usage``), the spend report (``report``)
and the interface every store implements (``base.Store``). ``file/`` keeps the records in a JSONL
file on local disk, ``postgres/`` in PostgreSQL; ``gateway.py`` chooses one, nothing else knows which.
"""
