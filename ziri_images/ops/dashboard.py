"""The spend dashboard at ``GET /admin/``: read-only, server-rendered, no external asset (works offline).

Off unless ``ZIRI_ADMIN_TOKEN`` is set (then 404, as any unknown path). The token is accepted in
``Authorization: Bearer <token>`` or through the login form, which sets a session cookie
(HttpOnly, SameSite=Strict, signed with a key derived from the token, so changing the token ends
every session). Tokens are compared in constant time; they never appear in a URL (the form posts
them) or a log (the access log has no body). The login form carries a CSRF token bound to a
cookie (double submit), so no other site can post a login.

What it shows comes from the store the limits use: today's and this month's spend, reservations
and budgets per key from ``limiter.usage`` (the figures the limits enforce), each key's team, and
the teams with their limits (the key store's registry); spend per day, and
per key and per model over the same days, from one report of the store (either store groups it);
refusals from their side record (``ops/refusals.py``); the budget alerts recorded and their delivery
from the store's alert outbox (``alerts/``). ``dashboard_page`` draws it.
"""

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from flask import Blueprint
from flask import current_app
from flask import redirect
from flask import request
from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer

from ..errors import ApiError
from ..gateway import current_gateway
from ..keys.base import KeyEditError
from ..ledger.money import format_ts
from ..ledger.money import to_dollars
from ..ledger.report import Totals
from .dashboard_page import render_dashboard
from .dashboard_page import render_login
from .refusals import refusal_counts

log = logging.getLogger("ziri_images")

# Its pages are the .html templates of ops/templates/ (autoescaped: see dashboard_page.py).
bp = Blueprint("dashboard", __name__, url_prefix="/admin", template_folder="templates")

SESSION_COOKIE = "ziri_admin"
CSRF_COOKIE = "ziri_admin_csrf"
SESSION_SECONDS = 12 * 3600
DAYS_SHOWN = 30
SERIES_SHOWN = 10  # keys and models drawn over time, the ones that spent most
# The page loads nothing from anywhere: inline styles and an inline SVG only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def admin_token():
    token = current_app.config.get("ADMIN_TOKEN") or ""
    if not token:
        raise ApiError(404, "NOT_FOUND", "No such endpoint.")
    return token


def _serializer(token, purpose):
    # A key derived from the token: no other secret to configure, and a new token ends old sessions.
    secret = hashlib.sha256(b"ziri-images admin " + token.encode()).hexdigest()
    return URLSafeTimedSerializer(secret, salt=purpose)


