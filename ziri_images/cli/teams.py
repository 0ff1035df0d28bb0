"""The ``teams`` commands: create, list, show, set (alias ``update``) and delete teams.

A team holds its keys to its own limits beside theirs (``keys create --team``, ``keys set
--team``). The commands edit the key store the gateway reads (``registry.py``), each change
audited as the command line's.
"""

import argparse
import sys

from ..keys.store import STATUSES
from ..keys.store import TEAM_LIMIT_NAMES
from .errors import CliError
from .options import format_option
from .options import given_limits
from .options import limit_options
from .registry import CLI_ACTOR
from .registry import key_registry
from .registry import store_options
from .tables import note
from .tables import write_record
from .tables import write_rows

TEAM_COLUMNS = ("id", "name", "status", "keys", *TEAM_LIMIT_NAMES)


def _team_action(actions, name, help_text, handler, aliases=()):
    parser = actions.add_parser(name, aliases=list(aliases), help=help_text,
                                description=f"{help_text[0].upper()}{help_text[1:]}.")
    parser.add_argument("id", metavar="ID", help="the team id")
    store_options(parser)
    parser.set_defaults(handler=handler)
    return parser


def add_commands(commands):
    """Add ``teams`` and its actions to the command line."""
    teams = commands.add_parser("teams", help="create, list, limit and delete teams of keys",
                                description="Manage teams: groups of keys held together to the team's own limits, "
                                            "beside each key's. In the database when one is configured, else in "
                                            "keys.json.")
    actions = teams.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a team", description="Create a team; prints its id.")
    create.add_argument("--name", required=True, help="the team's name (free text)")
    create.add_argument("--id", help="the team id (default: team_ + 8 random hex digits)")
    limit_options(create, TEAM_LIMIT_NAMES)
    store_options(create)
    create.set_defaults(handler=teams_create)

    listing = actions.add_parser("list", help="list teams, their limits and how many keys each has")
    format_option(listing)
    store_options(listing)
    listing.set_defaults(handler=teams_list)

    show = _team_action(actions, "show", "show one team's record", teams_show)
    format_option(show, default="table", choices=("table", "json"))
    update = _team_action(actions, "set", "change a team's name, status or limits", teams_set, aliases=("update",))
    update.add_argument("--name", default=argparse.SUPPRESS, help="a new name")
    update.add_argument("--status", choices=STATUSES, default=argparse.SUPPRESS,
                        help="disabled: every key of the team is refused")
    limit_options(update, TEAM_LIMIT_NAMES)
    _team_action(actions, "delete", "delete a team that has no keys", teams_delete)


def _display(record):
    limits = record.get("limits") or {}
    return {**{name: value for name, value in record.items() if name != "limits"},
            **{name: limits.get(name) or "-" for name in TEAM_LIMIT_NAMES}}


def teams_create(args):
    registry, _where = key_registry(args)
    record = registry.create_team(CLI_ACTOR, args.name, team_id=args.id, limits=given_limits(args, TEAM_LIMIT_NAMES))
    print(record["id"])
    note(f"created team {record['id']} ({record['name']}); add keys with 'ziri-images keys set KEY --team "
         f"{record['id']}' or 'keys create --team {record['id']}'")


def teams_list(args):
    registry, _where = key_registry(args)
    records = registry.list_teams()
    write_rows(sys.stdout, args.format, TEAM_COLUMNS, [_display(record) for record in records], document=records)


def teams_show(args):
    registry, _where = key_registry(args)
    record = registry.get_team(args.id)
    write_record(args.format, record, _display(record))


def teams_set(args):
    registry, _where = key_registry(args)
    fields = {name: getattr(args, name) for name in ("name", "status") if name in vars(args)}
    limits = given_limits(args, TEAM_LIMIT_NAMES)
    if not fields and not limits:
        raise CliError("nothing to change: give --name, --status or a limit option")
    record = registry.update_team(CLI_ACTOR, args.id, limits=limits, **fields)
    note(f"updated team {record['id']} ({record['name']})")


def teams_delete(args):
    registry, where = key_registry(args)
    record = registry.delete_team(CLI_ACTOR, args.id)
    note(f"deleted team {record['id']} ({record['name']}) from {where}")
