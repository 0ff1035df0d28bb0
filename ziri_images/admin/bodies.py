"""The admin API's request bodies and query (marshmallow): what each endpoint accepts, field by field.

Unknown fields are refused (a misspelt limit must not pass for "unlimited"). Limits follow the
command line's one rule, ``keys.store.limit_problem``: finite, non-negative, bounded, whole
counts whole; 0 or null means unlimited. A refusal is 400 ``VALIDATION_ERROR`` with the
messages per field (``load``), as the public API's.
"""

import re
from datetime import datetime
from datetime import timezone

from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate
from marshmallow import validates_schema

from ..errors import ApiError
from ..keys.edits import ID_PATTERN
from ..keys.store import LIMIT_NAMES
from ..keys.store import STATUSES
from ..keys.store import TEAM_LIMIT_NAMES
from ..keys.store import limit_problem
from ..keys.store import limit_rule
from ..ledger.report import GROUPINGS


def _matching(pattern, what):
    """Return a validator for ``pattern`` (a compiled regex ending in \\Z) and the pattern the document shows."""
    def check(value):
        if not pattern.match(value):
            raise ValidationError(f"{what}: use up to 64 letters, digits, '_', '.' and '-', starting with a letter "
                                  "or digit")
    return check, {"pattern": "^" + pattern.pattern.removesuffix("\\Z") + "$"}


_ID, _ID_DOC = _matching(ID_PATTERN, "an id")
# The user is part of the key (``ziri-{user}-{secret}``): keys.base.KEY_PATTERN's user part, bounded.
_USER, _USER_DOC = _matching(re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"), "a user")


def _names():
    return fields.List(fields.String(validate=validate.Length(min=1, max=128)), allow_none=True,
                       validate=validate.Length(min=1, max=1000))


class Limit(fields.Field):
    """One limit: a number ``limit_problem`` accepts, or null; 0 and null both mean unlimited (loaded as None)."""

    def __init__(self, name, **kwargs):
        super().__init__(allow_none=True, metadata={"description": f"{limit_rule(name)}; 0 or null: unlimited",
                                                    "type": "number", "nullable": True}, **kwargs)
        self.limit_name = name

    def _deserialize(self, value, attr, data, **kwargs):
        if limit_problem(self.limit_name, value) is not None:
            raise ValidationError(f"must be {limit_rule(self.limit_name)} (0 or null: unlimited)")
        return value or None


def _limits(names):
    return {name: Limit(name) for name in names}


class Strict(Schema):
    class Meta:
        unknown = RAISE


class Moment(fields.Field):
    """An ISO 8601 date (midnight UTC) or date-time (UTC unless it has an offset), as the command line reads them."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"type": "string", "description": "ISO 8601 date or date-time (UTC unless an "
                                                                    "offset is given)."}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            raise ValidationError("expected an ISO 8601 date (2026-12-01) or date-time (2026-12-01T09:00:00Z)")
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class Groupings(fields.String):
    """Comma-separated names of the report's groupings (``ledger.report.GROUPINGS``), loaded as a tuple."""

    def _deserialize(self, value, attr, data, **kwargs):
        names = [name.strip() for name in super()._deserialize(value, attr, data, **kwargs).split(",")]
        unknown = [name for name in names if name not in GROUPINGS]
        if unknown:
            raise ValidationError(f"group by one or more of {', '.join(GROUPINGS)}, comma-separated; "
                                  f"not {', '.join(repr(name) for name in unknown)}")
        return tuple(dict.fromkeys(names))


KeyChange = Strict.from_dict({
    **_limits(LIMIT_NAMES),
    "team": fields.String(allow_none=True, validate=_ID, metadata={**_ID_DOC, "description": "A team id, or null: "
                                                                                            "no team."}),
    "status": fields.String(validate=validate.OneOf(STATUSES)),
    "expires_at": fields.AwareDateTime(allow_none=True, metadata={"description": "ISO 8601 with an offset; null: "
                                                                                "never."}),
    "allowed_providers": _names(), "allowed_models": _names(),
}, name="KeyChange")
# A new key's fields are a change's (KeyChange's subclass), plus its user and id.
KeyCreate = KeyChange.from_dict({
    "user": fields.String(required=True, validate=_USER, metadata={**_USER_DOC, "description": "Part of the key."}),
    "id": fields.String(validate=_ID, metadata={**_ID_DOC, "description": "Default: key_ and 8 random hex digits."}),
}, name="KeyCreate")

TeamChange = Strict.from_dict({
    **_limits(TEAM_LIMIT_NAMES),
    "name": fields.String(validate=validate.Length(min=1, max=200)),
    "status": fields.String(validate=validate.OneOf(STATUSES), metadata={"description": "disabled: every key of the "
                                                                                        "team is refused."}),
}, name="TeamChange")
TeamCreate = TeamChange.from_dict({
    "name": fields.String(required=True, validate=validate.Length(min=1, max=200)),
    "id": fields.String(validate=_ID, metadata={**_ID_DOC, "description": "Default: team_ and 8 random hex digits."}),
}, name="TeamCreate")

KeyFilter = Strict.from_dict({"user": fields.String(), "team": fields.String()}, name="KeyFilter")


class SpendQuery(Strict):
    """``GET /admin/api/spend``'s query."""

    by = Groupings(load_default=("key",), metadata={"description": f"Comma-separated: {', '.join(GROUPINGS)}."})
    # ``from`` is a Python keyword: the fields are named for what they bound.
    since = Moment(data_key="from", load_default=None)
    until = Moment(data_key="to", load_default=None)

    @validates_schema
    def check_range(self, data, **_):
        if data["since"] and data["until"] and data["since"] >= data["until"]:
            raise ValidationError("must be after 'from'", field_name="to")


def load(schema, body, what="request body"):
    """Return ``body`` (a JSON object, or a query's arguments) loaded by ``schema``, or raise the public API's 400s."""
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_BODY", "Request body must be a JSON object.")
    try:
        return schema().load(body)
    except ValidationError as error:
        raise ApiError(400, "VALIDATION_ERROR", f"Invalid {what}.", details=error.messages) from None
