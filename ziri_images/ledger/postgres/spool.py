"""Charges that could not reach the database, kept on local disk until it is back.

A request already at the provider when the database goes away must still be charged, once.
``ChargeSpool.put`` appends the charge (one JSON line, under an exclusive ``flock``) and
fsyncs it before the response is sent; a charge the disk refuses (a failed write or fsync) is
cut back, as its client is refused. ``flush(write)`` hands every spooled entry to
``write``, which stores it idempotently (the database's unique index on the charge per
request rules out a second copy), and deletes a batch only once all of it was written.

To flush, a process renames ``charges.jsonl`` to a batch file under the lock; a writer that
opened the old name waits for the lock, sees the name now points elsewhere, and reopens. Batch
files left by a crash are flushed by the next pass of any process on the host.
"""

import fcntl
import json
import logging
import os
import secrets
import threading

from ..records import encode_json

log = logging.getLogger("ziri_images")

_CURRENT = "charges.jsonl"
_BATCH_SUFFIX = ".flushing"


class ChargeSpool:
    """Append charges durably to a directory, and flush them to the database."""

    def __init__(self, directory):
        self.directory = directory
        self._lock = threading.Lock()

    @property
    def path(self):
        return os.path.join(self.directory, _CURRENT)

    def _open_current(self):
        """Return a descriptor of the current file, locked exclusively, that is still at its name."""
        os.makedirs(self.directory, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # renamed for a flush while we waited: open the new one

    def put(self, entry):
        """Append ``entry`` (a dict) and fsync it; raise OSError if the disk refuses, with nothing kept."""
        data = (encode_json(entry) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open_current()
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    if os.write(fd, data) != len(data):
                        raise OSError(28, "short write (disk full?)")
                    os.fsync(fd)
                except OSError:
                    # Its client is refused: flushed later, the entry would be a charge saying it was served.
                    # The flock is held, so nothing was appended after it.
                    _cut_back(fd, start)
                    raise
            finally:
                os.close(fd)  # closing releases the flock

    def pending(self):
        """Return True if any charge waits in the spool."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return False
        return any(name.endswith(_BATCH_SUFFIX) or (name == _CURRENT and os.path.getsize(self.path))
                   for name in names)

    def _cut_batch(self):
        """Rename the current file to a new batch (if it holds anything), under its lock."""
        if not os.path.exists(self.path):
            return
        with self._lock:
            fd = self._open_current()
            try:
                if os.fstat(fd).st_size:
                    batch = f"{self.path}.{secrets.token_hex(4)}{_BATCH_SUFFIX}"
                    os.rename(self.path, batch)
            finally:
                os.close(fd)

    def flush(self, write):
        """Call ``write(entry)`` for every spooled entry; return how many were written.

        A batch is deleted only when every entry in it was written; if ``write`` raises, the
        batch stays for the next flush (entries already written are skipped then by ``write``).
        """
        if not self.pending():
            return 0
        self._cut_batch()
        written = 0
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(_BATCH_SUFFIX):
                written += self._flush_batch(os.path.join(self.directory, name), write)
        return written

    def _flush_batch(self, path, write):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0  # another process flushed it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one flusher per batch
            except BlockingIOError:
                return 0
            with os.fdopen(os.dup(fd), "rb") as file:
                lines = file.read().splitlines()
            count = 0
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    log.critical("spool %s: skipping an unparsable line (%d bytes)", path, len(line))
                    continue
                write(entry)
                count += 1
            os.unlink(path)
            return count
        finally:
            os.close(fd)


def _cut_back(fd, start):
    try:
        os.ftruncate(fd, start)
    except OSError as error:
        log.critical("spool: could not cut back a refused charge at offset %d: %s", start, error.strerror or error)
