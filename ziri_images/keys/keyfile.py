"""Edit keys.json safely, also while the gateway is running.

Every edit is a read-modify-write under an exclusive ``flock`` on ``keys.json.lock`` (beside
the file), so two commands never lose each other's change. The new document is validated
with the same parser the gateway uses, written to a temporary file in the same directory,
fsynced and moved over the old file with ``os.replace``: the gateway (which re-reads the file
when it changes) sees either the old file or the new one, never half of one. Raw keys exist
only in the return value of ``create_key`` and ``rotate_key``; the file holds their hashes.
"""

import fcntl
import json
import os
import secrets
import stat
import tempfile
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone

from ..errors import ConfigError
from .store import KEY_PATTERN
from .store import STATUSES
from .store import hash_key
from .store import parse_key_document

LOCK_SUFFIX = ".lock"


class KeyFileError(Exception):
    """An edit that cannot be made; the message says why."""


def utc_timestamp():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_raw_key(user):
    """Return a fresh key ``ziri-{user}-{32 hex}`` for ``user``, or raise KeyFileError."""
    raw_key = f"ziri-{user}-{secrets.token_hex(16)}"
    match = KEY_PATTERN.match(raw_key)
    if match is None or match.group(1) != user:
        raise KeyFileError(f"user {user!r} cannot be part of a key: use letters, digits, '_', '.' and '-', "
                           "starting with a letter or digit")
    return raw_key


def read_document(path, missing_ok=False):
    """Return the decoded, valid key file (with ``missing_ok``, an empty one if there is none yet)."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except FileNotFoundError:
        if missing_ok:
            return {"keys": []}
        raise KeyFileError(f"key file {path}: not found") from None
    except (OSError, ValueError) as error:
        raise KeyFileError(f"key file {path}: {error}") from error
    try:
        parse_key_document(document, path)
    except ConfigError as error:
        raise KeyFileError(f"{error} (fix the file by hand first)") from error
    return document


def write_atomically(path, document):
    """Replace ``path`` with ``document``: temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    fd, temp_path = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, ensure_ascii=False, allow_nan=False)  # never NaN: not JSON
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        if current is not None:
            # Keep the mode and owner the gateway's user can read (mkstemp creates 0600, owned by us).
            os.chmod(temp_path, stat.S_IMODE(current.st_mode))
            if (current.st_uid, current.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(temp_path, current.st_uid, current.st_gid)
            # The gateway notices a change by (inode, mtime, size); a reused inode and an equal size
            # (a rotated key) within the clock's granularity must still differ: keep mtime increasing.
            written = os.stat(temp_path)
            if written.st_mtime_ns <= current.st_mtime_ns:
                os.utime(temp_path, ns=(written.st_atime_ns, current.st_mtime_ns + 1_000_000))
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)  # make the rename itself durable
    finally:
        os.close(directory_fd)


@contextmanager
def editing(path):
    """Hold the edit lock and yield the document; validate and write it back if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise KeyFileError(f"key file {path}: directory {directory} does not exist")
    lock_fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        document = read_document(path, missing_ok=True)
        yield document
        try:
            parse_key_document(document, path)
        except ConfigError as error:
            raise KeyFileError(f"edit refused: {error}") from error
        write_atomically(path, document)
    finally:
        os.close(lock_fd)  # closing the descriptor releases the lock


def find_record(document, key_id):
    """Return the record with ``key_id`` or raise KeyFileError."""
    for record in document["keys"]:
        if record.get("id") == key_id:
            return record
    raise KeyFileError(f"no key with id {key_id!r}")


def public_view(record):
    """Return ``record`` without its hash (for listing and showing)."""
    return {name: value for name, value in record.items() if name != "hash"}


def list_keys(path):
    """Return every record of the key file, without hashes."""
    return [public_view(record) for record in read_document(path)["keys"]]


def apply_changes(record, limits=None, **fields):
    """Set ``fields`` on ``record``; in ``limits`` a value of None removes that limit."""
    record.update(fields)
    if limits:
        merged = dict(record.get("limits") or {})
        for name, value in limits.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        record["limits"] = merged


def create_key(path, user, key_id=None, limits=None, **fields):
    """Add a key for ``user``; return (record without hash, raw key). The raw key is not stored."""
    raw_key = new_raw_key(user)
    with editing(path) as document:
        taken = {record.get("id") for record in document["keys"]}
        if key_id is None:
            key_id = f"key_{secrets.token_hex(4)}"
            while key_id in taken:
                key_id = f"key_{secrets.token_hex(4)}"
        elif key_id in taken:
            raise KeyFileError(f"a key with id {key_id!r} already exists")
        record = {"id": key_id, "user": user, "hash": hash_key(raw_key), "status": "active",
                  "created_at": utc_timestamp(), "expires_at": None, "allowed_providers": None,
                  "allowed_models": None, "limits": {}}
        apply_changes(record, limits, **fields)
        document["keys"].append(record)
    return public_view(record), raw_key


def set_status(path, key_id, status):
    """Set the key's status (``active`` or ``disabled``); return the record without hash."""
    if status not in STATUSES:
        raise KeyFileError(f"status must be one of {', '.join(STATUSES)}")
    with editing(path) as document:
        record = find_record(document, key_id)
        record["status"] = status
        if status == "active":
            record.pop("revoked_at", None)  # enabled again: no longer revoked
    return public_view(record)


def revoke_key(path, key_id):
    """Refuse the key from now on, keeping its record and id (``revoked_at`` says when); return it."""
    with editing(path) as document:
        record = find_record(document, key_id)
        record.update(status="disabled", revoked_at=utc_timestamp())
    return public_view(record)


def delete_key(path, key_id):
    """Remove the key's record from the file; return it (without hash)."""
    with editing(path) as document:
        record = find_record(document, key_id)
        document["keys"].remove(record)
    return public_view(record)


def rotate_key(path, key_id):
    """Give the key a new secret (the old one stops working at once); return (record, raw key)."""
    with editing(path) as document:
        record = find_record(document, key_id)
        raw_key = new_raw_key(record["user"])
        record["hash"] = hash_key(raw_key)
        record["rotated_at"] = utc_timestamp()
    return public_view(record), raw_key


def update_key(path, key_id, limits=None, **fields):
    """Change the key's limits, expiry or allow-lists; return the record without hash."""
    with editing(path) as document:
        record = find_record(document, key_id)
        apply_changes(record, limits, **fields)
    return public_view(record)
