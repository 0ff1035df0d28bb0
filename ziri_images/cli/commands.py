"""What the operator commands do: turn parsed arguments into calls and print the results.

Results go to stdout (a new key, a table, CSV or JSON); messages and warnings go to stderr, so
``KEY=$(ziri-images keys create --user alice)`` captures the key alone.
"""

import sys
from dataclasses import replace

from ..catalog.pricing import PriceBook
from ..catalog.pricing_check import catalog_columns
from ..catalog.pricing_check import catalog_notes
from ..catalog.pricing_check import catalog_rows
from ..catalog.pricing_check import catalog_warnings
from ..config import Config
from ..errors import ConfigError
from ..gateway import open_store
from ..keys import keyfile
from ..keys.store import LIMIT_NAMES
from ..ledger.money import format_ts
from ..ledger.records import encode_record
from ..ledger.report import Progress
from ..ops.refusals import refusal_counts
from .tables import write_rows

KEY_COLUMNS = ("id", "user", "status", "expires_at", "allowed_providers", "allowed_models", *LIMIT_NAMES)
REPORT_COLUMNS = ("requests", "images", "cost", "expired")
REFUSAL_COLUMNS = ("day", "key", "code", "refused")


class CliError(Exception):
    """A command that cannot be carried out; ``main`` prints the message and exits 1."""


def note(message):
    print(message, file=sys.stderr)


def setting(args, option, name):
    """Return the path given with ``option``, else the server's setting ``name``."""
    value = getattr(args, option)
    return value if value is not None else Config.from_environ(read_providers=False)[name]


# --- keys -------------------------------------------------------------------------------

def _key_changes(args):
    """Return (limits, fields) given on the command line; absent options are not included."""
    given = vars(args)  # options left out are absent (argparse.SUPPRESS), not None
    limits = {name: given[name] for name in LIMIT_NAMES if name in given}
    fields = {name: given[name] for name in ("expires_at", "allowed_providers", "allowed_models") if name in given}
    return limits, fields


def _warn_unknown_names(args, fields):
    """Warn about allow-list entries the catalog does not know (a typo would deny every request)."""
    try:
        book = PriceBook.from_file(setting(args, "pricing_file", "PRICING_FILE"))
    except ConfigError:
        return
    known = {"allowed_providers": set(book.providers),
             "allowed_models": {model.name for model in book.image_models()}}
    for name, values in fields.items():
        unknown = [value for value in values or () if name in known and value not in known[name]]
        for value in unknown:
            note(f"warning: {name}: {value!r} is not in the catalog; requests for it will be refused")


def keys_create(args):
    limits, fields = _key_changes(args)
    _warn_unknown_names(args, fields)
    record, raw_key = keyfile.create_key(args.keys_file_path, args.user, key_id=args.id,
                                         limits=limits, **fields)
    print(raw_key)
    note(f"created key {record['id']} for user {record['user']}. This is the only time the key is shown: "
         "store it now (only its hash is kept).")


def _display(record):
    """Return a key record flattened for a table: limits as columns, defaults spelt out."""
    limits = record.get("limits") or {}
    shown = {name: value for name, value in record.items() if name != "limits"}
    shown.update(expires_at=record.get("expires_at") or "never",
                 allowed_providers="any" if record.get("allowed_providers") is None else record["allowed_providers"],
                 allowed_models="any" if record.get("allowed_models") is None else record["allowed_models"])
    shown.update({name: limits.get(name) or "-" for name in LIMIT_NAMES})
    return shown


def keys_list(args):
    records = keyfile.list_keys(args.keys_file_path)
    write_rows(sys.stdout, args.format, KEY_COLUMNS, [_display(record) for record in records], document=records)


def keys_show(args):
    document = keyfile.read_document(args.keys_file_path)
    record = keyfile.public_view(keyfile.find_record(document, args.id))
    if args.format == "json":
        write_rows(sys.stdout, "json", (), [], document=record)
        return
    rows = [{"field": name, "value": value} for name, value in _display(record).items()]
    write_rows(sys.stdout, "table", ("field", "value"), rows)


def keys_status(args):
    record = keyfile.set_status(args.keys_file_path, args.id, args.status)
    note(f"key {record['id']} ({record['user']}) is now {record['status']}")


def keys_revoke(args):
    record = keyfile.revoke_key(args.keys_file_path, args.id)
    note(f"key {record['id']} ({record['user']}) is revoked: refused from the next request on. Its record, "
         f"id and ledger history stay ('ziri-images keys enable {record['id']}' would accept it again).")


def keys_delete(args):
    record = keyfile.delete_key(args.keys_file_path, args.id)
    note(f"deleted key {record['id']} ({record['user']}) from {args.keys_file_path}: refused from the next request "
         "on. Its ledger records keep its id; do not give that id to a new key.")


def keys_rotate(args):
    record, raw_key = keyfile.rotate_key(args.keys_file_path, args.id)
    print(raw_key)
    note(f"rotated key {record['id']} for user {record['user']}: the old key no longer works. "
         "This is the only time the new key is shown: store it now.")
    if record.get("status") != "active":
        note(f"warning: the key is {record.get('status')}; run 'ziri-images keys enable {record['id']}' to use it")


def keys_set(args):
    limits, fields = _key_changes(args)
    if not limits and not fields:
        raise CliError("nothing to change: give at least one of the limit, --expires-at or --allowed-* options")
    _warn_unknown_names(args, fields)
    record = keyfile.update_key(args.keys_file_path, args.id, limits=limits, **fields)
    note(f"updated key {record['id']} ({record['user']})")


# --- report and ledger ------------------------------------------------------------------

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


# --- pricing ----------------------------------------------------------------------------

def pricing_check(args):
    path = setting(args, "pricing_file", "PRICING_FILE")
    book = PriceBook.from_file(path)
    rows = catalog_rows(book)
    write_rows(sys.stdout, args.format, catalog_columns(rows), rows)
    for line in catalog_notes(book):
        note(f"note: {line}")
    warnings = catalog_warnings(book)
    for warning in warnings:
        note(f"warning: {warning}")
    note(f"{path}: valid, {len({(row['provider'], row['model']) for row in rows})} image models, "
         f"{len(rows)} prices, {len(warnings)} warning(s)")
    if warnings and args.strict:
        raise CliError("warnings are errors with --strict")
