"""Tests of ziri_images/ledger/file/: the JSONL ledger, its store and checkpoints."""
