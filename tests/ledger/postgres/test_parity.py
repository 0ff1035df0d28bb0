"""The SQL mirror of the limit checks decides as checks.CHECKS does, for random usages and limits.

PostgreSQL decides admission in ziri_reserve (functions/ziri_reserve.sql: one round trip); the
file store runs ``checks.run_checks``. Each example writes a key's usage into the database (its
period totals, requests in flight, admissions in the rate window, a request with the same
Idempotency-Key), its end user's day and, for a key of a team, its team's usage (the team's
totals, requests in flight and admissions by the team's other keys), reserves through the store,
and compares the outcome with ``run_checks`` on the same usage: admitted by both, or refused by
both with the same code and scope.
"""

import json
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ledger.postgres.test_pgstore import Key
from ledger.postgres.test_pgstore import make_store  # noqa: F401  (a fixture, used by name)
from ziri_images.errors import ApiError
from ziri_images.keys.store import Team
from ziri_images.ledger.checks import KeyUsage
from ziri_images.ledger.checks import run_checks
from ziri_images.ledger.money import day_of
from ziri_images.ledger.money import format_ts
from ziri_images.ledger.money import month_of

PARITY = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
# The same Idempotency-Key: none (most often), in flight, settled, released by a retryable answer.
MATCHES = (None, None, None, "open", "done", "released")
micros = st.integers(0, 3_000_000)


def holder_usage(draw):
    """Return a key's or team's usage in the database's terms: period totals, in flight, the rate window."""
    usage = {"spent_day": draw(micros), "held_day": draw(micros), "in_flight": draw(st.integers(0, 4)),
             "window": sorted(draw(st.lists(st.integers(1, 59), max_size=5)), reverse=True)}
    usage["spent_month"] = usage["spent_day"] + draw(micros)
    usage["held_month"] = usage["held_day"] + draw(micros)
    return usage


def holder_limits(draw, usage, request):
    """Return limits for ``usage``: none (unset or 0), one at the edge of this request, or anywhere."""
    def limit(edge, anywhere):
        # Never negative: a key's limits are numbers >= 0 (keys/store.py).
        kind = draw(st.sampled_from(("unset", "unset", "zero", "edge", "edge", "anywhere")))
        if kind == "edge":
            return max(0, edge + draw(st.integers(-1, 1)))
        return {"unset": None, "zero": 0}.get(kind) if kind != "anywhere" else draw(anywhere)

    limits = {
        "requests_per_minute": limit(len(usage["window"]), st.integers(1, 6)),
        "max_concurrent_requests": limit(usage["in_flight"], st.integers(1, 5)),
        "daily_spend_limit": limit(usage["spent_day"] + usage["held_day"] + request, micros),
        "monthly_spend_limit": limit(usage["spent_month"] + usage["held_month"] + request, micros),
    }
    if "end_user" in usage:
        limits["end_user_daily_spend_limit"] = limit(usage["end_user"][0] + usage["end_user"][1] + request, micros)
    for budget in ("daily_spend_limit", "monthly_spend_limit", "end_user_daily_spend_limit"):
        if limits.get(budget):
            limits[budget] /= 1e6  # dollars, as keys.json holds them
    return {name: value for name, value in limits.items() if value is not None}


@st.composite
def usages(draw):
    """Return (key's usage, its limits, its team's usage and limits or None, the request's micros).

    A third of the examples let only the team's limits refuse (the key's own come first), a sixth
    only the end user's: otherwise the key's checks would decide nearly every example.
    """
    focus = draw(st.sampled_from(("any", "any", "any", "team", "team", "end_user")))
    usage = {**holder_usage(draw), "match": None if focus != "any" else draw(st.sampled_from(MATCHES)),
             "end_user": (draw(micros), draw(micros)), "end_user_name": draw(st.sampled_from((None, "carol")))}
    request = draw(st.integers(1, 1_000_000))
    team = None
    if focus == "team" or focus == "any" and draw(st.booleans()):
        team_usage = holder_usage(draw)
        team = (team_usage, holder_limits(draw, team_usage, request))
    limits = holder_limits(draw, usage, request)
    if focus != "any":
        limits = {name: value for name, value in limits.items() if name == "end_user_daily_spend_limit"
                  and focus == "end_user"}
    return usage, limits, team, request


def write_team_usage(connection, team_id, usage, now):
    """Put ``usage`` of a new team into the database: totals, and admissions by another key of the team."""
    sql = connection.execute
    day, month = day_of(format_ts(now)), month_of(format_ts(now))
    for period, spent, held in ((day, usage["spent_day"], usage["held_day"]),
                                (month, usage["spent_month"], usage["held_month"])):
        sql("INSERT INTO team_periods (team_id, period, spent_micros, held_micros) VALUES (%s, %s, %s, %s)",
            (team_id, period, spent, held))
    admissions = [now - timedelta(seconds=ago) for ago in usage["window"]]
    for ordinal, ts in enumerate(admissions, 1):
        sql("INSERT INTO ledger_records (ts, type, request_id, key_id, reserved_at, micros, team_id, team_admission, "
            "record) VALUES (%s, 'reservation', %s, %s, %s, 0, %s, %s, '{}')",
            (ts, f"req_{ordinal}_{team_id}", "key_sibling_" + team_id, ts, team_id, ordinal))
    sql("INSERT INTO team_locks (team_id, admitted, in_flight, last_reserved_at) VALUES (%s, %s, %s, %s)",
        (team_id, len(admissions), usage["in_flight"], admissions[-1] if admissions else None))


