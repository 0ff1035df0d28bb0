"""Whole-ledger scans of the JSONL file: the replay at start-up and the streaming report.

A ledger of a year holds millions of lines, and both scans need only a few of them. Each has a
fast-path prefilter that looks at a line's bytes before it is decoded: the gateway writes every
record as ``{"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ","type":"...``, so the time and the type sit at
fixed offsets. A prefilter may only drop a line in exactly that shape that cannot count; any
other line (another field order, a foreign line) goes to ``records.parse_line``, which decides.
"""

import os
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from ..records import parse_line
from ..report import Aggregator
from ..report import Report
from ..report import check_groupings

_PREFIX = b'{"ts":"'
_TS_START = len(_PREFIX)
_TS_END = _TS_START + len("YYYY-MM-DDTHH:MM:SS.ffffffZ")
_TYPE_SEPARATOR = b'","type":"'
_TYPE_AT = _TS_END + len(_TYPE_SEPARATOR)
_RESERVED_AT = b'"reservedAt":"'
_KINDS = {b"charge": "charge", b"reservation_expired": "reservation_expired", b"reservation": "reservation"}
_PROGRESS_EVERY = 1 << 16  # lines between progress checks


def replay_prefilter(now):
    """Return a fast-path line filter that drops records too old to affect current limits."""
    # Keep the current month, plus a day before it for requests still in flight at midnight.
    threshold = min(datetime(now.year, now.month, 1, tzinfo=timezone.utc), now - timedelta(days=1))
    floor = threshold.strftime("%Y-%m-%d").encode()
    return lambda line: not line.startswith(_PREFIX) or line[_TS_START:_TS_START + 10] >= floor


def report_prefilter(line, since, until, need_reservations):
    """Return False only for a line in the gateway's own shape that cannot count in the report."""
    if not line.startswith(_PREFIX) or line[_TS_END:_TYPE_AT] != _TYPE_SEPARATOR:
        return True  # not in the usual shape: let the parser decide
    kind = _KINDS.get(line[_TYPE_AT:line.find(b'"', _TYPE_AT)])
    if kind is None:
        return True  # a type the report does not know: parsed, so it is counted as skipped
    ts = line[_TS_START:_TS_END]
    if since is not None and ts < since:
        return False  # the record and the reservation it settles are both before the range
    if kind == "reservation":
        return need_reservations and (until is None or ts < until)
    if until is not None and ts >= until:
        # Settled after the range: it counts only if it was reserved inside it.
        start = line.find(_RESERVED_AT)
        if start < 0:
            return True
        start += len(_RESERVED_AT)
        return line[start:start + len(ts)] < until
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
