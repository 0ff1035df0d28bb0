"""Tests of ziri_images/ledger/postgres/: the PostgreSQL store on the real server."""