def _same(given, expected):
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def bearer_is(token):
    """Return True if the request's ``Authorization: Bearer`` is ``token`` (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _same(given.strip(), token)


def is_signed_in(token):
    if bearer_is(token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False
    try:
        _serializer(token, "session").loads(cookie, max_age=SESSION_SECONDS)
    except BadSignature:
        return False
    return True


def _page(body, status=200):
    return body, status, {"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS}


@bp.get("/")
def dashboard():
    token = admin_token()
    if not is_signed_in(token):
        if "text/html" in request.headers.get("Accept", ""):
            return redirect("/admin/login", code=303)  # a browser: to the form (the token never goes in a URL)
        raise ApiError(401, "ADMIN_TOKEN_INVALID", "Send the admin token as 'Authorization: Bearer <token>'.",
                       headers={"WWW-Authenticate": "Bearer"})
    return _page(render_dashboard(spend_overview(current_gateway())))


@bp.get("/login")
def login_form(error=None, status=200):
    admin_token()
    nonce = secrets.token_urlsafe(24)
    body, status, headers = _page(render_login(nonce, error), status)
    response = current_app.make_response((body, status, headers))
    response.set_cookie(CSRF_COOKIE, nonce, max_age=600, path="/admin/login", httponly=True, samesite="Strict",
                        secure=request.is_secure)
    return response


@bp.post("/login")
def login():
    token = admin_token()
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if not nonce or not _same(request.form.get("csrf", ""), nonce):
        return login_form("The form expired; please sign in again.", 400)
    if not _same(request.form.get("token", ""), token):
        return login_form("That is not the admin token.", 401)
    response = redirect("/admin/", code=303)
    response.set_cookie(SESSION_COOKIE, _serializer(token, "session").dumps({"admin": True}), max_age=SESSION_SECONDS,
                        path="/admin", httponly=True, samesite="Strict", secure=request.is_secure)
    response.delete_cookie(CSRF_COOKIE, path="/admin/login")
    return response


def spend_overview(gateway):
    """Return what the page shows, read from the store (its usage and one report) and the refusal record."""
    now = gateway.clock()
    first_day = (now - timedelta(days=DAYS_SHOWN - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = [(first_day + timedelta(days=offset)).strftime("%Y-%m-%d") for offset in range(DAYS_SHOWN)]
    # One pass over the store's records (a file ledger is read once): every figure below is a sum of it.
    groups = gateway.store.report(by=("key", "model", "day", "team"),
                                  since=format_ts(min(first_day, month_start))).groups
    per_key, key_days = spend_series(groups, 0, days)
    per_model, _ = spend_series(groups, 1, days)
    per_team, _ = spend_series(groups, 3, days)
    daily = [(day, to_dollars(sum(row[index] for row in key_days.values()))) for index, day in enumerate(days)]
    keys = []
    for key in sorted(gateway.keys.refresh().values(), key=lambda key: key.id):
        usage = gateway.limiter.usage(key)
        keys.append({"id": key.id, "user": key.user, "team": key.team.id if key.team else None, "status": key.status,
                     "inFlight": usage["inFlight"], **{name: usage[name] for name in ("daily", "monthly")}})
    refused = refusal_counts(gateway.store.refusal_record().refusal_rows(first_day.strftime("%Y-%m-%d")))
    refusals = sorted(((day, key_id, code, number) for (day, key_id, code), number in refused.items()),
                      reverse=True)[:50]
    alerts = [alert.as_row() for alert in gateway.store.alert_outbox().alerts(since=format_ts(first_day))[:50]]
    return {"now": now, "month": month_start.strftime("%B %Y"), "daily": daily, "keys": keys,
            "teams": team_rows(gateway),
            "models": models_since(groups, month_start.strftime("%Y-%m-%d")), "perKey": per_key,
            "perModel": per_model, "perTeam": per_team, "refusals": refusals, "alerts": alerts}


def team_rows(gateway):
    """Return the teams and their limits; from the keys in service when the key file on disk is broken."""
    try:
        return gateway.registry.list_teams()
    except KeyEditError as error:
        log.warning("dashboard: teams from the keys in service: %s", error)
    teams = {}
    for key in gateway.keys.refresh().values():
        if key.team is not None:
            row = teams.setdefault(key.team.id, {"id": key.team.id, "name": key.team.name, "status": key.team.status,
                                                 "limits": key.team.limits, "keys": 0})
            row["keys"] += 1
    return sorted(teams.values(), key=lambda row: row["id"])


def spend_series(groups, position, days):
    """Return the top SERIES_SHOWN (name, total, [(day, cost)]) of a report by (key, model, day, team), by spend.

    ``position`` picks the name (0: key, 1: model, 3: team). Also return {name: [micros per day]} for every name.
    """
    column = {day: index for index, day in enumerate(days)}
    micros = {}
    for group, totals in groups.items():
        if group[2] in column:
            micros.setdefault(group[position], [0] * len(days))[column[group[2]]] += totals.cost_micros
    ranked = sorted(micros.items(), key=lambda item: (-sum(item[1]), item[0]))[:SERIES_SHOWN]
    series = [(name, to_dollars(sum(row)), [(day, to_dollars(cost)) for day, cost in zip(days, row, strict=True)])
              for name, row in ranked]
    return {"rows": series, "more": max(0, len(micros) - SERIES_SHOWN)}, micros


def models_since(groups, first_day):
    """Return [(model, Totals)] of the top 10 models by spend from ``first_day`` on."""
    totals = {}
    for (_key, model, day, _team), group in groups.items():
        if day >= first_day:
            totals.setdefault(model, Totals()).add(group.requests, group.images, group.cost_micros, group.expired)
    return sorted(totals.items(), key=lambda item: (-item[1].cost_micros, item[0]))[:10]


def init_app(app):
    app.register_blueprint(bp)
