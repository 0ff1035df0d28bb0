"""A provider call ends within connect + read timeout of its start, however slowly the bytes arrive.

``requests``' read timeout bounds each socket read, not the call: an upstream that trickles a
few bytes at a time, in its headers or its body, would keep the call (and the key's
reservation) open for as long as it likes. These upstreams trickle a complete, valid answer
over several times the call's deadline; the gateway must give up at the deadline with a 504
that may have billed, and settle before the reservation's expiry (connect + read + grace).
"""

import threading

import pytest
from conftest import ENDPOINT
from conftest import USER_KEY
from conftest import ledger_lines
from e2e.conftest import raw_key

from faults.conftest import FaultServer
from faults.conftest import trickle_body
from faults.conftest import trickle_headers
from ziri_images.gateway import utc_now
from ziri_images.ledger.money import parse_ts

pytestmark = pytest.mark.real_http

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a lighthouse at dusk"}
# The call's deadline is 1.5 s; each upstream takes about 8 s to deliver its answer.
CONNECT_TIMEOUT, READ_TIMEOUT, GRACE = 0.5, 1.0, 2.0
TRICKLES = [pytest.param(trickle_body, id="body-trickled"), pytest.param(trickle_headers, id="headers-trickled")]


@pytest.fixture(params=["gthread", "gevent"])
def worker_class(request):
    """Both worker classes: the deadline must not depend on gevent (gthread has no gevent.Timeout)."""
    return request.param


def assert_settled_in_time(reservation, charge):
    """The call was cut at its deadline: settled as a 504 that may have billed, before the reservation expired.

    Cut in its body, after a 2xx status, it is charged the reservation; cut in its headers, nothing.
    """
    assert (charge["type"], charge["status"], charge["httpStatus"]) == ("charge", "provider_error", 504)
    cost = reservation["amount"] if charge["providerStatus"] == 200 else 0.0
    assert charge["mayHaveBilled"] is True and charge["cost"] == cost
    assert "afterExpiry" not in charge
    assert parse_ts(charge["ts"]) < parse_ts(reservation["expiresAt"])


@pytest.mark.parametrize("behaviour", TRICKLES)
def test_trickling_upstream_is_cut_at_the_call_deadline(make_app, behaviour):
    with FaultServer(behaviour) as upstream:
        app = make_app(OPENAI_BASE_URL=upstream.url, UPSTREAM_CONNECT_TIMEOUT=CONNECT_TIMEOUT,
                       UPSTREAM_READ_TIMEOUT=READ_TIMEOUT, RESERVATION_GRACE_SECONDS=GRACE, CLOCK=utc_now)

        response = app.test_client().post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY})

    assert response.status_code == 504, response.get_data(as_text=True)
    assert response.get_json()["code"] == "LLM_PROVIDER_ERROR"
    assert response.headers["x-should-retry"] == "false"
    reservation, charge = ledger_lines(app)
    assert_settled_in_time(reservation, charge)
    assert charge["providerStatus"] == (200 if behaviour is trickle_body else None)
    assert len(upstream.requests) == 1


def test_reservation_outlives_the_call_deadline(app):
    gateway = app.extensions["ziri_images"]
    for provider in gateway.providers.values():
        assert provider.call_deadline == sum(provider.timeout)
        assert gateway.store.reservation_ttl > provider.call_deadline


def test_trickling_upstream_under_gunicorn(start_gateway):
    with FaultServer(trickle_body) as upstream:
        gateway = start_gateway({"solo": {"limits": {"max_concurrent_requests": 1}}}, workers=1, extra_env={
            "OPENAI_BASE_URL": upstream.url, "ZIRI_UPSTREAM_CONNECT_TIMEOUT": CONNECT_TIMEOUT,
            "ZIRI_UPSTREAM_READ_TIMEOUT": READ_TIMEOUT, "ZIRI_RESERVATION_GRACE_SECONDS": GRACE,
        })
        answers = []
        calls = [threading.Thread(target=lambda: answers.append(gateway.generate("solo", timeout=20)))
                 for _ in range(2)]
        for call in calls:
            call.start()
        for call in calls:
            call.join(30)

    # One call in flight at a time: the second is refused while the first holds the key's only slot.
    assert sorted(answer.status_code for answer in answers) == [503, 504], [a.text for a in answers]
    (reservation,) = gateway.records("reservation")
    (charge,) = gateway.records("charge")
    assert_settled_in_time(reservation, charge)
    assert gateway.records("reservation_expired") == []
    assert raw_key("solo") not in gateway.ledger_path.read_text(encoding="utf-8")
