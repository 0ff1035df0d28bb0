"""The admin API's part of the OpenAPI document: its paths, bodies, answers and errors.

``openapi.build_document`` calls ``add_admin_api(spec, error_responses)``; the errors of each
operation are the catalogue's codes of scope ``admin_api`` (``errors.ERROR_CODES``).
"""

from . import answers
from . import bodies

SCOPES = ("admin_api",)
_KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TEAM_ID = {"name": "team_id", "in": "path", "required": True, "schema": {"type": "string"}}
_STRING = {"type": "string"}
_KEY_FILTER = [{"name": name, "in": "query", "required": False, "schema": _STRING, "description": f"Only this {name}'s "
                                                                                                 "keys."}
               for name in ("user", "team")]
_SPEND_QUERY = [
    {"name": "by", "in": "query", "required": False, "schema": _STRING,
     "description": "Comma-separated groupings: key, user, model, day, endpoint (default key)."},
    {"name": "from", "in": "query", "required": False, "schema": _STRING,
     "description": "ISO 8601 date or date-time (UTC unless an offset is given), inclusive."},
    {"name": "to", "in": "query", "required": False, "schema": _STRING, "description": "Exclusive."},
]

# path -> {method: (summary, request body schema or None, status, answer schema, parameters)}
OPERATIONS = {
    "/admin/api/keys": {
        "post": ("Create a key; the answer shows the key itself, this once", "KeyCreate", "201", "NewKey", []),
        "get": ("List keys (never the keys themselves), by user or team", None, "200", "KeyList", _KEY_FILTER),
    },
    "/admin/api/keys/{key_id}": {
        "get": ("A key's record and its usage now", None, "200", "KeyDetail", [_KEY_ID]),
        "patch": ("Change a key's limits, status, team, expiry or allow-lists (0 or null: unlimited)", "KeyChange",
                  "200", "KeyAnswer", [_KEY_ID]),
        "delete": ("Delete a key: refused from now on; its ledger records stay", None, "200", "KeyAnswer", [_KEY_ID]),
    },
    "/admin/api/keys/{key_id}/rotate": {
        "post": ("Give a key a new secret, shown this once; the old one is refused from now on", None, "200",
                 "NewKey", [_KEY_ID]),
    },
    "/admin/api/teams": {
        "post": ("Create a team", "TeamCreate", "201", "TeamAnswer", []),
        "get": ("List teams", None, "200", "TeamList", []),
    },
    "/admin/api/teams/{team_id}": {
        "get": ("A team's record and its keys", None, "200", "TeamDetail", [_TEAM_ID]),
        "patch": ("Change a team's name, status or limits", "TeamChange", "200", "TeamAnswer", [_TEAM_ID]),
        "delete": ("Delete a team that has no keys", None, "200", "TeamAnswer", [_TEAM_ID]),
    },
    "/admin/api/spend": {
        "get": ("Spend and images per group over a time range (the ledger's report)", None, "200", "Spend",
                _SPEND_QUERY),
    },
}
_PROPAGATION = ("Changes reach every instance within ZIRI_KEYS_REFRESH_SECONDS (default 1 s) with a database, and "
                "this instance at once; every change is recorded in an audit record (ledger export).")


def add_admin_api(spec, error_responses):
    """Add the admin API's schemas, security scheme and paths to ``spec`` (an apispec APISpec)."""
    spec.components.security_scheme("AdminToken", {"type": "http", "scheme": "bearer",
                                                   "description": "ZIRI_ADMIN_TOKEN (the dashboard's token)."})
    for name in ("KeyCreate", "KeyChange", "TeamCreate", "TeamChange"):
        spec.components.schema(name, schema=getattr(bodies, name))
    for name, schema in answers.SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    for path, methods in OPERATIONS.items():
        operations = {}
        for method, (summary, body, status, answer, parameters) in methods.items():
            ok = {"description": "OK" if status == "200" else "Created",
                  "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}}}
            operation = {"summary": summary, "description": _PROPAGATION, "security": [{"AdminToken": []}],
                         "responses": {status: ok, **error_responses(SCOPES, "Error")}}
            if parameters:
                operation["parameters"] = parameters
            if body is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{body}"}}}}
            operations[method] = operation
        spec.path(path=path, operations=operations)
