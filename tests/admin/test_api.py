"""The admin API: the token on every endpoint, the public API's errors for bad input, and keys and teams over HTTP."""

import hashlib
import json
import re

import openapi_schema_validator
import pytest
from conftest import USER_KEY
from conftest import store_records

from ziri_images.keys.store import hash_key

TOKEN = "admin-token-abcdef0123456789"
ACTOR = "admin:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(make_app):
    return make_app(ADMIN_TOKEN=TOKEN).test_client()


def admin_routes(app):
    """Return (method, path) of every admin API route, path parameters filled in."""
    return sorted((method, re.sub(r"<\w+>", "key_user", rule.rule)) for rule in app.url_map.iter_rules()
                  if rule.rule.startswith("/admin/api/") for method in rule.methods - {"HEAD", "OPTIONS"})


def conforms(client, schema_name, instance):
    document = client.get("/api/openapi.json").get_json()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    openapi_schema_validator.validate(instance, schema, cls=openapi_schema_validator.OAS30Validator)


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="nothing"),
    pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong-token"),
    pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    pytest.param({"X-API-Key": USER_KEY}, id="an-api-key"),
])
def test_every_endpoint_refuses_a_missing_or_wrong_token(admin, headers):
    routes = admin_routes(admin.application)
    assert len(routes) == 12

    for method, path in routes:
        response = admin.open(path, method=method, headers=headers, json={"name": "x", "user": "x"})
        body = response.get_json()
        assert (response.status_code, body["code"]) == (401, "ADMIN_TOKEN_INVALID"), (method, path)
        assert body["requestId"].startswith("req_") and response.headers["WWW-Authenticate"] == "Bearer"


def test_every_endpoint_is_not_there_without_a_configured_token(client):
    for method, path in admin_routes(client.application):
        response = client.open(path, method=method, headers={"Authorization": "Bearer "}, json={})
        assert (response.status_code, response.get_json()["code"]) == (404, "NOT_FOUND"), (method, path)


def test_the_dashboards_session_cookie_is_no_admin_token(admin):
    form = admin.get("/admin/login").get_data(as_text=True)
    nonce = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    assert admin.post("/admin/login", data={"csrf": nonce, "token": TOKEN}).status_code == 303

    response = admin.post("/admin/api/keys", json={"user": "mallory"})  # the browser sends the cookie
    assert response.status_code == 401


