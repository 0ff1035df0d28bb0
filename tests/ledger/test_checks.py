"""The limit decisions (ledger/checks.py) on a KeyUsage snapshot, without any store."""

from datetime import datetime
from datetime import timezone

import pytest

from ziri_images.errors import ApiError
from ziri_images.keys.store import ApiKey
from ziri_images.keys.store import Team
from ziri_images.ledger.checks import CHECKS
from ziri_images.ledger.checks import KeyUsage
from ziri_images.ledger.checks import check_concurrency
from ziri_images.ledger.checks import check_daily_budget
from ziri_images.ledger.checks import check_end_user_budget
from ziri_images.ledger.checks import check_idempotency
from ziri_images.ledger.checks import check_monthly_budget
from ziri_images.ledger.checks import check_rate
from ziri_images.ledger.checks import check_team_concurrency
from ziri_images.ledger.checks import check_team_daily_budget
from ziri_images.ledger.checks import check_team_monthly_budget
from ziri_images.ledger.checks import check_team_rate
from ziri_images.ledger.checks import run_checks

NOW = datetime(2026, 11, 30, 23, 59, 30, tzinfo=timezone.utc)
LIMITS = {"daily_spend_limit": 0.10, "monthly_spend_limit": 1.0, "requests_per_minute": 2,
          "max_concurrent_requests": 1}
KEY = ApiKey(id="key_alice", user="alice", status="active", limits=LIMITS)
TEAM = Team(id="design", name="Design", limits=LIMITS)
MEMBER = ApiKey(id="key_bob", user="bob", status="active", limits={"end_user_daily_spend_limit": 0.05}, team=TEAM)


def usage(**fields):
    return KeyUsage(now=NOW, **{"spent": {"daily": 0, "monthly": 0}, "reserved": {"daily": 0, "monthly": 0},
                                **fields})


def refusal(check, snapshot, micros=40_000, key=KEY):
    with pytest.raises(ApiError) as raised:
        check(key, snapshot, micros, NOW)
    return raised.value


def test_the_checks_run_in_the_documented_order():
    assert CHECKS == (check_idempotency, check_rate, check_concurrency, check_daily_budget, check_monthly_budget,
                      check_end_user_budget, check_team_rate, check_team_concurrency, check_team_daily_budget,
                      check_team_monthly_budget)


@pytest.mark.parametrize("check, snapshot, status, code, fields", [
    pytest.param(check_idempotency, usage(idempotent_match=("req_first", True)), 409,
                 "IDEMPOTENT_REQUEST_IN_PROGRESS", {"originalRequestId": "req_first"}, id="idempotency-open"),
    pytest.param(check_idempotency, usage(idempotent_match=("req_first", False)), 409, "IDEMPOTENCY_KEY_REUSED",
                 {"originalRequestId": "req_first"}, id="idempotency-settled"),
    pytest.param(check_rate, usage(admissions=[NOW.timestamp() - 45, NOW.timestamp() - 10]), 429,
                 "RATE_LIMIT_EXCEEDED", {"limit": 2, "retryAfter": 15, "resetAt": "2026-11-30T23:59:45.000000Z"},
                 id="rate"),
    pytest.param(check_concurrency, usage(in_flight=1), 503, "QUEUE_FULL", {"limit": 1, "inFlight": 1},
                 id="concurrency"),
    pytest.param(check_daily_budget, usage(spent={"daily": 40_000, "monthly": 40_000},
                                           reserved={"daily": 40_000, "monthly": 40_000}), 402,
                 "SPEND_LIMIT_EXCEEDED", {"period": "daily", "spent": 0.04, "reserved": 0.04, "requested": 0.04,
                                          "resetsAt": "2026-12-01T00:00:00.000000Z"}, id="daily"),
    pytest.param(check_monthly_budget, usage(spent={"daily": 0, "monthly": 980_000}), 402, "SPEND_LIMIT_EXCEEDED",
                 {"period": "monthly", "limit": 1.0, "resetsAt": "2026-12-01T00:00:00.000000Z"}, id="monthly"),
])
def test_each_check_refuses_with_its_error(check, snapshot, status, code, fields):
    error = refusal(check, snapshot)

    assert (error.status, error.code) == (status, code)
    assert {name: error.details[name] for name in fields} == fields


