"""Print a command's output: rows for people (an aligned table), spreadsheets (CSV) or programs (JSON).

Results go to stdout; messages and warnings (``note``) to stderr, so a command's output can be captured alone.
"""

import csv
import json
import re
import sys

FORMATS = ("table", "csv", "json")
# A table cell longer than this is cut (CSV and JSON keep everything).
MAX_CELL = 60
_NUMBER = re.compile(r"-?[0-9][0-9,]*(\.[0-9]+)?")


def note(message):
    """Print a message or a warning for the operator on stderr."""
    print(message, file=sys.stderr)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        text = ",".join(str(item) for item in value) or "(none)"
    else:
        text = str(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."


def render_table(columns, rows):
    """Return ``rows`` (dicts) as a text table with a header; columns of numbers are right-aligned."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[index]) for line in cells]) for index, column in enumerate(columns)]
    numeric = [bool(cells) and all(_NUMBER.fullmatch(line[index]) for line in cells) for index in range(len(columns))]

    def line(values):
        parts = [value.rjust(width) if right else value.ljust(width)
                 for value, width, right in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    output = [line(columns), line(["-" * width for width in widths])]
    output.extend(line(values) for values in cells)
    return "\n".join(output) + "\n"


def write_rows(stream, fmt, columns, rows, document=None):
    """Write ``rows`` to ``stream`` as ``fmt``; JSON writes ``document`` (default: the rows)."""
    if fmt == "json":
        json.dump(rows if document is None else document, stream, indent=2, ensure_ascii=False)
        stream.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _csv_value(row.get(column)) for column in columns})
    elif fmt == "table":
        stream.write(render_table(columns, rows))
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _csv_value(value):
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return "" if value is None else value


def write_record(fmt, record, shown):
    """Print one record: as JSON (``record`` itself), or as a table of ``shown``'s fields and values."""
    if fmt == "json":
        write_rows(sys.stdout, "json", (), [], document=record)
        return
    rows = [{"field": name, "value": value} for name, value in shown.items()]
    write_rows(sys.stdout, "table", ("field", "value"), rows)
