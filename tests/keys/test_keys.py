"""Key format, hashing, keys.json validation and live reloading."""

import hashlib
import json
import logging
import threading
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from conftest import DEMO_KEY
from conftest import key_record
from conftest import write_keys

from ziri_images.errors import ApiError
from ziri_images.errors import ConfigError
from ziri_images.keys.store import KEY_PATTERN
from ziri_images.keys.store import KeyStore
from ziri_images.keys.store import hash_key
from ziri_images.keys.store import load_key_file

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
ALICE = "ziri-alice-0123456789abcdef"
BOB = "ziri-bob-fedcba9876543210"


@pytest.mark.parametrize(
    ("raw_key", "user_id"),
    [
        pytest.param(DEMO_KEY, "user-123", id="demo-user-id-with-hyphen"),
        pytest.param("ziri-alice-0123456789abcdef", "alice", id="16-hex"),
        pytest.param("ziri-a.b_c-d-" + "f" * 128, "a.b_c-d", id="128-hex-dots-underscores"),
        pytest.param("ziri-Team7-" + "0" * 32, "Team7", id="mixed-case-user"),
        pytest.param("ziri-x-abcdef0123456789-0123456789abcdef", "x-abcdef0123456789", id="hex-looking-user-part"),
    ],
)
def test_key_pattern_accepts(raw_key, user_id):
    match = KEY_PATTERN.match(raw_key)

    assert match is not None
    assert match.group(1) == user_id


@pytest.mark.parametrize(
    "raw_key",
    [
        pytest.param("", id="empty"),
        pytest.param("sk-0123456789abcdef", id="openai-key"),
        pytest.param("ziri-alice-0123456789abcde", id="15-hex"),
        pytest.param("ziri-alice-" + "a" * 129, id="129-hex"),
        pytest.param("ziri-alice-0123456789ABCDEF", id="uppercase-hex"),
        pytest.param("ziri-alice-0123456789abcdeg", id="non-hex"),
        pytest.param("ziri--0123456789abcdef", id="empty-user"),
        pytest.param("ziri-_alice-0123456789abcdef", id="user-starts-with-underscore"),
        pytest.param("ziri-0123456789abcdef", id="no-user"),
        pytest.param("ZIRI-alice-0123456789abcdef", id="uppercase-prefix"),
        pytest.param(" ziri-alice-0123456789abcdef", id="leading-space"),
        pytest.param("ziri-alice-0123456789abcdef\n", id="trailing-newline"),
        pytest.param("ziri-al ice-0123456789abcdef", id="space-in-user"),
    ],
)
def test_key_pattern_rejects(raw_key):
    assert KEY_PATTERN.match(raw_key) is None


def test_hash_key_is_prefixed_sha256_of_the_whole_key():
    assert hash_key(ALICE) == "sha256:" + hashlib.sha256(ALICE.encode()).hexdigest()
    # The published demo key's hash, as shipped in keys.json.
    assert hash_key(DEMO_KEY) == "sha256:2c8bdc66ef3727414562c8483fe08bc04ffa8cb93dc61fbb5456a19e08382d6d"


