"""The file store's refusal record: ``refusals.jsonl`` beside the ledger, one JSON row per day, key and code.

Each process's aggregated counts (``ops.refusals.RefusalCounter``) are appended as rows, a
few every few seconds, never one per refused request, and never a line in the cost ledger.
"""

import json
import os


class RefusalFile:
    """The file store's side record of refusals: one JSON row per line, appended by every process."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def beside(cls, ledger_path):
        """Return the refusal record kept next to the ledger (``refusals.jsonl`` in its directory)."""
        return cls(os.path.join(os.path.dirname(os.path.abspath(ledger_path)), "refusals.jsonl"))

    def add_refusals(self, rows):
        data = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)  # one append: rows of several processes never interleave within a line
        finally:
            os.close(fd)

    def refusal_rows(self, since_day=None, until_day=None):
        """Yield the rows of days ``since_day <= day < until_day`` (unparsable lines skipped)."""
        try:
            file = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            return
        with file:
            for line in file:
                try:
                    row = json.loads(line)
                    day = row["day"]
                except (ValueError, KeyError, TypeError):
                    continue
                if (since_day is None or day >= since_day) and (until_day is None or day < until_day):
                    yield row
