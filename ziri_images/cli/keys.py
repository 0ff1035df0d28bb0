"""The ``keys`` commands: create, list, show, limit, disable, rotate, revoke and delete API keys.

They edit keys.json through ``keys.keyfile`` (atomic, safe while the gateway runs). A new key
goes to stdout, messages and warnings to stderr, so ``KEY=$(ziri-images keys create --user
alice)`` captures the key alone.
"""

import argparse
import sys

from ..catalog.pricing import PriceBook
from ..errors import ConfigError
from ..keys import keyfile
from ..keys.store import LIMIT_MAXIMUMS
from ..keys.store import LIMIT_NAMES
from ..keys.store import limit_problem
from ..keys.store import limit_rule
from .errors import CliError
from .options import UNSET_WORDS
from .options import format_option
from .options import keys_file_option
from .options import pricing_file_option
from .options import setting
from .options import when
from .tables import note
from .tables import write_rows

KEY_COLUMNS = ("id", "user", "team", "status", "expires_at", "allowed_providers", "allowed_models", *LIMIT_NAMES)
# (keys.json name, number type, metavar, help) of each limit option.
LIMIT_OPTIONS = (
    ("daily_spend_limit", float, "USD", "spend per UTC day"),
    ("monthly_spend_limit", float, "USD", "spend per calendar month (UTC)"),
    ("requests_per_minute", int, "N", "requests admitted in any 60 seconds"),
    ("max_concurrent_requests", int, "N", "requests in flight at once"),
    ("end_user_daily_spend_limit", float, "USD", "spend per UTC day of each end user (the request's 'user')"),
    ("soft_daily_spend_limit", float, "USD", "alert only: budget alerts at its thresholds, never a refusal"),
    ("soft_monthly_spend_limit", float, "USD", "alert only, per calendar month"),
)


# --- argument types ---------------------------------------------------------------------

def _limit_type(name, number_type):
    def parse(text):
        if text.strip().lower() in UNSET_WORDS:
            return None
        try:
            value = number_type(text)
        except ValueError:
            value = None
        if value is None or limit_problem(name, value) is not None:
            # NaN, infinities and values past the largest limit could never be enforced: refused here.
            raise argparse.ArgumentTypeError(f"expected {limit_rule(name)}, or 0 / 'none' for unlimited; "
                                             f"got {text!r}") from None
        return value or None  # 0 means unlimited, as in keys.json: store it as no limit at all
    return parse


def expiry(text):
    if text.strip().lower() in UNSET_WORDS:
        return None
    return when(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_list(text):
    if text.strip().lower() in UNSET_WORDS:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, or 'any' to allow all")
    return names


# --- wiring -----------------------------------------------------------------------------

def _key_options(parser):
    """Options shared by 'keys create' and 'keys set'; absent ones leave the record unchanged."""
    group = parser.add_argument_group("limits (0 or 'none' = unlimited)")
    for name, number_type, metavar, help_text in LIMIT_OPTIONS:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_limit_type(name, number_type),
                           metavar=metavar, default=argparse.SUPPRESS,
                           help=f"{help_text} (at most {LIMIT_MAXIMUMS[name]:,})")
    access = parser.add_argument_group("access")
    access.add_argument("--expires-at", type=expiry, metavar="WHEN", default=argparse.SUPPRESS,
                        help="ISO date or date-time (UTC unless an offset is given), or 'never'")
    access.add_argument("--allowed-providers", type=name_list, metavar="LIST", default=argparse.SUPPRESS,
                        help="comma-separated providers, or 'any'")
    access.add_argument("--allowed-models", type=name_list, metavar="LIST", default=argparse.SUPPRESS,
                        help="comma-separated models, or 'any'")
    pricing_file_option(parser)


def _key_action(actions, name, help_text, handler, description=None, **defaults):
    """Add ``keys NAME ID``: a command on one key, with --keys-file."""
    description = description or f"{help_text[0].upper()}{help_text[1:]}."
    parser = actions.add_parser(name, help=help_text, description=description)
    parser.add_argument("id", metavar="ID", help="the key id")
    keys_file_option(parser)
    parser.set_defaults(handler=handler, **defaults)
    return parser


