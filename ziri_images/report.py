"""Spend and image counts from the ledger, grouped by key, user, model and/or day.

Each request counts once, at the time it was admitted (its reservation's time, as the spend
limits count it), at its final amount: its ``charge`` record, or the conservative
``reservation_expired`` amount when no charge follows (a later charge replaces it).

The ledger is streamed line by line and most lines are never decoded: every record line
starts with ``{"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ","type":"``, so the time and the record type
are read at fixed offsets, and only the records that can count are parsed as JSON
(reservations only when the grouping needs their user or model for expired requests).
"""

import json
import os
import time
from dataclasses import dataclass
from dataclasses import field

from .limits import MICROS
from .limits import to_micros

GROUPINGS = ("key", "user", "model", "day")
UNKNOWN = "(unknown)"

_PREFIX = b'{"ts":"'
_TS_END = 34  # len('{"ts":"') + len("YYYY-MM-DDTHH:MM:SS.ffffffZ")
_TYPE_SEPARATOR = b'","type":"'
_TYPE_AT = _TS_END + len(_TYPE_SEPARATOR)
_RESERVED_AT = b'"reservedAt":"'
_KINDS = {b"charge": "charge", b"reservation_expired": "reservation_expired", b"reservation": "reservation"}
_PROGRESS_EVERY = 1 << 16  # lines between progress checks
_DECODER = json.JSONDecoder()


@dataclass
class Totals:
    """The counts of one group (or of the whole report)."""

    requests: int = 0
    images: int = 0
    cost_micros: int = 0
    expired: int = 0  # requests counted at their reserved amount because no charge followed

    def add(self, requests, images, micros, expired):
        self.requests += requests
        self.images += images
        self.cost_micros += micros
        self.expired += expired

    @property
    def cost(self):
        return self.cost_micros / MICROS

    def as_row(self):
        return {"requests": self.requests, "images": self.images, "cost": self.cost, "expired": self.expired}


@dataclass
class Report:
    """The result of ``build_report``: one Totals per group, plus what was read."""

    by: tuple
    since: str | None
    until: str | None
    groups: dict = field(default_factory=dict)
    lines: int = 0
    parsed: int = 0
    skipped_unparsable: int = 0

    def totals(self):
        total = Totals()
        for group in self.groups.values():
            total.add(group.requests, group.images, group.cost_micros, group.expired)
        return total

    def rows(self):
        """Yield (group values, Totals) sorted by group."""
        yield from sorted(self.groups.items())


class _Aggregator:
    """Fold ledger records into per-group Totals."""

    def __init__(self, by, since, until):
        self.by = by
        self.since = since or ""
        self.until = until or "\uffff"
        self.groups = {}
        self.details = {}  # requestId -> its reservation's (user, model), until it is settled
        self.expired = {}  # requestId -> (group, micros) counted at the expiry amount so far
        self.users = {}  # keyId -> user, for expiry records (they name only the key)

    def group_of(self, record, moment):
        if self.by == ("key",):
            return (record.get("keyId") or UNKNOWN,)
        key_id = record.get("keyId") or UNKNOWN
        user, model = record.get("user"), record.get("model")
        if user is None or model is None:
            user_seen, model_seen = self.details.get(record.get("requestId"), (None, None))
            user = user or user_seen or self.users.get(key_id, UNKNOWN)
            model = model or model_seen or UNKNOWN
        values = {"key": key_id, "user": user, "model": model, "day": moment[:10]}
        return tuple(values[name] for name in self.by)

    def _add(self, group, requests, images, micros, expired):
        totals = self.groups.get(group)
        if totals is None:
            totals = self.groups[group] = Totals()
        totals.add(requests, images, micros, expired)

    def apply(self, record):
        kind = record.get("type")
        if kind == "reservation":
            if self.since <= record.get("ts", "") < self.until:
                self.details[record.get("requestId")] = (record.get("user"), record.get("model"))
                self.users[record.get("keyId")] = record.get("user")
            return
        if kind != "charge" and kind != "reservation_expired":
            return
        moment = record.get("reservedAt") or record.get("ts") or ""
        if not self.since <= moment < self.until:
            return
        request_id = record.get("requestId")
        group = self.group_of(record, moment)
        self.details.pop(request_id, None)
        micros = to_micros(record.get("cost") or 0)
        if kind == "reservation_expired":
            self.expired[request_id] = (group, micros)
            self._add(group, 1, 0, micros, 1)
            return
        replaced = self.expired.pop(request_id, None)
        if replaced is not None:
            self._add(replaced[0], -1, 0, -replaced[1], -1)
        self._add(group, 1, record.get("imagesReturned") or 0, micros, 0)