def alice(**changes):
    record = key_record(ALICE, key_id="key_alice", user="alice")
    record.update(changes)
    return {name: value for name, value in record.items() if value is not None}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(None, "not found", id="missing-file"),
        pytest.param('{"keys": [', "Expecting value", id="bad-json"),
        pytest.param([], "expected an object with a 'keys' list", id="top-level-list"),
        pytest.param({"keys": {}}, "expected an object with a 'keys' list", id="keys-not-a-list"),
        pytest.param({"keys": ["key"]}, "keys[0]: expected an object", id="entry-not-an-object"),
        pytest.param({"keys": [alice(hash=None)]}, "keys[0]: 'hash' is required", id="missing-hash"),
        pytest.param({"keys": [alice(id=None)]}, "keys[0]: 'id' is required", id="missing-id"),
        pytest.param({"keys": [alice(hash="md5:abc")]}, "'hash' must be 'sha256:' followed by 64 hex digits",
                     id="bad-hash"),
        pytest.param({"keys": [alice(status="revoked")]}, "keys[0]: 'status' must be one of active, disabled",
                     id="bad-status"),
        pytest.param({"keys": [alice(), key_record(BOB, key_id="key_alice", user="bob")]},
                     "duplicate key id 'key_alice'", id="duplicate-id"),
        pytest.param({"keys": [alice(), alice(id="key_alice2")]}, "keys 'key_alice' and 'key_alice2' share a hash",
                     id="duplicate-hash"),
        pytest.param({"keys": [alice(limits={"daily_spend_limit": -1})]},
                     "keys[0]: limit 'daily_spend_limit' must be a number >= 0", id="negative-limit"),
        pytest.param({"keys": [alice(limits={"requests_per_minute": True})]},
                     "limit 'requests_per_minute' must be a whole number >= 0", id="boolean-limit"),
        pytest.param({"keys": [alice(limits={"daily_limit": 5})]}, "unknown limit 'daily_limit'", id="unknown-limit"),
        pytest.param({"keys": [alice(limits=[5])]}, "'limits' must be an object", id="limits-not-an-object"),
        pytest.param({"keys": [alice(expires_at="2026-12-01T00:00:00")]}, "needs a timezone", id="naive-expiry"),
        pytest.param({"keys": [alice(expires_at="next week")]}, "keys[0].expires_at: expected an ISO 8601 time",
                     id="unparsable-expiry"),
        pytest.param({"keys": [alice(allowed_models="dall-e-3")]}, "keys[0].allowed_models: expected a list of names",
                     id="allow-list-not-a-list"),
    ],
)
def test_load_errors_name_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_key_file(str(path))

    message = str(raised.value)
    assert message.startswith(f"key file {path}: ")
    assert problem in message


def test_load_parses_every_field(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, [
        key_record(ALICE, key_id="key_alice", user="alice", demo=True, expires_at="2027-01-01T00:00:00Z",
                   limits={"daily_spend_limit": 2.5, "requests_per_minute": 0},
                   allowed_providers=["openai"], allowed_models=["dall-e-3"]),
        {"id": "key_bob", "user": "bob", "hash": hash_key(BOB)},
    ])

    keys = load_key_file(str(path))

    alice_key = keys[hash_key(ALICE)]
    assert (alice_key.id, alice_key.user, alice_key.status, alice_key.demo) == ("key_alice", "alice", "active", True)
    assert alice_key.expires_at == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert alice_key.allowed_providers == ("openai",) and alice_key.allowed_models == ("dall-e-3",)
    assert alice_key.limit("daily_spend_limit") == 2.5
    assert alice_key.limit("requests_per_minute") is None  # 0 means unlimited
    assert alice_key.limit("monthly_spend_limit") is None
    bob_key = keys[hash_key(BOB)]
    assert (bob_key.status, bob_key.demo, bob_key.expires_at, bob_key.allowed_models) == ("active", False, None, None)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, [key_record(ALICE, key_id="key_alice", user="alice")])
    return KeyStore(str(path))


def auth_code(store, raw_key, now=NOW):
    with pytest.raises(ApiError) as raised:
        store.authenticate(raw_key, now)
    return raised.value.status, raised.value.code


def test_authenticate_finds_the_key(store):
    assert store.authenticate(ALICE, NOW).id == "key_alice"


@pytest.mark.parametrize(
    ("raw_key", "status", "code"),
    [
        pytest.param("", 400, "API_KEY_REQUIRED", id="empty"),
        pytest.param("alice", 401, "INVALID_API_KEY_FORMAT", id="bad-format"),
        pytest.param(BOB, 403, "API_KEY_INVALID", id="unknown"),
    ],
)
def test_authenticate_refuses(store, raw_key, status, code):
    assert auth_code(store, raw_key) == (status, code)


def test_expiry_applies_from_the_expiry_time(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, [key_record(ALICE, key_id="key_alice", user="alice", expires_at="2026-11-26T12:00:00Z")])
    store = KeyStore(str(path))

    assert store.authenticate(ALICE, NOW - timedelta(microseconds=1)).id == "key_alice"
    with pytest.raises(ApiError) as raised:
        store.authenticate(ALICE, NOW)
    assert raised.value.code == "API_KEY_EXPIRED"
    assert raised.value.details == {"keyId": "key_alice", "expiredAt": "2026-11-26T12:00:00+00:00"}


