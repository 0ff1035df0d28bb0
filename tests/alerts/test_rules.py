"""Which alerts a key and its team watch, when one is reached, and the SQL mirror of that rule."""

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ziri_images.alerts.rules import Watch
from ziri_images.alerts.rules import reached
from ziri_images.alerts.rules import watches
from ziri_images.alerts.rules import watches_json
from ziri_images.keys.store import ApiKey
from ziri_images.keys.store import Team

TEAM = Team("design", "Design", limits={"monthly_spend_limit": 100, "requests_per_minute": 5})
KEY = ApiKey("key_alice", "alice", "active", limits={"daily_spend_limit": 10, "soft_daily_spend_limit": 4,
                                                     "max_concurrent_requests": 2}, team=TEAM)


def test_a_key_watches_each_spend_limit_of_its_own_and_its_teams_at_each_threshold():
    found = watches(KEY, (50, 100))

    assert [(w.scope, w.holder, w.user, w.period, w.limit_name, w.limit_micros, w.threshold) for w in found] == [
        ("key", "key_alice", "alice", "daily", "daily_spend_limit", 10_000_000, 50),
        ("key", "key_alice", "alice", "daily", "daily_spend_limit", 10_000_000, 100),
        ("key", "key_alice", "alice", "daily", "soft_daily_spend_limit", 4_000_000, 50),
        ("key", "key_alice", "alice", "daily", "soft_daily_spend_limit", 4_000_000, 100),
        ("team", "design", None, "monthly", "monthly_spend_limit", 100_000_000, 50),
        ("team", "design", None, "monthly", "monthly_spend_limit", 100_000_000, 100),
    ]


def test_no_thresholds_or_no_spend_limit_watch_nothing():
    assert watches(KEY, ()) == ()
    assert watches(ApiKey("key_free", "free", "active", limits={"requests_per_minute": 5}), (50,)) == ()


@pytest.mark.parametrize(("spent", "threshold", "expected"), [
    pytest.param(4_999_999, 50, False, id="a-micro-short"),
    pytest.param(5_000_000, 50, True, id="exactly-at-it"),
    pytest.param(10_000_000, 100, True, id="the-whole-limit"),
    pytest.param(12_000_000, 120, True, id="past-the-limit"),
])
def test_a_watch_is_reached_at_its_threshold_exactly(spent, threshold, expected):
    watch = Watch("key", "key_alice", "alice", "daily", "daily_spend_limit", 10_000_000, threshold)

    assert reached(spent, watch) is expected


@settings(max_examples=120, deadline=None, database=None, derandomize=True)
@given(spent=st.integers(0, 10**15), limit=st.integers(1, 10**15), threshold=st.integers(1, 1000))
def test_the_sql_mirror_records_an_alert_exactly_when_the_rule_says_reached(test_database, spent, limit, threshold):
    """ziri_record_alerts (functions/ziri_record_alerts.sql) decides as ``reached``, at any size."""
    key_id = f"key_{uuid.uuid4().hex[:12]}"
    watch = Watch("key", key_id, "alice", "daily", "daily_spend_limit", limit, threshold)
    # Rolled back at the end: nothing to empty between examples.
    with test_database.connect() as connection, connection.transaction(force_rollback=True):
        connection.execute("INSERT INTO key_periods (key_id, period, spent_micros) VALUES (%s, '2026-11-26', %s)",
                           (key_id, spent))
        written = connection.execute("SELECT ziri_record_alerts(%s, NULL, '2026-11-26', '2026-11', %s::json)",
                                     (key_id, json.dumps(watches_json([watch])))).fetchone()[0]

    assert written == int(reached(spent, watch))