@pytest.mark.parametrize("method, path, body, status, code", [
    pytest.param("POST", "/admin/api/keys", b"{not json", 400, "INVALID_JSON", id="not-json"),
    pytest.param("POST", "/admin/api/keys", [1], 400, "INVALID_BODY", id="an-array"),
    pytest.param("POST", "/admin/api/keys", "user=bob", 415, "UNSUPPORTED_MEDIA_TYPE", id="a-form"),
    pytest.param("POST", "/admin/api/keys", {}, 400, "VALIDATION_ERROR", id="no-user"),
    pytest.param("POST", "/admin/api/keys", {"user": "bo b"}, 400, "VALIDATION_ERROR", id="user-not-in-a-key"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "dayly_spend_limit": 5}, 400, "VALIDATION_ERROR",
                 id="unknown-field"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "daily_spend_limit": 1e10}, 400, "VALIDATION_ERROR",
                 id="limit-past-the-largest"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "daily_spend_limit": -1}, 400, "VALIDATION_ERROR",
                 id="negative-limit"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "requests_per_minute": 1.5}, 400, "VALIDATION_ERROR",
                 id="fractional-count"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "daily_spend_limit": True}, 400, "VALIDATION_ERROR",
                 id="boolean-limit"),
    pytest.param("POST", "/admin/api/keys", b'{"user": "bob", "daily_spend_limit": NaN}', 400, "INVALID_JSON",
                 id="nan"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "expires_at": "2027-01-01T00:00:00"}, 400,
                 "VALIDATION_ERROR", id="expiry-without-offset"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "id": "key user"}, 400, "VALIDATION_ERROR",
                 id="id-not-an-id"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "id": "key_user"}, 409, "KEY_EXISTS", id="id-taken"),
    pytest.param("POST", "/admin/api/keys", {"user": "bob", "team": "team_none"}, 400, "VALIDATION_ERROR",
                 id="no-such-team"),
    pytest.param("PATCH", "/admin/api/keys/key_nobody", {"status": "disabled"}, 404, "KEY_NOT_FOUND",
                 id="no-such-key"),
    pytest.param("PATCH", "/admin/api/keys/key_user", {"status": "revoked"}, 400, "VALIDATION_ERROR",
                 id="unknown-status"),
    pytest.param("PATCH", "/admin/api/keys/key_user", {"user": "someone"}, 400, "VALIDATION_ERROR",
                 id="user-is-part-of-the-key"),
    pytest.param("POST", "/admin/api/keys/key_nobody/rotate", None, 404, "KEY_NOT_FOUND", id="rotate-no-key"),
    pytest.param("DELETE", "/admin/api/keys/key_nobody", None, 404, "KEY_NOT_FOUND", id="delete-no-key"),
    pytest.param("POST", "/admin/api/teams", {"daily_spend_limit": 5}, 400, "VALIDATION_ERROR", id="team-no-name"),
    pytest.param("GET", "/admin/api/teams/team_none", None, 404, "TEAM_NOT_FOUND", id="no-such-team-get"),
    pytest.param("GET", "/admin/api/keys?colour=red", None, 400, "VALIDATION_ERROR", id="unknown-filter"),
    pytest.param("GET", "/admin/api/spend?by=key,colour", None, 400, "VALIDATION_ERROR", id="unknown-grouping"),
    pytest.param("GET", "/admin/api/spend?from=2026-12-02&to=2026-12-01", None, 400, "VALIDATION_ERROR",
                 id="backwards-range"),
    pytest.param("GET", "/admin/api/spend?from=yesterday", None, 400, "VALIDATION_ERROR", id="not-a-date"),
    pytest.param("PUT", "/admin/api/keys/key_user", {}, 405, "METHOD_NOT_ALLOWED", id="put"),
])
def test_bad_input_gets_the_public_apis_json_errors(admin, keys_path, method, path, body, status, code):
    before = keys_path.read_bytes()
    if isinstance(body, (bytes, str)):
        content_type = "text/plain" if code == "UNSUPPORTED_MEDIA_TYPE" else "application/json"
        response = admin.open(path, method=method, headers={**BEARER, "Content-Type": content_type}, data=body)
    else:
        response = admin.open(path, method=method, headers=BEARER, json=body)

    answer = response.get_json()
    assert (response.status_code, answer["code"]) == (status, code), answer
    assert answer["requestId"] == response.headers["X-Request-Id"]
    assert keys_path.read_bytes() == before


def test_a_team_with_keys_is_not_deleted(admin):
    team = admin.post("/admin/api/teams", json={"name": "Design", "id": "team_design"}, headers=BEARER)
    assert team.status_code == 201
    assert admin.patch("/admin/api/keys/key_user", json={"team": "team_design"}, headers=BEARER).status_code == 200

    refused = admin.delete("/admin/api/teams/team_design", headers=BEARER)
    assert (refused.status_code, refused.get_json()["code"]) == (409, "TEAM_NOT_EMPTY")
    assert admin.post("/admin/api/teams", json={"name": "x", "id": "team_design"},
                      headers=BEARER).get_json()["code"] == "TEAM_EXISTS"


def usage_of(client, raw_key):
    return client.get("/api/me/usage", headers={"X-API-Key": raw_key})


