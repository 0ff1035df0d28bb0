"""The ``keys`` commands: create, list, show, limit, disable, rotate, revoke, delete and import API keys.

They edit the key store the gateway reads (``registry.py``): the database's tables when one is
configured, else keys.json (atomic, safe while the gateway runs). Each change is audited as the
command line's. A new key goes to stdout, messages and warnings to stderr, so
``KEY=$(ziri-images keys create --user alice)`` captures the key alone.
"""

import argparse
import json
import sys

from ..catalog.pricing import PriceBook
from ..errors import ConfigError
from ..keys.edits import utc_timestamp
from ..keys.file_registry import FileKeyRegistry
from ..keys.store import LIMIT_NAMES
from .errors import CliError
from .options import database_url_option
from .options import expiry
from .options import format_option
from .options import given_limits
from .options import limit_options
from .options import name_list
from .options import pricing_file_option
from .options import setting
from .registry import CLI_ACTOR
from .registry import key_registry
from .registry import store_options
from .tables import note
from .tables import write_record
from .tables import write_rows

KEY_COLUMNS = ("id", "user", "team", "status", "expires_at", "allowed_providers", "allowed_models", *LIMIT_NAMES)


# --- argument types ---------------------------------------------------------------------

def team_name(text):
    return None if text.strip().lower() == "none" else text.strip()


# --- wiring -----------------------------------------------------------------------------

def _key_options(parser):
    """Options shared by 'keys create' and 'keys set'; absent ones leave the record unchanged."""
    limit_options(parser, LIMIT_NAMES)
    access = parser.add_argument_group("access")
    access.add_argument("--team", type=team_name, metavar="TEAM", default=argparse.SUPPRESS,
                        help="the team the key belongs to (its limits hold too), or 'none'")
    access.add_argument("--expires-at", type=expiry, metavar="WHEN", default=argparse.SUPPRESS,
                        help="ISO date or date-time (UTC unless an offset is given), or 'never'")
    access.add_argument("--allowed-providers", type=name_list, metavar="LIST", default=argparse.SUPPRESS,
                        help="comma-separated providers, or 'any'")
    access.add_argument("--allowed-models", type=name_list, metavar="LIST", default=argparse.SUPPRESS,
                        help="comma-separated models, or 'any'")
    pricing_file_option(parser)


def _key_action(actions, name, help_text, handler, description=None, **defaults):
    """Add ``keys NAME ID``: a command on one key, with --keys-file and --database-url."""
    description = description or f"{help_text[0].upper()}{help_text[1:]}."
    parser = actions.add_parser(name, help=help_text, description=description)
    parser.add_argument("id", metavar="ID", help="the key id")
    store_options(parser)
    parser.set_defaults(handler=handler, **defaults)
    return parser