def test_store_picks_up_an_added_key(store):
    assert auth_code(store, BOB) == (403, "API_KEY_INVALID")

    write_keys(store.path, [key_record(ALICE, key_id="key_alice", user="alice"),
                            key_record(BOB, key_id="key_bob", user="bob")])

    assert store.authenticate(BOB, NOW).id == "key_bob"


def test_store_picks_up_a_disabled_key(store):
    write_keys(store.path, [key_record(ALICE, key_id="key_alice", user="alice", status="disabled")])

    assert auth_code(store, ALICE) == (403, "API_KEY_REVOKED_OR_DISABLED")


def test_store_notices_a_same_size_edit_by_mtime(store):
    # Same length, same inode: only the modification time tells the store to look again.
    write_keys(store.path, [key_record(ALICE, key_id="key_alicf", user="alicf")])

    assert store.authenticate(ALICE, NOW).id == "key_alicf"


def test_broken_edit_keeps_previous_keys_until_fixed(store, caplog):
    path = store.path
    with open(path, "w", encoding="utf-8") as file:
        file.write('{"keys": [')

    with caplog.at_level(logging.ERROR, logger="ziri_images"):
        assert store.authenticate(ALICE, NOW).id == "key_alice"
    assert any("keeping the previous version" in record.getMessage() and path in record.getMessage()
               for record in caplog.records)

    write_keys(path, [key_record(BOB, key_id="key_bob", user="bob")])
    assert store.authenticate(BOB, NOW).id == "key_bob"
    assert auth_code(store, ALICE) == (403, "API_KEY_INVALID")


def test_deleted_file_keeps_previous_keys(store, tmp_path):
    (tmp_path / "keys.json").unlink()

    assert store.authenticate(ALICE, NOW).id == "key_alice"


def test_keys_are_reloaded_by_the_running_app(client, add_key):
    raw_key = add_key()
    assert client.get("/api/me/usage", headers={"X-API-Key": raw_key}).status_code == 200

    revoked = add_key(status="disabled")
    response = client.get("/api/me/usage", headers={"X-API-Key": revoked})

    assert response.get_json()["code"] == "API_KEY_REVOKED_OR_DISABLED"


def _loader_that_blocks(monkeypatch):
    """Patch load_key_file so that, once armed, a load holds until released (a large key file)."""
    import ziri_images.keys.store as keys_module

    real_load = keys_module.load_key_file
    gate = {"armed": False, "loading": threading.Event(), "release": threading.Event()}

    def load(path):
        if gate["armed"]:
            gate["loading"].set()
            gate["release"].wait(timeout=30)
        return real_load(path)

    monkeypatch.setattr(keys_module, "load_key_file", load)
    return gate


@pytest.mark.parametrize("change", ["added", "disabled"])
def test_requests_during_a_reload_see_the_new_file(tmp_path, monkeypatch, change):
    # Two threads race one reload: the first is loading the changed file when the second
    # arrives. The second must wait for the new keys, not authenticate against the old ones.
    gate = _loader_that_blocks(monkeypatch)
    path = tmp_path / "keys.json"
    write_keys(path, [key_record(ALICE, key_id="key_alice", user="alice")])
    store = KeyStore(str(path))
    if change == "added":
        write_keys(path, [key_record(ALICE, key_id="key_alice", user="alice"),
                          key_record(BOB, key_id="key_bob", user="bob")])
        raw_key, expected = BOB, "key_bob"
    else:
        write_keys(path, [key_record(ALICE, key_id="key_alice", user="alice", status="disabled")])
        raw_key, expected = ALICE, "API_KEY_REVOKED_OR_DISABLED"
    gate["armed"] = True
    outcomes = {}

    def authenticate(name):
        try:
            outcomes[name] = store.authenticate(raw_key, NOW).id
        except ApiError as error:
            outcomes[name] = error.code

    first = threading.Thread(target=authenticate, args=("first",))
    first.start()
    assert gate["loading"].wait(timeout=30)
    second = threading.Thread(target=authenticate, args=("second",))
    second.start()
    second.join(timeout=0.5)  # unfixed, it answers from the old keys at once
    gate["release"].set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert outcomes == {"first": expected, "second": expected}
