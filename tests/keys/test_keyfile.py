"""keyfile: locked, validated, atomic edits of keys.json that a running gateway picks up."""

import fcntl
import json
import os
import stat
import threading
import time
from datetime import datetime
from datetime import timezone

import pytest
from conftest import DEMO_KEY
from conftest import USER_KEY
from conftest import read_keys

from ziri_images.errors import ApiError
from ziri_images.keys import keyfile
from ziri_images.keys.store import KEY_PATTERN
from ziri_images.keys.store import KeyStore
from ziri_images.keys.store import hash_key

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def authenticate(store, raw_key):
    """Return the key id the store accepts ``raw_key`` for, or the error code it answers."""
    try:
        return store.authenticate(raw_key, NOW).id
    except ApiError as error:
        return error.code


def test_create_stores_only_the_hash_of_a_well_formed_key(keys_path):
    record, raw_key = keyfile.create_key(str(keys_path), "carol", limits={"daily_spend_limit": 2.5})

    assert KEY_PATTERN.match(raw_key).group(1) == "carol"
    assert len(KEY_PATTERN.match(raw_key).group(2)) == 32
    text = keys_path.read_text()
    assert raw_key not in text
    stored = read_keys(keys_path)[-1]
    assert stored["hash"] == hash_key(raw_key)
    assert stored == {**record, "hash": hash_key(raw_key)}
    assert stored["limits"] == {"daily_spend_limit": 2.5}
    assert "hash" not in record


def test_create_makes_a_missing_file(tmp_path):
    path = tmp_path / "new-keys.json"
    record, raw_key = keyfile.create_key(str(path), "dave", key_id="key_dave")

    assert [key["id"] for key in read_keys(path)] == ["key_dave"]
    assert read_keys(path)[0]["hash"] == hash_key(raw_key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record["status"] == "active"


@pytest.mark.parametrize("user", [
    pytest.param("bad user", id="space"),
    pytest.param("-alice", id="leading-dash"),
    pytest.param("", id="empty"),
    pytest.param("a/b", id="slash"),
    pytest.param("zoë", id="non-ascii"),
])
def test_create_refuses_users_that_cannot_be_part_of_a_key(keys_path, user):
    before = keys_path.read_bytes()
    with pytest.raises(keyfile.KeyFileError, match="cannot be part of a key"):
        keyfile.create_key(str(keys_path), user)
    assert keys_path.read_bytes() == before


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda path: keyfile.update_key(path, "key_user", limits={"daily_spend_limit": -1}),
                 "must be a number >= 0", id="negative-limit"),
    pytest.param(lambda path: keyfile.update_key(path, "key_user", expires_at="tomorrow"),
                 "ISO 8601", id="bad-expiry"),
    pytest.param(lambda path: keyfile.update_key(path, "key_user", allowed_models="dall-e-3"),
                 "list of names", id="allow-list-not-a-list"),
    pytest.param(lambda path: keyfile.create_key(path, "erin", key_id="key_user"),
                 "already exists", id="duplicate-id"),
    pytest.param(lambda path: keyfile.set_status(path, "key_user", "revoked"),
                 "status must be one of", id="unknown-status"),
    pytest.param(lambda path: keyfile.rotate_key(path, "key_nobody"),
                 "no key with id", id="unknown-id"),
])
def test_invalid_edits_leave_the_file_untouched(keys_path, edit, message):
    before = keys_path.read_bytes()
    with pytest.raises(keyfile.KeyFileError, match=message):
        edit(str(keys_path))
    assert keys_path.read_bytes() == before
    assert [name for name in os.listdir(keys_path.parent) if name.endswith(".tmp")] == []


def test_a_broken_file_is_not_edited(keys_path):
    keys_path.write_text('{"keys": [{"id": "x"}]}')
    with pytest.raises(keyfile.KeyFileError, match="fix the file by hand"):
        keyfile.set_status(str(keys_path), "x", "disabled")
    assert keys_path.read_text() == '{"keys": [{"id": "x"}]}'


def test_edits_replace_the_file_keeping_its_mode(keys_path):
    os.chmod(keys_path, 0o640)
    inode = keys_path.stat().st_ino

    keyfile.update_key(str(keys_path), "key_user", limits={"requests_per_minute": 30, "daily_spend_limit": None})

    assert keys_path.stat().st_ino != inode  # a new file moved into place, not rewritten in place
    assert stat.S_IMODE(keys_path.stat().st_mode) == 0o640
    record = next(key for key in read_keys(keys_path) if key["id"] == "key_user")
    assert record["limits"] == {"monthly_spend_limit": 50.0, "requests_per_minute": 30}
    assert sorted(os.listdir(keys_path.parent)) == ["keys.json", "keys.json.lock"]


def test_an_edit_waits_for_the_lock(keys_path):
    lock_fd = os.open(str(keys_path) + keyfile.LOCK_SUFFIX, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    before = keys_path.read_bytes()
    editor = threading.Thread(target=keyfile.set_status, args=(str(keys_path), "key_user", "disabled"))
    try:
        editor.start()
        editor.join(0.3)
        assert editor.is_alive()
        assert keys_path.read_bytes() == before
    finally:
        os.close(lock_fd)
    editor.join(5)
    assert not editor.is_alive()
    assert next(key for key in read_keys(keys_path) if key["id"] == "key_user")["status"] == "disabled"


def test_concurrent_edits_are_all_kept(keys_path, monkeypatch):
    write = keyfile.write_atomically

    def slow_write(path, document):
        time.sleep(0.02)  # widen the read-modify-write window: without the lock, edits would be lost
        write(path, document)

    monkeypatch.setattr(keyfile, "write_atomically", slow_write)
    users = [f"user{number}" for number in range(8)]
    threads = [threading.Thread(target=keyfile.create_key, args=(str(keys_path), user)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert {key["user"] for key in read_keys(keys_path)} >= set(users)
    assert len(read_keys(keys_path)) == 3 + len(users)


def test_a_running_key_store_sees_every_edit_without_a_restart(keys_path):
    store = KeyStore(str(keys_path))
    path = str(keys_path)
    assert authenticate(store, USER_KEY) == "key_user"

    keyfile.set_status(path, "key_user", "disabled")
    assert authenticate(store, USER_KEY) == "API_KEY_REVOKED_OR_DISABLED"

    keyfile.set_status(path, "key_user", "active")
    assert authenticate(store, USER_KEY) == "key_user"

    _, rotated = keyfile.rotate_key(path, "key_user")
    assert authenticate(store, USER_KEY) == "API_KEY_INVALID"
    assert authenticate(store, rotated) == "key_user"

    # Same size, back to back: the change must still be noticed.
    _, rotated_again = keyfile.rotate_key(path, "key_user")
    assert authenticate(store, rotated) == "API_KEY_INVALID"
    assert authenticate(store, rotated_again) == "key_user"

    keyfile.update_key(path, "key_user", expires_at="2026-11-01T00:00:00Z")
    assert authenticate(store, rotated_again) == "API_KEY_EXPIRED"

    _, created = keyfile.create_key(path, "frank", key_id="key_frank")
    assert authenticate(store, created) == "key_frank"
    assert authenticate(store, DEMO_KEY) == "key_demo"


def test_listing_never_shows_hashes(keys_path):
    listed = keyfile.list_keys(str(keys_path))

    assert [record["id"] for record in listed] == ["key_demo", "key_user", "key_disabled"]
    assert all("hash" not in record for record in listed)
    assert "sha256:" not in json.dumps(listed)


def test_listing_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(keyfile.KeyFileError, match="not found"):
        keyfile.list_keys(str(tmp_path / "absent.json"))
