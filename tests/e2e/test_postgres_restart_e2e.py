"""The PostgreSQL store end to end while its database restarts under load.

The server restarted is a throwaway cluster of this test's own (tests/throwaway_cluster.py),
never the shared one the rest of the suite uses: a restart disconnects every client.
"""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from database import TestDatabase

from e2e.test_postgres_e2e import store  # noqa: F401  (the PostgreSQL store, under gevent: as that module)
from e2e.test_postgres_e2e import worker_class  # noqa: F401

pytestmark = pytest.mark.real_http

# A reservation expires 5 s after it is made, so the restart test can wait for every one.
SHORT_EXPIRY = {"ZIRI_UPSTREAM_CONNECT_TIMEOUT": 1, "ZIRI_UPSTREAM_READ_TIMEOUT": 3,
                "ZIRI_RESERVATION_GRACE_SECONDS": 1}


@pytest.fixture
def database(throwaway_cluster):
    """The gateways' database, on the throwaway cluster (removed with it)."""
    return TestDatabase(throwaway_cluster.url)


def test_a_database_restart_under_load_loses_no_charge_and_charges_none_twice(throwaway_cluster, start_gateway):
    # The cluster first: it is removed after the gateways have stopped.
    gateway = start_gateway({"alice": {}}, workers=2, extra_env=SHORT_EXPIRY)
    plan = [f"fox {number} [stub:delay={0.2 + (number % 5) / 10:.1f}]" for number in range(80)]

    def send(prompt):
        try:
            response = gateway.generate("alice", prompt=prompt, timeout=20)
        except requests.RequestException as error:
            return None, type(error).__name__, None
        return response.status_code, response.json(), response.headers

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(send, prompt) for prompt in plan]
        gateway.process.wait_until(lambda: len(gateway.records("charge")) >= 10, "some charges before the restart")
        throwaway_cluster.restart()
        outcomes = [future.result(timeout=60) for future in futures]

    statuses = Counter(status for status, _, _ in outcomes)
    assert set(statuses) <= {200, 503}, statuses  # no other 5xx, no connection cut short
    assert statuses[200] >= 10
    for status, body, headers in outcomes:
        if status == 503:
            assert (body["code"], headers["x-should-retry"]) == ("LEDGER_UNAVAILABLE", "true")
    succeeded = {body["_meta"]["requestId"]: body for status, body, _ in outcomes if status == 200}

    def settled():
        charged = {r["requestId"] for r in gateway.records("charge")}
        return set(succeeded) <= charged  # the spooled charges reached the database

    gateway.process.wait_until(settled, "the spooled charges", seconds=30)
    records = gateway.ledger()
    charges = Counter(r["requestId"] for r in records if r["type"] == "charge")
    assert max(charges.values()) == 1  # nothing charged twice
    for record in records:
        if record["type"] == "charge" and record["requestId"] in succeeded:
            assert record["cost"] == succeeded[record["requestId"]]["_meta"]["cost"]["actual"] > 0
    reserved = {r["requestId"] for r in records if r["type"] == "reservation"}
    assert set(succeeded) <= reserved
