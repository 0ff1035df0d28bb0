"""What ``ziri_reserve`` answers, as the checks read it: the key's ``KeyUsage`` and its rate window.

The database decides (functions/ziri_reserve.sql); a refusal is worded by running
``checks.run_checks`` on the usage it reports.
"""

from collections.abc import Sequence

from ..checks import KeyUsage


class AdmissionWindow(Sequence):
    """A key's rate window as the checks read it: how many admissions, and the first one's time."""

    def __init__(self, count, first):
        self.count, self.first = count, first

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if index != 0 or not self.count:
            raise IndexError("only the window's first admission is known")
        return self.first


def usage_from(row, now):
    """Return the ``KeyUsage`` that ``ziri_reserve``'s answer (its columns after state and now) describes."""
    spent_day, spent_month, requests_day, requests_month, held_day, held_month, in_flight = row[:7]
    window_count, window_first, same, is_open = row[7:11]
    return KeyUsage(
        now=now, spent={"daily": spent_day, "monthly": spent_month},
        reserved={"daily": held_day, "monthly": held_month},
        requests={"daily": requests_day, "monthly": requests_month}, in_flight=in_flight,
        admissions=AdmissionWindow(window_count, window_first),
        idempotent_match=None if same is None else (same, bool(is_open)),
    )