def test_a_request_that_fits_exactly_is_admitted():
    snapshot = usage(spent={"daily": 30_000, "monthly": 30_000}, reserved={"daily": 30_000, "monthly": 30_000},
                     admissions=[NOW.timestamp() - 30])

    run_checks(KEY, snapshot, 40_000, NOW)  # 0.03 + 0.03 + 0.04 = the daily 0.10: no more, no less


def test_a_key_without_limits_is_never_refused():
    unlimited = ApiKey(id="key_free", user="free", status="active")
    snapshot = usage(spent={"daily": 10**12, "monthly": 10**12}, in_flight=10**6, admissions=[NOW.timestamp()] * 1000)

    run_checks(unlimited, snapshot, 10**9, NOW)


def member_usage(**team_fields):
    return usage(team=usage(**team_fields), end_user="", end_user_spent=0)


@pytest.mark.parametrize("check, snapshot, status, code, fields", [
    pytest.param(check_end_user_budget, usage(end_user="carol", end_user_spent=20_000, end_user_reserved=10_000), 402,
                 "SPEND_LIMIT_EXCEEDED", {"scope": "end_user", "endUser": "carol", "period": "daily", "limit": 0.05,
                                          "spent": 0.02, "reserved": 0.01, "requested": 0.04}, id="end-user"),
    pytest.param(check_team_rate, member_usage(admissions=[NOW.timestamp() - 45, NOW.timestamp() - 10]), 429,
                 "RATE_LIMIT_EXCEEDED", {"scope": "team", "teamId": "design", "limit": 2, "retryAfter": 15},
                 id="team-rate"),
    pytest.param(check_team_concurrency, member_usage(in_flight=1), 503, "QUEUE_FULL",
                 {"scope": "team", "teamId": "design", "limit": 1, "inFlight": 1}, id="team-concurrency"),
    pytest.param(check_team_daily_budget, member_usage(spent={"daily": 70_000, "monthly": 70_000}), 402,
                 "SPEND_LIMIT_EXCEEDED", {"scope": "team", "teamId": "design", "period": "daily", "limit": 0.10,
                                          "spent": 0.07}, id="team-daily"),
    pytest.param(check_team_monthly_budget, member_usage(reserved={"daily": 0, "monthly": 980_000}), 402,
                 "SPEND_LIMIT_EXCEEDED", {"scope": "team", "period": "monthly", "reserved": 0.98}, id="team-monthly"),
])
def test_the_end_user_and_team_checks_refuse_with_the_keys_codes_and_their_scope(check, snapshot, status, code,
                                                                                   fields):
    error = refusal(check, snapshot, key=MEMBER)

    assert (error.status, error.code) == (status, code)
    assert {name: error.details[name] for name in fields} == fields


def test_a_key_refusal_says_its_scope_is_the_key():
    assert refusal(check_concurrency, usage(in_flight=1)).details["scope"] == "key"


def test_an_end_user_not_known_yet_and_a_key_without_a_team_pass_those_checks():
    crowded = usage(team=usage(spent={"daily": 10**9, "monthly": 10**9}, in_flight=10), end_user=None,
                    end_user_spent=10**9)

    for check in (check_end_user_budget, check_team_rate, check_team_concurrency, check_team_daily_budget,
                  check_team_monthly_budget):
        check(KEY, crowded, 40_000, NOW)  # KEY has no team; the end user is not known
    check_end_user_budget(MEMBER, crowded, 40_000, NOW)


def test_requests_without_an_end_user_share_the_empty_end_users_budget():
    error = refusal(check_end_user_budget, usage(end_user="", end_user_spent=30_000), key=MEMBER)

    assert error.details["endUser"] == "" and error.message == (
        "The daily spend limit per end user of $0.05 would be exceeded by this request.")


def test_the_team_refusal_names_the_team():
    error = refusal(check_team_daily_budget, member_usage(spent={"daily": 70_000, "monthly": 70_000}), key=MEMBER)

    assert error.message == "The team's daily spend limit of $0.10 would be exceeded by this request."
