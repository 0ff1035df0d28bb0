"""The charge spool (ledger/postgres/spool.py): an entry the disk refused is cut back, so it is never written later.

A charge goes to the spool while the database is away; if the spool refuses it too, the client
gets 503 and the reservation stays open, to be charged at its amount when it expires. The entry
must then be gone: flushed later, it would be a charge saying the client was served.
"""

import errno
import os

import pytest

from ledger.postgres.test_pgstore import PRICE
from ledger.postgres.test_pgstore import Key
from ledger.postgres.test_pgstore import details
from ledger.postgres.test_pgstore import make_store  # noqa: F401  (a fixture, used by name)
from ledger.postgres.test_pgstore import outcome
from ziri_images.errors import ApiError
from ziri_images.ledger.postgres.spool import ChargeSpool


def fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)


def test_an_entry_whose_fsync_failed_is_cut_back_and_never_flushed(tmp_path, monkeypatch):
    spool = ChargeSpool(str(tmp_path / "spool"))
    spool.put({"n": 1})
    fail_fsync(monkeypatch)

    with pytest.raises(OSError):
        spool.put({"n": 2})

    monkeypatch.undo()
    spool.put({"n": 3})
    flushed = []
    assert spool.flush(flushed.append) == 2
    assert flushed == [{"n": 1}, {"n": 3}]


def test_a_charge_refused_to_its_client_by_the_spool_is_never_written_as_served(
        make_store, database, monkeypatch):  # noqa: F811  (the fixture imported above)
    store = make_store()
    held = store.reserve(Key(), PRICE, details())

    def database_away(sql, params):
        raise ApiError(503, "LEDGER_UNAVAILABLE", "the database is unavailable", should_retry=True)

    monkeypatch.setattr(store.database, "call", database_away)
    fail_fsync(monkeypatch)
    with pytest.raises(ApiError) as refused:
        store.settle(held, outcome(held, 0.04))
    monkeypatch.undo()
    assert (refused.value.status, refused.value.code) == (503, "LEDGER_UNAVAILABLE")

    store.lease.run_once()  # the database is back: the housekeeping pass flushes the spool

    assert [record["type"] for record in database.records()] == ["reservation"]
    assert store.key_usage(Key()).in_flight == 1  # held: charged at its amount when it expires
