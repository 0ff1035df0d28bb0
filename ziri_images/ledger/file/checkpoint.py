"""Checkpoints of the file store's derived state, so start-up does not replay the whole ledger.

A checkpoint is a snapshot of ``UsageState`` with the ledger offset it covers. It sits next to
the ledger (``<ledger>.checkpoint``) as a version line, the SHA-256 of the body, and the body
(JSON). It is written safely: a temporary file in the same directory, fsynced, renamed over the
old one, and the directory fsynced, so a reader sees the old checkpoint or the new, never half.

On load it is trusted only if everything checks out: the format version, the checksum, the
ledger's identity (device and inode), a ledger at least as long as the covered offset, and the
SHA-256 of the ledger's bytes just before that offset (a ledger rewritten in place). Anything
else (missing, stale, corrupt) makes the caller replay the whole ledger: a checkpoint can make
start-up faster, never limits wrong. The records after the covered offset are replayed as usual.
"""

import hashlib
import json
import logging
import os
import tempfile

from ..usage import UsageState

log = logging.getLogger("ziri_images")

# Version 2: teams and end users counted beside keys (a version-1 checkpoint is replayed over).
FORMAT = b"ziri-images checkpoint 2\n"
SUFFIX = ".checkpoint"
# How much of the ledger before the covered offset is hashed: enough to tell a rewritten ledger.
TAIL_BYTES = 64 * 1024


def checkpoint_path(ledger_path):
    return ledger_path + SUFFIX


def _ledger_identity(ledger_path, offset):
    """Return the ledger's device, inode and the hash of its bytes before ``offset``, or None if shorter."""
    with open(ledger_path, "rb") as file:
        status = os.fstat(file.fileno())
        if status.st_size < offset:
            return None
        start = max(0, offset - TAIL_BYTES)
        file.seek(start)
        tail = file.read(offset - start)
    return {"device": status.st_dev, "inode": status.st_ino, "offset": offset,
            "tail": hashlib.sha256(tail).hexdigest()}


def encode(ledger_path, snapshot):
    """Return the bytes of a checkpoint of ``snapshot`` (from ``UsageState.snapshot``)."""
    body = json.dumps({"ledger": _ledger_identity(ledger_path, snapshot["offset"]), "state": snapshot},
                      separators=(",", ":")).encode()
    return FORMAT + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def save(ledger_path, data):
    """Replace the ledger's checkpoint with ``data`` (from ``encode``) atomically; False if it could not."""
    path = checkpoint_path(ledger_path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=directory)
        os.fchmod(fd, 0o640)  # as readable as the ledger it summarises
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    except OSError as error:
        # Start-up is only slower without it: the ledger stays the source of truth.
        log.warning("checkpoint %s: not written: %s", path, error.strerror or error)
        return False
    return True


def load(ledger_path):
    """Return the UsageState the ledger's checkpoint holds, or None (with the reason logged) to replay."""
    path = checkpoint_path(ledger_path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("checkpoint %s: unreadable (%s): replaying the whole ledger", path, error.strerror or error)
        return None
    reason, state = _verify(ledger_path, data)
    if state is None:
        log.warning("checkpoint %s: %s: replaying the whole ledger", path, reason)
    return state


def _verify(ledger_path, data):
    """Return (None, state) for a checkpoint that matches the ledger, else (reason, None)."""
    if not data.startswith(FORMAT):
        return "not a checkpoint of this format version", None
    checksum, _, body = data[len(FORMAT):].partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != checksum:
        return "checksum mismatch", None
    try:
        content = json.loads(body)
        covered = content["ledger"]
        if covered is None or _ledger_identity(ledger_path, covered["offset"]) != covered:
            return "stale (the ledger is another file, shorter, or rewritten)", None
        return None, UsageState.restore(content["state"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unusable ({error.__class__.__name__})", None
