"""The admin API under ``/admin/api/``: keys, teams and spend over HTTP, JSON in and out.

Off unless ``ZIRI_ADMIN_TOKEN`` is set (then 404, as the dashboard). Every call sends
``Authorization: Bearer <ZIRI_ADMIN_TOKEN>``, compared in constant time; the dashboard's session
cookie is not accepted here, so no other site can make a browser change a key. Changes go to the
key store the gateway reads (``gateway.registry``: the database, or keys.json) and each is
audited as ``admin:<the first 12 hex digits of the token's SHA-256>``: which token, never the token.

Each view is a list of named steps: load the body (``bodies.py``), ask the registry, answer.
A refused edit becomes the public API's error body: 400 ``VALIDATION_ERROR``, 404
``KEY_NOT_FOUND``/``TEAM_NOT_FOUND``, 409 with the conflict's code.
"""

import hashlib

from flask import Blueprint
from flask import g
from flask import request

from ..errors import ApiError
from ..errors import render_api_error
from ..gateway import current_gateway
from ..keys.base import Conflict
from ..keys.base import KeyEditError
from ..keys.base import NotFound
from ..keys.edits import utc_timestamp
from ..keys.store import LIMIT_NAMES
from ..keys.store import TEAM_LIMIT_NAMES
from ..ledger.money import format_ts
from ..ops.dashboard import admin_token
from ..ops.dashboard import bearer_is
from .bodies import KeyChange
from .bodies import KeyCreate
from .bodies import KeyFilter
from .bodies import SpendQuery
from .bodies import TeamChange
from .bodies import TeamCreate
from .bodies import load

bp = Blueprint("admin_api", __name__, url_prefix="/admin/api")


def admin_actor(token):
    """Return who the audit records name for a change made with ``token``: a digest, never the token."""
    return "admin:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


@bp.before_request
def require_admin_token():
    token = admin_token()  # 404 while none is configured
    if not bearer_is(token):
        raise ApiError(401, "ADMIN_TOKEN_INVALID", "Send the admin token as 'Authorization: Bearer <token>'.",
                       headers={"WWW-Authenticate": "Bearer"})
    g.admin_actor = admin_actor(token)


@bp.after_request
def never_cached(response):
    # A new or rotated key is in the answer: no cache or proxy may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(KeyEditError)
def refused_edit(error):
    if isinstance(error, NotFound):
        return render_api_error(ApiError(404, f"{error.kind.upper()}_NOT_FOUND", str(error)))
    if isinstance(error, Conflict):
        return render_api_error(ApiError(409, error.code, str(error)))
    return render_api_error(ApiError(400, "VALIDATION_ERROR", str(error)))


def json_object(schema):
    """Return the request's JSON body loaded by ``schema``, or raise the public API's 400/415."""
    try:
        body = request.get_json(cache=False)
    except RecursionError:
        raise ApiError(400, "INVALID_JSON", "Request body is not valid JSON: it is nested too deeply.") from None
    return load(schema, body)


def key_fields(data):
    """Split a loaded key body into (limits, the registry's fields): times as records write them."""
    limits = {name: data.pop(name) for name in LIMIT_NAMES if name in data}
    if data.get("expires_at") is not None:
        data["expires_at"] = utc_timestamp(data["expires_at"])
    return limits, data


def team_fields(data):
    limits = {name: data.pop(name) for name in TEAM_LIMIT_NAMES if name in data}
    return limits, data


# --- keys -------------------------------------------------------------------------------

@bp.post("/keys")
def create_key():
    limits, fields = key_fields(json_object(KeyCreate))
    user, key_id = fields.pop("user"), fields.pop("id", None)
    record, raw_key = current_gateway().registry.create_key(g.admin_actor, user, key_id=key_id, limits=limits,
                                                           **fields)
    return {"key": raw_key, "record": record}, 201


@bp.get("/keys")
def list_keys():
    query = load(KeyFilter, request.args.to_dict(), "query")
    return {"keys": current_gateway().registry.list_keys(user=query.get("user"), team=query.get("team"))}


@bp.get("/keys/<key_id>")
def show_key(key_id):
    gateway = current_gateway()
    record = gateway.registry.get_key(key_id)
    key = gateway.keys.key_by_id(key_id)  # None for a moment when another instance has just created it
    return {"record": record, "usage": gateway.limiter.usage(key) if key is not None else None}


@bp.patch("/keys/<key_id>")
def update_key(key_id):
    limits, fields = key_fields(json_object(KeyChange))
    return {"record": current_gateway().registry.update_key(g.admin_actor, key_id, limits=limits, **fields)}


@bp.post("/keys/<key_id>/rotate")
def rotate_key(key_id):
    record, raw_key = current_gateway().registry.rotate_key(g.admin_actor, key_id)
    return {"key": raw_key, "record": record}


@bp.delete("/keys/<key_id>")
def delete_key(key_id):
    return {"record": current_gateway().registry.delete_key(g.admin_actor, key_id)}


# --- teams ------------------------------------------------------------------------------

@bp.post("/teams")
def create_team():
    limits, fields = team_fields(json_object(TeamCreate))
    record = current_gateway().registry.create_team(g.admin_actor, fields.pop("name"), team_id=fields.pop("id", None),
                                                    limits=limits, **fields)
    return {"record": record}, 201


@bp.get("/teams")
def list_teams():
    return {"teams": current_gateway().registry.list_teams()}


@bp.get("/teams/<team_id>")
def show_team(team_id):
    registry = current_gateway().registry
    record = registry.get_team(team_id)
    return {"record": record, "keys": [key["id"] for key in registry.list_keys(team=team_id)]}


@bp.patch("/teams/<team_id>")
def update_team(team_id):
    limits, fields = team_fields(json_object(TeamChange))
    return {"record": current_gateway().registry.update_team(g.admin_actor, team_id, limits=limits, **fields)}


@bp.delete("/teams/<team_id>")
def delete_team(team_id):
    return {"record": current_gateway().registry.delete_team(g.admin_actor, team_id)}


# --- spend ------------------------------------------------------------------------------

@bp.get("/spend")
def spend():
    query = load(SpendQuery, request.args.to_dict(), "query")
    since = format_ts(query["since"]) if query["since"] else None
    until = format_ts(query["until"]) if query["until"] else None
    try:
        report = current_gateway().store.report(by=query["by"], since=since, until=until)
    except ValueError as error:  # a grouping this store cannot make
        raise ApiError(400, "VALIDATION_ERROR", "Invalid query.", details={"by": [str(error)]}) from None
    rows = [{**dict(zip(query["by"], group, strict=True)), **totals.as_row()} for group, totals in report.rows()]
    return {"by": list(query["by"]), "from": since, "to": until, "rows": rows, "totals": report.totals().as_row()}


def init_app(app):
    app.register_blueprint(bp)
