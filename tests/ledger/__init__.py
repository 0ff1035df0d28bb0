"""Tests of ziri_images/ledger/: records, limit checks, usage, the report."""
