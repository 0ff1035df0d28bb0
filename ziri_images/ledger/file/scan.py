"""Whole-ledger scans of the JSONL file: the replay at start-up and the streaming report.

A ledger of a year holds millions of lines, and both scans need only a few of them. Each has a
fast-path prefilter that reads a line's time and type before it is decoded (``records.peek``).
A prefilter may only drop a line ``peek`` reads that cannot count; any other line (another
field order, a foreign line) goes to ``parse.parse_line``, which decides.
"""

import os
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from ..parse import parse_line
from ..records import peek
from ..records import peek_reserved_at
from ..report import Aggregator
from ..report import Report
from ..report import check_groupings

_PROGRESS_EVERY = 1 << 16  # lines between progress checks


def replay_prefilter(now):
    """Return a fast-path line filter that drops records too old to affect current limits."""
    # Keep the current month, plus a day before it for requests still in flight at midnight.
    threshold = min(datetime(now.year, now.month, 1, tzinfo=timezone.utc), now - timedelta(days=1))
    floor = threshold.strftime("%Y-%m-%d").encode()

    def recent(line):
        seen = peek(line)
        return seen is None or seen[0][:10] >= floor

    return recent


def report_prefilter(line, since, until, need_reservations):
    """Return False only for a line in the gateway's own shape that cannot count in the report."""
    seen = peek(line)
    if seen is None or seen[1] is None:
        return True  # not in the written shape, or a type the report does not know: the parser decides
    ts, kind = seen
    if since is not None and ts < since:
        return False  # the record and the reservation it settles are both before the range
    if kind == "reservation":
        return need_reservations and (until is None or ts < until)
    if until is not None and ts >= until:
        # Settled after the range: it counts only if it was reserved inside it.
        reserved_at = peek_reserved_at(line)
        return reserved_at is None or reserved_at < until
    return True


def build_report(path, by=("key",), since=None, until=None, progress=None):
    """Return the Report of the ledger at ``path``; ``since``/``until`` are ledger timestamps.

    ``progress``, if given, is called as ``progress(bytes_read, total_bytes)`` now and then.
    """
    by = tuple(by)
    check_groupings(by)
    aggregator = Aggregator(by, since, until)
    report = Report(by=by, since=since, until=until, groups=aggregator.groups)
    since_bytes = since.encode() if since else None
    until_bytes = until.encode() if until else None
    need_reservations = "user" in by or "model" in by
    total_bytes = os.path.getsize(path) if os.path.exists(path) else 0
    number = 0
    with open(path, "ab+") as file:  # created if missing, as the gateway does; never written here
        file.seek(0)
        for number, line in enumerate(file, 1):
            if progress is not None and number % _PROGRESS_EVERY == 0:
                progress(file.tell(), total_bytes)
            if not line.endswith(b"\n") or line.isspace():
                continue  # a last line without its newline is still being written: not an error
            if not report_prefilter(line, since_bytes, until_bytes, need_reservations):
                continue
            record = parse_line(line)
            if record is None:
                report.skipped_unparsable += 1
                continue
            report.parsed += 1
            aggregator.apply(record)
        report.lines = number
    if progress is not None:
        progress(total_bytes, total_bytes)
    return report
