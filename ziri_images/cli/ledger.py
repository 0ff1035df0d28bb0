"""The ledger's commands: ``report`` (spend, or refusals) and ``ledger export`` / ``ledger import``.

``report`` and ``ledger export`` read the configured store (or the JSONL file given with
``--ledger``); ``ledger import`` writes to the database (``db.ledger_import``).
"""

import argparse
import sys
from dataclasses import replace

from ..config import Config
from ..gateway import open_store
from ..ledger.money import format_ts
from ..ledger.records import encode_record
from ..ledger.report import GROUPINGS
from ..ledger.report import Progress
from ..ops.refusals import refusal_counts
from . import db
from .errors import CliError
from .options import database_url_option
from .options import format_option
from .options import when
from .tables import note
from .tables import write_rows

REPORT_COLUMNS = ("requests", "images", "cost", "expired")
REFUSAL_COLUMNS = ("day", "key", "code", "refused")


def groupings(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUPINGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected one or more of {', '.join(GROUPINGS)} (comma-separated)")
    return tuple(dict.fromkeys(names))


def _ledger_option(parser):
    parser.add_argument("--ledger", help="read this JSONL ledger (default: the configured store: "
                                         "$ZIRI_LEDGER_PATH or var/ledger.jsonl)")


def _time_range_options(parser):
    parser.add_argument("--since", type=when, metavar="WHEN", help="from this ISO date/date-time (inclusive, UTC)")
    parser.add_argument("--until", type=when, metavar="WHEN", help="up to this ISO date/date-time (exclusive, UTC)")


def add_report_command(commands):
    """Add ``report`` (alias ``usage``) to the command line."""
    parser = commands.add_parser(
        "report", aliases=["usage"], help="spend and image counts from the ledger",
        description="Spend and images per key, user, model and/or day. Each request counts once, at its "
                    "admission time, at its charged amount (or its reserved amount if its worker died and "
                    "no charge followed).")
    parser.add_argument("--view", choices=("spend", "refusals"), default="spend",
                        help="spend (the default) or refusals: refused requests per day, key and code")
    parser.add_argument("--by", type=groupings, default=("key",), metavar="GROUPS",
                        help=f"group by one or more of {', '.join(GROUPINGS)}, comma-separated (default key)")
    _time_range_options(parser)
    format_option(parser)
    _ledger_option(parser)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress on stderr (default: when stderr is a terminal)")
    parser.set_defaults(handler=report)


def add_ledger_commands(commands):
    """Add ``ledger export`` and ``ledger import`` to the command line."""
    ledger = commands.add_parser("ledger", help="export the ledger's records",
                                 description="Move the ledger's records between stores.")
    actions = ledger.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write every record as JSONL on stdout",
                                description="Write every record of the store, oldest first, as JSONL on stdout "
                                            "in the file store's format (one compact JSON object per line). "
                                            "Records are filtered on their time (ts).")
    _time_range_options(export)
    _ledger_option(export)
    export.set_defaults(handler=ledger_export)
    load = actions.add_parser("import", help="load a JSONL ledger into the PostgreSQL store",
                              description="Load the records of a JSONL ledger (the file store's, or an export) "
                                          "into the database. Records already stored (same type and request id) "
                                          "are skipped, so running it twice imports nothing twice.")
    load.add_argument("file", metavar="FILE", help="the JSONL ledger to load")
    database_url_option(load)
    load.add_argument("--into-file-store", action="store_true",
                      help="with no database configured, append to the file store's ledger instead")
    load.set_defaults(handler=db.ledger_import)


def _time_range(args):
    """Return (since, until) as ledger timestamps (None when not given); refuse a backwards range."""
    since = format_ts(args.since) if args.since else None
    until = format_ts(args.until) if args.until else None
    if since and until and since >= until:
        raise CliError("--since must be before --until")
    return since, until


def _existing_store(args):
    """Return the store to read: the ledger given with --ledger, else the one the settings choose."""
    config = Config.from_environ(read_providers=False)
    if args.ledger is not None:
        # A file named on the command line, whatever store the gateway uses.
        config = replace(config, ledger_path=args.ledger, database_url="")
    return open_store(config, create=False)


def report(args):
    if args.view == "refusals":
        return refusal_report(args)
    since, until = _time_range(args)
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    store = _existing_store(args)
    try:
        result = store.report(by=args.by, since=since, until=until,
                              progress=Progress(sys.stderr) if show_progress else None)
    finally:
        store.close()
    if result.skipped_unparsable:
        note(f"warning: skipped {result.skipped_unparsable} ledger line(s) that are not valid records")
    columns = (*args.by, *REPORT_COLUMNS)
    rows = [{**dict(zip(args.by, group, strict=True)), **totals.as_row()} for group, totals in result.rows()]
    total_row = result.totals().as_row()
    if args.format == "table":
        total_row = {**dict.fromkeys(args.by, ""), args.by[0]: "TOTAL", **total_row}
        shown = [{**row, "cost": f"{row['cost']:.4f}"} for row in (*rows, total_row)]
        write_rows(sys.stdout, "table", columns, shown)
        return
    document = {"by": list(args.by), "since": since, "until": until, "rows": rows, "totals": total_row,
                "linesRead": result.lines}
    write_rows(sys.stdout, args.format, columns, rows, document=document)


def refusal_report(args):
    """Print refused requests per day, key and code (the store's refusal record, apart from the ledger)."""
    since_day = args.since.strftime("%Y-%m-%d") if args.since else None
    until_day = args.until.strftime("%Y-%m-%d") if args.until else None
    store = _existing_store(args)
    try:
        counts = refusal_counts(store.refusal_record().refusal_rows(since_day, until_day))
    finally:
        store.close()
    rows = [{"day": day, "key": key_id, "code": code, "refused": number}
            for (day, key_id, code), number in sorted(counts.items())]
    document = {"view": "refusals", "since": since_day, "until": until_day, "rows": rows,
                "totals": {"refused": sum(row["refused"] for row in rows)}}
    write_rows(sys.stdout, args.format, REFUSAL_COLUMNS, rows, document=document)


def ledger_export(args):
    since, until = _time_range(args)
    store = _existing_store(args)
    count = 0
    try:
        output = sys.stdout.buffer
        for record in store.records(since=since, until=until):
            output.write(encode_record(record))
            count += 1
        output.flush()
    finally:
        store.close()
    note(f"exported {count} record(s)")
