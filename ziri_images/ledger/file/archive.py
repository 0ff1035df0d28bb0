"""The file store's whole-ledger operations: export, import and the spend report.

These serve the operator's commands, never a request. ``FileArchive`` is mixed into
``store.FileStore`` (as ``PostgresReports`` is into ``PostgresStore``): it uses the store's
``ledger`` (a ``jsonl.Ledger``), ``_catch_up()`` and ``_commit(transaction, records)``. The
audit records (``audit.AuditFile``, beside the ledger) are part of the export and of an import.
"""

import heapq

from ..base import Archive
from ..base import split_audit
from ..parse import parse_line
from ..parse import parse_record
from .audit import AuditFile
from .scan import build_report


class FileArchive(Archive):
    """Read every record of the JSONL ledger, import records into it, report on it."""

    def audit_file(self):
        return AuditFile.beside(self.ledger.path)

    def records(self, since=None, until=None):
        # Two streams in their own order of writing, merged by time: the audit file is small.
        audit = self.audit_file().records(since, until)
        yield from heapq.merge(self._ledger_records(since, until), audit, key=lambda record: record["ts"])

    def _ledger_records(self, since, until):
        for line in self.ledger.scan(0):
            record = parse_line(line)
            if record is not None and (since is None or record.ts >= since) and (until is None or record.ts < until):
                yield record.fields

    def _stored_ids(self, stored, offset):
        """Add the (type, requestId) of every record after byte ``offset`` to ``stored``; return the end."""
        end = [offset]
        for line in self.ledger.scan(offset, on_block=end.append):
            record = parse_line(line)
            if record is not None:
                stored.add((record.kind, record.request_id))
        return max(end[-1], offset)

    def import_records(self, values):
        audit = []
        written, skipped = self._import_ledger(split_audit(values, audit))
        audit_written, audit_skipped = self.audit_file().import_records(audit)
        return written + audit_written, skipped + audit_skipped

    def _import_ledger(self, values):
        # The file is read before the lock is taken (the import would hold up every worker meanwhile);
        # under the lock only what was appended since is read.
        stored = set()
        offset = self._stored_ids(stored, 0)
        with self.ledger.transaction() as transaction:
            self._catch_up()
            self._stored_ids(stored, offset)
            written, skipped = [], 0
            for value in values:
                record = parse_record(value)
                if record is None or (record.kind, record.request_id) in stored:
                    skipped += 1
                    continue
                stored.add((record.kind, record.request_id))
                transaction.append(record.fields)
                written.append(record.fields)
            self._commit(transaction, written)
        return len(written), skipped

    def report(self, by=("key",), since=None, until=None, progress=None):
        return build_report(self.ledger.path, by=by, since=since, until=until, progress=progress)