def add_commands(commands):
    """Add ``keys`` and its actions to the command line."""
    keys = commands.add_parser("keys", help="create, list, limit, disable, rotate, revoke and delete API keys",
                               description="Manage keys.json. Edits are atomic and safe while the gateway "
                                           "runs; it picks them up without a restart.")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print it (once)",
                                description="Create a key for a user. The key is printed once on stdout; "
                                            "only its hash is stored.")
    create.add_argument("--user", required=True, help="the user id (part of the key: letters, digits, _ . -)")
    create.add_argument("--id", help="the key id (default: key_ + 8 random hex digits)")
    _key_options(create)
    keys_file_option(create)
    create.set_defaults(handler=keys_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    format_option(listing)
    keys_file_option(listing)
    listing.set_defaults(handler=keys_list)

    show = _key_action(actions, "show", "show one key's record (never the key itself)", keys_show)
    format_option(show, default="table", choices=("table", "json"))
    _key_action(actions, "disable", "refuse the key at once (reversible)", keys_status, status="disabled")
    _key_action(actions, "enable", "accept a disabled key again", keys_status, status="active")
    _key_action(actions, "revoke", "disable the key, recording when; its record and id stay", keys_revoke,
                description="Disable the key and record when (revoked_at); its record, id and ledger history stay.")
    _key_action(actions, "delete", "remove the key from the file", keys_delete,
                description="Remove the key's record from keys.json; its ledger records keep its id. Prefer "
                            "'revoke' for a key that has served requests.")
    _key_action(actions, "rotate", "give a key a new secret; the old one stops working at once", keys_rotate,
                description="Replace the key's secret. The new key is printed once; the old one is refused as "
                            "soon as the gateway sees the file change.")
    update = _key_action(actions, "set", "change a key's limits, expiry or allow-lists", keys_set,
                         description="Change a key's limits, expiry or allow-lists; options not given are left "
                                     "as they are.")
    _key_options(update)


# --- commands ---------------------------------------------------------------------------

def keys_file(args):
    """Return the key file: --keys-file, else the gateway's setting."""
    return setting(args, "keys_file", "KEYS_FILE")


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
    path = keys_file(args)
    limits, fields = _key_changes(args)
    _warn_unknown_names(args, fields)
    record, raw_key = keyfile.create_key(path, args.user, key_id=args.id, limits=limits, **fields)
    print(raw_key)
    note(f"created key {record['id']} for user {record['user']}. This is the only time the key is shown: "
         "store it now (only its hash is kept).")


def _display(record):
    """Return a key record flattened for a table: limits as columns, defaults spelt out."""
    limits = record.get("limits") or {}
    shown = {name: value for name, value in record.items() if name != "limits"}
    shown.update(team=record.get("team") or "-", expires_at=record.get("expires_at") or "never",
                 allowed_providers="any" if record.get("allowed_providers") is None else record["allowed_providers"],
                 allowed_models="any" if record.get("allowed_models") is None else record["allowed_models"])
    shown.update({name: limits.get(name) or "-" for name in LIMIT_NAMES})
    return shown


def keys_list(args):
    path = keys_file(args)
    records = keyfile.list_keys(path)
    write_rows(sys.stdout, args.format, KEY_COLUMNS, [_display(record) for record in records], document=records)


def keys_show(args):
    path = keys_file(args)
    document = keyfile.read_document(path)
    record = keyfile.public_view(keyfile.find_record(document, args.id))
    if args.format == "json":
        write_rows(sys.stdout, "json", (), [], document=record)
        return
    rows = [{"field": name, "value": value} for name, value in _display(record).items()]
    write_rows(sys.stdout, "table", ("field", "value"), rows)


def keys_status(args):
    path = keys_file(args)
    record = keyfile.set_status(path, args.id, args.status)
    note(f"key {record['id']} ({record['user']}) is now {record['status']}")


def keys_revoke(args):
    path = keys_file(args)
    record = keyfile.revoke_key(path, args.id)
    note(f"key {record['id']} ({record['user']}) is revoked: refused from the next request on. Its record, "
         f"id and ledger history stay ('ziri-images keys enable {record['id']}' would accept it again).")


def keys_delete(args):
    path = keys_file(args)
    record = keyfile.delete_key(path, args.id)
    note(f"deleted key {record['id']} ({record['user']}) from {path}: refused from the next request "
         "on. Its ledger records keep its id; do not give that id to a new key.")


def keys_rotate(args):
    path = keys_file(args)
    record, raw_key = keyfile.rotate_key(path, args.id)
    print(raw_key)
    note(f"rotated key {record['id']} for user {record['user']}: the old key no longer works. "
         "This is the only time the new key is shown: store it now.")
    if record.get("status") != "active":
        note(f"warning: the key is {record.get('status')}; run 'ziri-images keys enable {record['id']}' to use it")


def keys_set(args):
    path = keys_file(args)
    limits, fields = _key_changes(args)
    if not limits and not fields:
        raise CliError("nothing to change: give at least one of the limit, --expires-at or --allowed-* options")
    _warn_unknown_names(args, fields)
    record = keyfile.update_key(path, args.id, limits=limits, **fields)
    note(f"updated key {record['id']} ({record['user']})")
