"""Keys in the database, end to end: two gunicorn gateways on one database, a key managed over the admin API.

The delay stated is ZIRI_KEYS_REFRESH_SECONDS (1 s, the default) plus one reload; the bound
asserted leaves room for a loaded machine. bench/key_propagation.py measures the delay itself.
"""

import time

import pytest
import requests

pytestmark = pytest.mark.real_http

TOKEN = "admin-token-e2e-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BOUND = 1.0 + 2.0


@pytest.fixture
def store():
    return "postgres"


@pytest.fixture
def worker_class():
    pytest.importorskip("gevent")
    return "gevent"


def status(host, raw_key):
    return requests.get(f"{host.url}/api/me/usage", headers={"X-API-Key": raw_key}, timeout=5).status_code


def until(host, raw_key, expected):
    """Return the seconds until ``host`` answers ``expected`` for ``raw_key`` (asked every 20 ms)."""
    started = time.monotonic()
    while status(host, raw_key) != expected:
        assert time.monotonic() - started < BOUND, f"{host.url} still not {expected} after {BOUND}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_key_managed_on_one_gateway_is_seen_by_the_other_within_the_delay(start_gateway, tmp_path):
    one, other = (start_gateway({"alice": {}}, workers=1, threads=2, directory=tmp_path / name,
                                extra_env={"ZIRI_ADMIN_TOKEN": TOKEN}) for name in ("host-a", "host-b"))

    created = requests.post(f"{one.url}/admin/api/keys", json={"user": "carol"}, headers=BEARER, timeout=5)
    assert created.status_code == 201
    key_id, raw_key = created.json()["record"]["id"], created.json()["key"]
    assert status(one, raw_key) == 200
    assert until(other, raw_key, 200) < BOUND

    rotated = requests.post(f"{other.url}/admin/api/keys/{key_id}/rotate", headers=BEARER, timeout=5).json()["key"]
    assert status(other, raw_key) == 403
    assert until(one, raw_key, 403) < BOUND and status(one, rotated) == 200

    assert requests.delete(f"{one.url}/admin/api/keys/{key_id}", headers=BEARER, timeout=5).status_code == 200
    assert until(other, rotated, 403) < BOUND and status(one, rotated) == 403
    with one.database.connect() as connection:
        audit = [row[0] for row in connection.execute("SELECT record FROM audit_records ORDER BY id")]
    assert [record["action"] for record in audit] == ["key.created", "key.rotated", "key.deleted"]