def add_commands(commands):
    """Add ``keys`` and its actions to the command line."""
    keys = commands.add_parser(
        "keys", help="create, list, limit, disable, rotate, revoke, delete and import API keys",
        description="Manage the gateway's keys: in the database when one is configured, else in keys.json. Edits "
                    "are safe while the gateway runs; every instance picks them up without a restart.")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print it (once)",
                                description="Create a key for a user. The key is printed once on stdout; "
                                            "only its hash is stored.")
    create.add_argument("--user", required=True, help="the user id (part of the key: letters, digits, _ . -)")
    create.add_argument("--id", help="the key id (default: key_ + 8 random hex digits)")
    _key_options(create)
    store_options(create)
    create.set_defaults(handler=keys_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--user", help="only this user's keys")
    listing.add_argument("--team", help="only this team's keys")
    format_option(listing)
    store_options(listing)
    listing.set_defaults(handler=keys_list)

    show = _key_action(actions, "show", "show one key's record (never the key itself)", keys_show)
    format_option(show, default="table", choices=("table", "json"))
    _key_action(actions, "disable", "refuse the key at once (reversible)", keys_status, status="disabled")
    _key_action(actions, "enable", "accept a disabled key again", keys_status, status="active")
    _key_action(actions, "revoke", "disable the key, recording when; its record and id stay", keys_revoke,
                description="Disable the key and record when (revoked_at); its record, id and ledger history stay.")
    _key_action(actions, "delete", "remove the key", keys_delete,
                description="Remove the key's record; its ledger records keep its id. Prefer 'revoke' for a key "
                            "that has served requests.")
    _key_action(actions, "rotate", "give a key a new secret; the old one stops working at once", keys_rotate,
                description="Replace the key's secret. The new key is printed once; the old one is refused as "
                            "soon as the gateway sees the change.")
    update = _key_action(actions, "set", "change a key's limits, team, expiry or allow-lists", keys_set,
                         description="Change a key's limits, team, expiry or allow-lists; options not given are "
                                     "left as they are.")
    _key_options(update)

    load = actions.add_parser(
        "import", help="copy a keys.json into the database (twice imports nothing twice)",
        description="Write the keys and teams of a key file that the database does not hold yet (by id, and a "
                    "key by its hash). What the database holds is left as it is, and a key it deleted (or "
                    "whose secret it rotated) is never brought back. Safe as a release step.")
    load.add_argument("file", metavar="FILE", help="the key file to import")
    database_url_option(load)
    load.set_defaults(handler=keys_import)


# --- commands ---------------------------------------------------------------------------

def _key_changes(args):
    """Return (limits, fields) given on the command line; absent options are not included."""
    given = vars(args)  # options left out are absent (argparse.SUPPRESS), not None
    fields = {name: given[name] for name in ("team", "expires_at", "allowed_providers", "allowed_models")
              if name in given}
    return given_limits(args, LIMIT_NAMES), fields


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
    registry, _where = key_registry(args)
    limits, fields = _key_changes(args)
    _warn_unknown_names(args, fields)
    record, raw_key = registry.create_key(CLI_ACTOR, args.user, key_id=args.id, limits=limits, **fields)
    print(raw_key)
    note(f"created key {record['id']} for user {record['user']}. This is the only time the key is shown: "
         "store it now (only its hash is kept).")


def _display(record):
    """Return a key record flattened for a table: limits as columns, defaults spelt out."""
    limits = record.get("limits") or {}
    shown = {name: value for name, value in record.items() if name != "limits"}
    shown.update(expires_at=record.get("expires_at") or "never", team=record.get("team") or "-",
                 allowed_providers="any" if record.get("allowed_providers") is None else record["allowed_providers"],
                 allowed_models="any" if record.get("allowed_models") is None else record["allowed_models"])
    shown.update({name: limits.get(name) or "-" for name in LIMIT_NAMES})
    return shown


def keys_list(args):
    registry, _where = key_registry(args)
    records = registry.list_keys(user=args.user, team=args.team)
    write_rows(sys.stdout, args.format, KEY_COLUMNS, [_display(record) for record in records], document=records)


def keys_show(args):
    registry, _where = key_registry(args)
    record = registry.get_key(args.id)
    write_record(args.format, record, _display(record))


def keys_status(args):
    registry, _where = key_registry(args)
    record = registry.update_key(CLI_ACTOR, args.id, status=args.status)
    note(f"key {record['id']} ({record['user']}) is now {record['status']}")


def keys_revoke(args):
    registry, _where = key_registry(args)
    record = registry.revoke_key(CLI_ACTOR, args.id, utc_timestamp())
    note(f"key {record['id']} ({record['user']}) is revoked: refused from the next request on. Its record, "
         f"id and ledger history stay ('ziri-images keys enable {record['id']}' would accept it again).")


def keys_delete(args):
    registry, where = key_registry(args)
    record = registry.delete_key(CLI_ACTOR, args.id)
    note(f"deleted key {record['id']} ({record['user']}) from {where}: refused from the next request "
         "on. Its ledger records keep its id; do not give that id to a new key.")


def keys_rotate(args):
    registry, _where = key_registry(args)
    record, raw_key = registry.rotate_key(CLI_ACTOR, args.id)
    print(raw_key)
    note(f"rotated key {record['id']} for user {record['user']}: the old key no longer works. "
         "This is the only time the new key is shown: store it now.")
    if record.get("status") != "active":
        note(f"warning: the key is {record.get('status')}; run 'ziri-images keys enable {record['id']}' to use it")


def keys_set(args):
    registry, _where = key_registry(args)
    limits, fields = _key_changes(args)
    if not limits and not fields:
        raise CliError("nothing to change: give at least one of the limit, --team, --expires-at or --allowed-* "
                       "options")
    _warn_unknown_names(args, fields)
    record = registry.update_key(CLI_ACTOR, args.id, limits=limits, **fields)
    note(f"updated key {record['id']} ({record['user']})")


def keys_import(args):
    """Copy a key file's keys and teams into the database; what it holds or deleted stays as it is."""
    registry, where = key_registry(args)
    if isinstance(registry, FileKeyRegistry):
        raise CliError("no database configured (ZIRI_DATABASE_URL, DATABASE_URL or --database-url): keys import "
                       "copies a key file into the database; without one the gateway reads the key file itself")
    try:
        with open(args.file, encoding="utf-8") as file:
            document = json.load(file)
    except ValueError as error:
        raise CliError(f"key file {args.file}: {error}") from None
    counts = registry.import_document(CLI_ACTOR, document, args.file)
    note(f"{args.file} -> {where}: imported {counts['keys']} key(s) and {counts['teams']} team(s); "
         f"{counts['existing']} already there (left as they are); {counts['deleted']} deleted or rotated in the "
         "database (not brought back)")
