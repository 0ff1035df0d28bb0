"""The append-only JSONL cost ledger, shared by every worker process and thread.

All writes happen inside ``Ledger.transaction()``, which holds a thread lock and an exclusive
``flock`` on the file: one writer at a time across the host. Each record is one ``os.write``
of a whole line on an ``O_APPEND`` descriptor. A failed or short write (disk full) is cut back
with ``ftruncate``, so a line is either entirely there or not at all. When the ledger is
durable, a synced commit's ``fdatasync`` runs once the file is released, and the transaction
ends only when it has returned: the other workers append meanwhile instead of queueing behind
the disk (any one fsync flushes them all). Readers follow the file from an offset, so a process
only ever reads what other processes appended since it last looked. Batching the commits of
concurrent requests into one transaction and one fsync is ``group_commit.py``'s.

This module moves whole lines; ``records.py`` says what a line means.
"""

import fcntl
import logging
import os
import sys
import threading
from contextlib import contextmanager

from ...errors import ConfigError
from ..base import ledger_unavailable
from ..records import encode_record

log = logging.getLogger("ziri_images")

# Read the file in blocks this large while following it.
_READ_BLOCK = 1 << 20


def off_loop(function, *args):
    """Return ``function(*args)``, run in gevent's thread pool when this process is monkey-patched.

    A blocking call (a contended ``flock``, ``fdatasync``) made on a gevent worker's only OS thread
    stops every greenlet of the worker; in the pool, only the calling greenlet waits. Under
    gthread or in an unpatched process the call is made directly.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return sys.modules["gevent"].get_hub().threadpool.apply(function, args)
    return function(*args)


def _lock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # uncontended: no thread hand-off
    except BlockingIOError:
        off_loop(fcntl.flock, fd, fcntl.LOCK_EX)


class Ledger:
    """Append records to, and follow, one JSONL file."""

    def __init__(self, path, durable=True, mirror_stdout=False, create=True):
        """Open (with ``create``, make) the ledger at ``path``; without ``create`` a missing file raises OSError."""
        self.path = path
        self.durable = durable
        self.mirror_stdout = mirror_stdout
        # A commit failed (disk full, read-only, I/O error): set until a synced commit succeeds.
        self.failing = False
        self._thread_lock = threading.Lock()
        self._fd = None
        self._fd_pid = None
        if not create:
            os.stat(path)  # a report or an export of a ledger that is not there is an error, not an empty file
            return
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._descriptor()
        except OSError as error:
            raise ConfigError(f"ledger {path}: cannot open for appending: {error.strerror}")

    def _descriptor(self):
        # A descriptor opened before gunicorn forks is shared with the parent; each process opens its own.
        if self._fd is None or self._fd_pid != os.getpid():
            # Read access too: a commit checks the last byte to end a line a dead writer left open.
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            self._fd_pid = os.getpid()
        return self._fd

    def close(self):
        """Close this process's descriptor (the next transaction opens a new one)."""
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    @contextmanager
    def transaction(self):
        """Hold the ledger exclusively; yield a Transaction to read new lines and append.

        A synced commit's fsync is made after the ledger is released, before this returns.
        """
        with self._thread_lock:
            try:
                fd = self._descriptor()
                _lock(fd)
            except OSError as error:
                raise ledger_unavailable(error.strerror)
            transaction = Transaction(self, fd)
            try:
                yield transaction
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if transaction.unsynced:
            transaction.sync()

    def read_from(self, offset):
        """Return (lines, new_offset) for the complete lines after byte ``offset`` (blank lines left out)."""
        try:
            if self._fd is not None and self._fd_pid == os.getpid():
                # The descriptor this process appends with: two system calls, no file object per transaction.
                data = os.pread(self._fd, max(0, os.fstat(self._fd).st_size - offset), offset)
            else:
                with open(self.path, "rb") as file:
                    file.seek(offset)
                    data = file.read()
        except OSError as error:  # unreadable (I/O error) or moved away: refuse like an unwritable ledger
            raise ledger_unavailable(error.strerror or str(error))
        end = data.rfind(b"\n") + 1  # a line still being written elsewhere is left for later
        return [line for line in data[:end].split(b"\n") if line and not line.isspace()], offset + end

    def scan(self, offset=0, line_filter=None, on_block=None):
        """Yield every complete non-blank line from ``offset``, block by block.

        ``line_filter(line)``, if given, drops the lines for which it returns False.
        ``on_block(end_offset)`` is called after each block, filtered lines included, so a
        follower knows exactly how far it has read.
        """
        with open(self.path, "rb") as file:
            file.seek(offset)
            carry = b""
            while True:
                block = file.read(_READ_BLOCK)
                if not block:
                    return
                data = carry + block
                end = data.rfind(b"\n") + 1
                carry = data[end:]
                offset += end
                for line in data[:end].split(b"\n"):
                    if line and not line.isspace() and (line_filter is None or line_filter(line)):
                        yield line
                if on_block is not None:
                    on_block(offset)


class Transaction:
    """Appends made while the ledger is held; ``commit`` writes and flushes them together."""

    def __init__(self, ledger, fd):
        self.ledger = ledger
        self._fd = fd
        self._pending = []
        self.unsynced = False  # written by a synced commit, to be fsynced once the ledger is released

    def append(self, record):
        """Queue ``record`` (encoded now: a record that cannot be written raises here); it is written at commit."""
        self._pending.append(encode_record(record))

    def commit(self, sync=True):
        """Write the queued records as one append; return the end offset.

        With ``sync`` (and a durable ledger) the data is on disk before the transaction ends;
        without it, the records survive the process but wait for the next synced commit to
        reach the disk (a synced commit flushes everything written before it). The fsync is
        made under the lock only while the ledger is failing: a failed one then cuts the
        records back, as a failed write does.
        """
        if not self._pending:
            return None
        data = b"".join(self._pending)
        fd = self._fd
        start = os.lseek(fd, 0, os.SEEK_END)
        if start and os.pread(fd, 1, start - 1) != b"\n":
            # A writer killed mid-write (or a crash) left half a line: end it, or readers would
            # see it glued to this record and drop both.
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, "short write (disk full?)")
            if sync and self.ledger.durable:
                if self.ledger.failing:
                    off_loop(os.fdatasync, fd)
                else:
                    self.unsynced = True
        except OSError as error:
            try:
                os.ftruncate(fd, start)  # never leave half a line behind
            except OSError:
                log.critical("ledger: could not cut back a failed write at offset %d", start)
            self.ledger.failing = True
            raise ledger_unavailable(error.strerror or str(error))
        if sync and not self.unsynced:
            self.ledger.failing = False
        if self.ledger.mirror_stdout:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
        self._pending = []
        return start + len(data)

    def sync(self):
        """Make the synced commits of this transaction durable, once the ledger is released.

        A failed fsync cannot cut its records back (others may have appended after them): they
        stay, as written and read by every worker, and the commit raises. They are true: a
        charge is only written once the provider has answered, and the file store answers its
        client as the charge says. From then on the ledger is ``failing`` and syncs under the
        lock, so nothing more stays unconfirmed.
        """
        self.unsynced = False
        try:
            off_loop(os.fdatasync, self._fd)
        except OSError as error:
            self.ledger.failing = True
            log.error("ledger: fsync failed; the records written before it stay in the file: %s", error.strerror)
            raise ledger_unavailable(error.strerror or str(error))
        self.ledger.failing = False

