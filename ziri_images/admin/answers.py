"""Describe the admin API's answers for the OpenAPI document (they validate nothing at run time).

A key's record is keys.json's entry without its hash; a team's is its entry with its id and how
many keys it has. The tests check real answers against these.
"""

from marshmallow import INCLUDE
from marshmallow import Schema
from marshmallow import fields

from ..keys.store import LIMIT_NAMES
from ..keys.store import TEAM_LIMIT_NAMES
from ..schemas.responses import UsageSchema


def _limits(names):
    return fields.Dict(keys=fields.String(), values=fields.Float(), required=True,
                       metadata={"description": f"Set limits only, by name ({', '.join(names)}); absent: unlimited."})


class KeyRecordSchema(Schema):
    """A key's record: never the key, nor its hash."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    user = fields.String(required=True)
    team = fields.String(metadata={"description": "The team's id; absent: no team."})
    status = fields.String(required=True)
    created_at = fields.String()
    expires_at = fields.String(required=True, allow_none=True)
    allowed_providers = fields.List(fields.String(), required=True, allow_none=True)
    allowed_models = fields.List(fields.String(), required=True, allow_none=True)
    limits = _limits(LIMIT_NAMES)
    revoked_at = fields.String()
    rotated_at = fields.String()


class TeamRecordSchema(Schema):
    """A team's record."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True)
    limits = _limits(TEAM_LIMIT_NAMES)
    created_at = fields.String()
    keys = fields.Integer(required=True, metadata={"description": "How many keys belong to it."})


class NewKeySchema(Schema):
    """A key just created or rotated: the key itself, shown this once, and its record."""

    key = fields.String(required=True, metadata={"description": "ziri-{user}-{secret}: store it now, it is never "
                                                                "shown again (only its hash is kept)."})
    record = fields.Nested(KeyRecordSchema, required=True)


class KeyAnswerSchema(Schema):
    record = fields.Nested(KeyRecordSchema, required=True)


class KeyDetailSchema(Schema):
    """A key's record and its usage now (null until this instance sees a key created elsewhere)."""

    record = fields.Nested(KeyRecordSchema, required=True)
    usage = fields.Nested(UsageSchema, required=True, allow_none=True)


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeyRecordSchema), required=True)


class TeamAnswerSchema(Schema):
    record = fields.Nested(TeamRecordSchema, required=True)


class TeamDetailSchema(Schema):
    record = fields.Nested(TeamRecordSchema, required=True)
    keys = fields.List(fields.String(), required=True, metadata={"description": "The ids of the team's keys."})


class TeamListSchema(Schema):
    teams = fields.List(fields.Nested(TeamRecordSchema), required=True)


class SpendRowSchema(Schema):
    """One group: its names (one field per grouping) and its totals."""

    class Meta:
        unknown = INCLUDE

    requests = fields.Integer(required=True)
    images = fields.Integer(required=True)
    cost = fields.Float(required=True, metadata={"description": "USD, each request at its final amount."})
    expired = fields.Integer(required=True, metadata={"description": "Requests charged at their reservation "
                                                                     "(their worker died)."})


class SpendSchema(Schema):
    """Spend per group, as ``ziri-images report --format json``."""

    by = fields.List(fields.String(), required=True)
    since = fields.String(required=True, allow_none=True, data_key="from")
    until = fields.String(required=True, allow_none=True, data_key="to")
    rows = fields.List(fields.Nested(SpendRowSchema), required=True)
    totals = fields.Nested(SpendRowSchema, required=True)


# Component name -> schema, for the OpenAPI document.
SCHEMAS = {"KeyRecord": KeyRecordSchema, "TeamRecord": TeamRecordSchema, "NewKey": NewKeySchema,
           "KeyAnswer": KeyAnswerSchema, "KeyDetail": KeyDetailSchema, "KeyList": KeyListSchema,
           "TeamAnswer": TeamAnswerSchema, "TeamDetail": TeamDetailSchema, "TeamList": TeamListSchema,
           "Spend": SpendSchema}