@pytest.mark.stores()
def test_keys_and_teams_over_http_and_every_change_audited(admin):
    team = admin.post("/admin/api/teams", json={"name": "Design", "id": "team_design", "monthly_spend_limit": 200},
                      headers=BEARER)
    created = admin.post("/admin/api/keys", headers=BEARER, json={
        "user": "carol", "team": "team_design", "daily_spend_limit": 5, "requests_per_minute": 0,
        "allowed_models": ["gpt-image-2"], "expires_at": "2027-01-01T00:00:00Z"})
    assert (team.status_code, created.status_code) == (201, 201)
    raw_key, key_id = created.get_json()["key"], created.get_json()["record"]["id"]
    conforms(admin, "NewKey", created.get_json())
    assert created.headers["Cache-Control"] == "no-store"
    assert created.get_json()["record"]["limits"] == {"daily_spend_limit": 5}  # 0: unlimited, not stored
    assert usage_of(admin, raw_key).status_code == 200

    detail = admin.get(f"/admin/api/keys/{key_id}", headers=BEARER).get_json()
    conforms(admin, "KeyDetail", detail)
    assert detail["usage"]["daily"]["limit"] == 5 and detail["record"]["team"] == "team_design"
    assert [key["id"] for key in admin.get("/admin/api/keys?team=team_design", headers=BEARER).get_json()["keys"]] \
        == [key_id]
    assert admin.get("/admin/api/keys?user=carol", headers=BEARER).get_json()["keys"][0]["id"] == key_id
    teams = admin.get("/admin/api/teams", headers=BEARER).get_json()
    conforms(admin, "TeamList", teams)
    assert teams["teams"] == [{**team.get_json()["record"], "keys": 1}]
    assert admin.get("/admin/api/teams/team_design", headers=BEARER).get_json()["keys"] == [key_id]

    changed = admin.patch(f"/admin/api/keys/{key_id}", json={"daily_spend_limit": None, "team": None}, headers=BEARER)
    assert changed.get_json()["record"]["limits"] == {} and "team" not in changed.get_json()["record"]
    assert usage_of(admin, raw_key).get_json()["daily"]["limit"] is None
    assert admin.patch("/admin/api/teams/team_design", json={"status": "disabled"}, headers=BEARER).status_code == 200

    rotated = admin.post(f"/admin/api/keys/{key_id}/rotate", headers=BEARER).get_json()
    assert usage_of(admin, raw_key).get_json()["code"] == "API_KEY_INVALID"
    assert usage_of(admin, rotated["key"]).status_code == 200
    assert admin.delete(f"/admin/api/keys/{key_id}", headers=BEARER).status_code == 200
    assert usage_of(admin, rotated["key"]).get_json()["code"] == "API_KEY_INVALID"
    assert admin.delete("/admin/api/teams/team_design", headers=BEARER).status_code == 200

    audit = [record for record in store_records(admin.application) if record["type"] == "audit"]
    assert [(record["action"], record["targetId"]) for record in audit] == [
        ("team.created", "team_design"), ("key.created", key_id), ("key.updated", key_id),
        ("team.updated", "team_design"), ("key.rotated", key_id), ("key.deleted", key_id),
        ("team.deleted", "team_design")]
    assert {record["actor"] for record in audit} == {ACTOR}
    assert audit[2]["changes"] == {"limits.daily_spend_limit": {"from": 5, "to": None},
                                   "team": {"from": "team_design", "to": None}}
    exported = json.dumps(audit)
    assert TOKEN not in exported and "sha256:" not in exported
    assert raw_key not in exported and rotated["key"] not in exported and hash_key(raw_key) not in exported


def test_a_disabled_team_refuses_its_keys(admin):
    admin.post("/admin/api/teams", json={"name": "Ops", "id": "team_ops"}, headers=BEARER)
    admin.patch("/admin/api/keys/key_user", json={"team": "team_ops"}, headers=BEARER)
    assert usage_of(admin, USER_KEY).status_code == 200

    admin.patch("/admin/api/teams/team_ops", json={"status": "disabled"}, headers=BEARER)

    refused = usage_of(admin, USER_KEY).get_json()
    assert (refused["code"], refused["reason"], refused["keyId"]) == ("API_KEY_REVOKED_OR_DISABLED", "team_disabled",
                                                                     "key_user")


@pytest.mark.stores()
def test_spend_is_the_stores_report(admin, another_worker):
    from conftest import START
    from conftest import charge_record
    from conftest import reservation_record

    records = [reservation_record("alice", 0.04, START, "elsewhere:1:0", request_id="req_1"),
               charge_record("alice", 0.04, START, "req_1")]
    another_worker(*records)

    answer = admin.get("/admin/api/spend?by=key,day&from=2026-11-01&to=2026-12-01", headers=BEARER).get_json()

    conforms(admin, "Spend", answer)
    assert answer["rows"] == [{"key": "key_alice", "day": "2026-11-26", "requests": 1, "images": 0, "cost": 0.04,
                               "expired": 0}]
    assert answer["from"] == "2026-11-01T00:00:00.000000Z" and answer["totals"]["cost"] == 0.04
