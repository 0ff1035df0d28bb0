"""Edit keys.json safely, also while the gateway is running.

Every edit is a read-modify-write under an exclusive ``flock`` on ``keys.json.lock`` (beside
the file), so two commands never lose each other's change. The new document is validated
with the same parser the gateway uses, written to a temporary file in the same directory,
fsynced and moved over the old file with ``os.replace``: the gateway (which re-reads the file
when it changes) sees either the old file or the new one, never half of one. Raw keys exist
only in the return value of ``create_key`` and ``rotate_key``; the file holds their hashes.
"""

import copy
import fcntl
import json
import os
import stat
import tempfile
from contextlib import contextmanager

from ..errors import ConfigError
from .base import Conflict
from .base import KeyEditError
from .base import NotFound
from .edits import apply_changes
from .edits import new_id
from .edits import new_key_record
from .edits import new_raw_key
from .edits import public_view
from .edits import rotate_secret
from .edits import utc_timestamp
from .store import STATUSES
from .store import parse_key_document

LOCK_SUFFIX = ".lock"

# The name this module's callers know an edit's failure by.
KeyFileError = KeyEditError


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
    """Return the record with ``key_id`` or raise NotFound."""
    for record in document["keys"]:
        if record.get("id") == key_id:
            return record
    raise NotFound("key", key_id)


def list_keys(path):
    """Return every record of the key file, without hashes."""
    return [public_view(record) for record in read_document(path)["keys"]]


def create_key(path, user, key_id=None, limits=None, **fields):
    """Add a key for ``user``; return (record without hash, raw key). The raw key is not stored."""
    raw_key = new_raw_key(user)
    with editing(path) as document:
        taken = {record.get("id") for record in document["keys"]}
        if key_id is None:
            key_id = new_id("key", taken)
        elif key_id in taken:
            raise Conflict("KEY_EXISTS", f"a key with id {key_id!r} already exists")
        record = new_key_record(key_id, user, raw_key)
        apply_changes(record, limits, **fields)
        document["keys"].append(record)
    return public_view(record), raw_key


def edit_key(path, key_id, change):
    """Apply ``change(record, document)`` to the key's record under the lock; return (before, after, its result).

    ``before`` and ``after`` are whole records (the hash included): the caller shows only their public views.
    """
    with editing(path) as document:
        record = find_record(document, key_id)
        before = copy.deepcopy(record)
        result = change(record, document)
    return before, record, result


def set_status(path, key_id, status):
    """Set the key's status (``active`` or ``disabled``); return the record without hash."""
    if status not in STATUSES:
        raise KeyFileError(f"status must be one of {', '.join(STATUSES)}")
    # Enabled again: no longer revoked (apply_changes clears revoked_at).
    return public_view(edit_key(path, key_id, lambda record, _: apply_changes(record, status=status))[1])


def revoke_key(path, key_id):
    """Refuse the key from now on, keeping its record and id (``revoked_at`` says when); return it."""
    return update_key(path, key_id, status="disabled", revoked_at=utc_timestamp())


def delete_key(path, key_id):
    """Remove the key's record from the file; return it (without hash)."""
    return public_view(edit_key(path, key_id, lambda record, document: document["keys"].remove(record))[0])


def rotate_key(path, key_id):
    """Give the key a new secret (the old one stops working at once); return (record, raw key)."""
    _before, record, raw_key = edit_key(path, key_id, rotate_secret)
    return public_view(record), raw_key


def update_key(path, key_id, limits=None, **fields):
    """Change the key's limits, expiry, allow-lists, status or team; return the record without hash."""
    return public_view(edit_key(path, key_id, lambda record, _: apply_changes(record, limits, **fields))[1])