def write_usage(database, key_id, usage, digest, now, team=None, team_usage=None):
    """Put ``usage`` of a new key (and its ``team``'s) into the database, as its requests would leave it."""
    day, month = day_of(format_ts(now)), month_of(format_ts(now))
    earlier = now - timedelta(hours=2)  # in the Idempotency-Key's window, not the rate window's
    same = "req_same_" + key_id
    with database.connect() as connection, connection.transaction():
        sql = connection.execute
        for period, spent, held in ((day, usage["spent_day"], usage["held_day"]),
                                    (month, usage["spent_month"], usage["held_month"])):
            sql("INSERT INTO key_periods (key_id, period, spent_micros, held_micros) VALUES (%s, %s, %s, %s)",
                (key_id, period, spent, held))
        admissions = [earlier] if usage["match"] else []
        admissions += [now - timedelta(seconds=ago) for ago in usage["window"]]
        for ordinal, ts in enumerate(admissions, 1):
            request_id = same if ordinal == 1 and usage["match"] else f"req_{ordinal}_{key_id}"
            sql("INSERT INTO ledger_records (ts, type, request_id, key_id, reserved_at, micros, idempotency_key, "
                "admission, record) VALUES (%s, 'reservation', %s, %s, %s, 0, %s, %s, '{}')",
                (ts, request_id, key_id, ts, digest if request_id == same else None, ordinal))
        sql("INSERT INTO key_locks (key_id, admitted, in_flight, last_reserved_at) VALUES (%s, %s, %s, %s)",
            (key_id, len(admissions), usage["in_flight"], admissions[-1] if admissions else None))
        if usage["match"] == "open":
            sql("INSERT INTO open_reservations (request_id, key_id, micros, reserved_at, expires_at, worker) "
                "VALUES (%s, %s, 0, %s, %s, 'worker_parity')", (same, key_id, earlier, now + timedelta(minutes=5)))
        if usage["match"] == "released":
            record = json.dumps({"idempotencyKey": digest, "idempotencyReleased": True})
            sql("INSERT INTO ledger_records (ts, type, request_id, key_id, reserved_at, micros, record) "
                "VALUES (%s, 'charge', %s, %s, %s, 0, %s)", (earlier, same, key_id, earlier, record))
        sql("INSERT INTO end_user_days (key_id, end_user, day, spent_micros, held_micros) VALUES (%s, %s, %s, %s, %s)",
            (key_id, usage["end_user_name"] or "", day, *usage["end_user"]))
        if team is not None:
            write_team_usage(connection, team.id, team_usage, now)
    return same


def checked_usage(usage, now):
    return KeyUsage(now=now, spent={"daily": usage["spent_day"], "monthly": usage["spent_month"]},
                    reserved={"daily": usage["held_day"], "monthly": usage["held_month"]},
                    in_flight=usage["in_flight"],
                    admissions=[(now - timedelta(seconds=ago)).timestamp() for ago in usage["window"]])


def python_decision(key, usage, team_usage, request, same, now):
    """Return the (code, scope) ``run_checks`` refuses ``usage`` with, or None if it admits."""
    checked = checked_usage(usage, now)
    checked.idempotent_match = {"open": (same, True), "done": (same, False)}.get(usage["match"])
    checked.end_user = usage["end_user_name"] or ""
    checked.end_user_spent, checked.end_user_reserved = usage["end_user"]
    if team_usage is not None:
        checked.team = checked_usage(team_usage, now)
    try:
        run_checks(key, checked, request, now)
    except ApiError as refusal:
        return refusal.code, refusal.details.get("scope")
    return None


@pytest.fixture
def store(make_store, database):  # noqa: F811  (the fixture imported above)
    database.keep_alive(["worker_parity"])
    return make_store()


@PARITY
@given(drawn=usages())
def test_the_databases_decision_is_the_python_checks_decision(store, database, clock, drawn):
    usage, limits, team_drawn, request = drawn
    team_usage, team = None, None
    if team_drawn is not None:
        team_usage = team_drawn[0]
        team = Team(f"team_{uuid.uuid4().hex[:12]}", "Team", limits=team_drawn[1])
    key = Key(f"key_{uuid.uuid4().hex[:12]}", team=team, **limits)
    digest = "digest_" + key.id
    same = write_usage(database, key.id, usage, digest, clock(), team, team_usage)
    details = {"requestId": "req_" + uuid.uuid4().hex, "model": "dall-e-3", "idempotencyKey": digest}
    if usage["end_user_name"]:
        details["endUser"] = usage["end_user_name"]

    try:
        store.reserve(key, request, details)
        decided = None
    except ApiError as refusal:
        decided = refusal.code, refusal.details.get("scope")

    event(str(decided))
    assert decided == python_decision(key, usage, team_usage, request, same, clock())