def _wanted(line, since, until, need_reservations):
    """Return True if ``line`` may count; decide from fixed offsets without decoding it."""
    if not line.startswith(_PREFIX) or line[_TS_END:_TYPE_AT] != _TYPE_SEPARATOR:
        return True  # not in the usual shape: let the JSON decoder decide
    kind = _KINDS.get(line[_TYPE_AT:line.find(b'"', _TYPE_AT)])
    if kind is None:
        return False
    ts = line[7:_TS_END]
    if since is not None and ts < since:
        return False  # the record and the reservation it settles are both before the range
    if kind == "reservation":
        return need_reservations and (until is None or ts < until)
    if until is not None and ts >= until:
        # Settled after the range: it counts only if it was reserved inside it.
        start = line.find(_RESERVED_AT)
        if start < 0:
            return False
        start += len(_RESERVED_AT)
        return line[start:start + len(ts)] < until
    return True


def _decode(line):
    """Return the JSON value of one whole line (faster than json.loads on bytes)."""
    text = line.decode("utf-8")
    value, end = _DECODER.raw_decode(text)
    if text[end:].strip():
        raise ValueError("extra data after the record")
    return value


def build_report(path, by=("key",), since=None, until=None, progress=None):
    """Return a Report of the ledger at ``path``; ``since``/``until`` are ledger timestamps.

    ``progress``, if given, is called as ``progress(bytes_read, total_bytes)`` now and then.
    """
    for name in by:
        if name not in GROUPINGS:
            raise ValueError(f"cannot group by {name!r} (choose from {', '.join(GROUPINGS)})")
    aggregator = _Aggregator(tuple(by), since, until)
    report = Report(by=tuple(by), since=since, until=until, groups=aggregator.groups)
    since_bytes = since.encode() if since else None
    until_bytes = until.encode() if until else None
    need_reservations = "user" in by or "model" in by
    total_bytes = os.path.getsize(path)
    number = 0
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if progress is not None and number % _PROGRESS_EVERY == 0:
                progress(file.tell(), total_bytes)
            if not _wanted(line, since_bytes, until_bytes, need_reservations):
                continue
            try:
                record = _decode(line)
            except ValueError:
                # A last line without its newline is still being written: not an error.
                if line.strip() and line.endswith(b"\n"):
                    report.skipped_unparsable += 1
                continue
            report.parsed += 1
            if isinstance(record, dict):
                aggregator.apply(record)
        report.lines = number
    if progress is not None:
        progress(total_bytes, total_bytes)
    return report


class Progress:
    """Print 'reading ledger: NN%' on ``stream`` once the work has taken more than ``delay`` seconds."""

    def __init__(self, stream, delay=1.0, interval=0.25):
        self.stream = stream
        self.delay = delay
        self.interval = interval
        self.started = time.monotonic()
        self.shown = 0  # length of the line on screen
        self.last = 0.0

    def __call__(self, done, total):
        now = time.monotonic()
        finished = done >= total
        if finished:
            if self.shown:
                self.stream.write("\r" + " " * self.shown + "\r")
                self.stream.flush()
            return
        if now - self.started < self.delay or now - self.last < self.interval:
            return
        self.last = now
        text = f"reading ledger: {100 * done // total}% ({done / 1e6:.0f} of {total / 1e6:.0f} MB)"
        self.stream.write("\r" + text.ljust(self.shown))
        self.stream.flush()
        self.shown = max(self.shown, len(text))
