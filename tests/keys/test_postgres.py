"""The database as the key store: two instances on one database see each other's changes within the stated delay.

Each app here is an instance of its own (its own key source and copy of the keys); the test
database is the one they share. The delay stated: ZIRI_KEYS_REFRESH_SECONDS plus one reload.
"""

import logging
import time

import pytest
from conftest import USER_KEY

from ziri_images.errors import ApiError
from ziri_images.gateway import database_keys
from ziri_images.keys.postgres import PostgresKeySource
from ziri_images.keys.store import hash_key
from ziri_images.ledger.postgres.pool import DatabasePool

pytestmark = pytest.mark.stores("postgres")

TOKEN = "admin-token-abcdef0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
REFRESH = 0.3
# The stated delay, and room for a loaded machine (a reload is a few milliseconds here).
WITHIN = REFRESH + 1.0


def status_of(client, raw_key):
    return client.get("/api/me/usage", headers={"X-API-Key": raw_key}).status_code


def seconds_until(client, raw_key, status):
    """Return how long it took ``client`` to answer ``status`` for ``raw_key`` (asked every 10 ms), or fail."""
    started = time.monotonic()
    while status_of(client, raw_key) != status:
        assert time.monotonic() - started < WITHIN + 2, f"still not {status} after {WITHIN + 2}s"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def instances(make_app):
    return [make_app(ADMIN_TOKEN=TOKEN, KEYS_REFRESH_SECONDS=REFRESH).test_client() for _ in range(2)]


def test_a_key_created_on_one_instance_is_accepted_by_the_other_within_the_delay(instances):
    one, other = instances
    assert status_of(other, USER_KEY) == 200  # the other has loaded its keys (and will check again in REFRESH)

    created = one.post("/admin/api/keys", json={"user": "carol"}, headers=BEARER).get_json()
    raw_key = created["key"]

    assert status_of(one, raw_key) == 200  # the instance that made the change sees it at once
    assert seconds_until(other, raw_key, 200) <= WITHIN


@pytest.mark.parametrize("change", ["rotate", "delete", "disable"])
def test_a_rotated_deleted_or_disabled_key_is_refused_by_both_within_the_delay(instances, change):
    one, other = instances
    assert status_of(one, USER_KEY) == status_of(other, USER_KEY) == 200

    if change == "rotate":
        new_key = other.post("/admin/api/keys/key_user/rotate", headers=BEARER).get_json()["key"]
    elif change == "delete":
        assert other.delete("/admin/api/keys/key_user", headers=BEARER).status_code == 200
    else:
        assert other.patch("/admin/api/keys/key_user", json={"status": "disabled"}, headers=BEARER).status_code == 200

    assert status_of(other, USER_KEY) == 403  # at once where it was made
    assert seconds_until(one, USER_KEY, 403) <= WITHIN
    if change == "rotate":
        assert status_of(one, new_key) == status_of(other, new_key) == 200


def test_with_no_refresh_interval_every_request_sees_every_change(make_app):
    one, other = (make_app(ADMIN_TOKEN=TOKEN, KEYS_REFRESH_SECONDS=0).test_client() for _ in range(2))
    raw_key = one.post("/admin/api/keys", json={"user": "dave"}, headers=BEARER).get_json()["key"]
    assert status_of(other, raw_key) == 200
    one.post("/admin/api/keys/key_user/rotate", headers=BEARER)
    assert status_of(other, USER_KEY) == 403


def unreachable_pool():
    return DatabasePool("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1, timeout=0.1, queue_seconds=0.1)


def test_the_keys_loaded_stay_in_service_while_the_database_is_away(app, database, caplog):
    # ``app`` has put keys.json's keys in the database. Loaded at start-up from it, then checked
    # through a pool that cannot reach it.
    source = PostgresKeySource(unreachable_pool(), database.url, 5, refresh_seconds=0)
    source.start()
    try:
        caplog.set_level(logging.WARNING, logger="ziri_images")
        assert source.find(hash_key(USER_KEY)).id == "key_user"
        assert source.find(hash_key(USER_KEY)).id == "key_user"
        warnings = [record.getMessage() for record in caplog.records if record.name == "ziri_images"
                    and record.levelno == logging.WARNING]
        assert warnings == ["keys: the database did not answer; the keys loaded stay in service until it does"]
    finally:
        source.database.close()


def test_a_process_that_never_loaded_its_keys_answers_503_until_it_can():
    source = PostgresKeySource(unreachable_pool(), "postgresql://postgres@127.0.0.1:1/nowhere", 0.3,
                               refresh_seconds=0)
    try:
        assert source.start().startswith("keys: database 127.0.0.1:1/nowhere not reachable yet")
        with pytest.raises(ApiError) as refused:
            source.authenticate(USER_KEY, None)
        assert (refused.value.status, refused.value.code, refused.value.should_retry) == (503, "KEYS_UNAVAILABLE",
                                                                                         True)
        assert source.readiness() == "the keys could not be read from the database"
    finally:
        source.database.close()


def test_the_database_holding_no_keys_beside_a_key_file_is_logged(app, database, keys_path, caplog):
    with database.connect() as connection:
        connection.execute("TRUNCATE api_keys, teams")  # as before a release step imports keys.json
    caplog.set_level(logging.WARNING, logger="ziri_images")

    gateway = app.extensions["ziri_images"]
    database_keys(app.config, gateway.store, gateway.clock)

    assert any(f"ziri-images keys import {keys_path}" in record.getMessage() for record in caplog.records)
