"""The spend dashboard at ``GET /admin/``: read-only, server-rendered, no external asset (works offline).

Off unless ``ZIRI_ADMIN_TOKEN`` is set (then 404, as any unknown path). The token is accepted in
``Authorization: Bearer <token>`` or through the login form, which sets a session cookie
(HttpOnly, SameSite=Strict, signed with a key derived from the token, so changing the token ends
every session). Tokens are compared in constant time; they never appear in a URL (the form posts
them) or a log (the access log has no body). The login form carries a CSRF token bound to a
cookie (double submit), so no other site can post a login.

What it shows comes from the store the limits use: this month's spend, reservations and budget
per key from ``limiter.usage`` (the figures the limits enforce), spend per day and per model from
the store's report, refusals from their side record (``refusals.py``). ``dashboard_page`` draws it.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import Blueprint
from flask import current_app
from flask import redirect
from flask import request
from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer

from .dashboard_page import render_dashboard
from .dashboard_page import render_login
from .errors import ApiError
from .gateway import current_gateway
from .records import format_ts
from .refusals import refusal_counts

bp = Blueprint("dashboard", __name__, url_prefix="/admin")

SESSION_COOKIE = "ziri_admin"
CSRF_COOKIE = "ziri_admin_csrf"
SESSION_SECONDS = 12 * 3600
DAYS_SHOWN = 30
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


def is_signed_in(token):
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _same(given.strip(), token):
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
    """Return what the page shows, read from the store (its usage and reports) and the refusal record."""
    now = gateway.clock()
    first_day = (now - timedelta(days=DAYS_SHOWN - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    by_day = gateway.store.report(by=("day",), since=format_ts(first_day)).groups
    days = [(first_day + timedelta(days=offset)).strftime("%Y-%m-%d") for offset in range(DAYS_SHOWN)]
    daily = [(day, by_day[(day,)].cost if (day,) in by_day else 0.0) for day in days]
    models = sorted(((group[0], totals) for group, totals in
                     gateway.store.report(by=("model",), since=format_ts(month_start)).groups.items()),
                    key=lambda item: -item[1].cost_micros)[:10]
    keys = []
    for key in sorted(gateway.keys.refresh().values(), key=lambda key: key.id):
        usage = gateway.limiter.usage(key)
        keys.append({"id": key.id, "user": key.user, "status": key.status, "inFlight": usage["inFlight"],
                     **{name: usage[name] for name in ("daily", "monthly")}})
    refused = refusal_counts(gateway.store.refusal_record().refusal_rows(first_day.strftime("%Y-%m-%d")))
    refusals = sorted(((day, key_id, code, number) for (day, key_id, code), number in refused.items()),
                      reverse=True)[:50]
    return {"now": now, "month": month_start.strftime("%B %Y"), "daily": daily, "models": models, "keys": keys,
            "refusals": refusals}


def init_app(app):
    app.register_blueprint(bp)
