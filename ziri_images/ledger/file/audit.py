"""The file store's audit record: ``audit.jsonl`` beside the ledger, one ``audit`` record per line.

Every change of a key or a team (the command line, the admin API) appends one line, whole, in
one write on an ``O_APPEND`` descriptor, under an exclusive ``flock`` and fsynced: changes are
rare and each must survive a crash. Apart from the cost ledger, so the limits' replay and the
report never read it; ``archive.FileArchive`` merges it into the export, and an import routes
audit records here (a record whose ``auditId`` is already here is skipped).
"""

import fcntl
import os
from contextlib import contextmanager

from ..parse import decode_line
from ..parse import parse_audit
from ..records import encode_record


class AuditFile:
    """Append audit records to, and read them back from, one JSONL file."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def beside(cls, ledger_path):
        """Return the audit record kept next to the ledger (``audit.jsonl`` in its directory)."""
        return cls(os.path.join(os.path.dirname(os.path.abspath(ledger_path)), "audit.jsonl"))

    @contextmanager
    def _locked(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def append(self, records):
        """Write ``records`` (audit records) as one append, durable before this returns."""
        with self._locked() as fd:
            self._write(fd, records)

    def _write(self, fd, records):
        data = b"".join(encode_record(record) for record in records)
        if not data:
            return
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, "short write (disk full?)", self.path)
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)  # never half a line
            raise

    def records(self, since=None, until=None):
        """Yield every valid audit record in the order written, ``since <= ts < until`` (ledger timestamps)."""
        try:
            file = open(self.path, "rb")
        except FileNotFoundError:
            return
        with file:
            for line in file:
                if not line.endswith(b"\n") or line.isspace():
                    continue  # a line still being written
                try:
                    record = parse_audit(decode_line(line))
                except (ValueError, RecursionError):
                    record = parse_audit(None)
                if record is not None and (since is None or record["ts"] >= since) and (
                        until is None or record["ts"] < until):
                    yield record

    def import_records(self, values):
        """Append the valid audit records of ``values`` not already here (by ``auditId``); return (written, skipped)."""
        with self._locked() as fd:
            stored = {record["auditId"] for record in self.records()}
            fresh, skipped = [], 0
            for value in values:
                record = parse_audit(value)
                if record is None or record["auditId"] in stored:
                    skipped += 1
                    continue
                stored.add(record["auditId"])
                fresh.append(record)
            self._write(fd, fresh)
        return len(fresh), skipped
