"""What the alerts tests share: an app whose budget alerts go to a webhook, and the webhook's mock."""

import hashlib
import hmac
import json

import pytest

WEBHOOK = "https://hooks.test/ziri/T0KEN"
SECRET = "whsec-test-0123456789"


def signed_by_secret(body, header):
    """Return True if ``header`` is the X-Ziri-Signature of ``body`` with the tests' secret."""
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def events(calls):
    """Return the JSON events ``responses`` saw posted to the webhook, each checked for its signature."""
    posted = []
    for call in calls:
        if call.request.url == WEBHOOK:
            assert signed_by_secret(call.request.body, call.request.headers["X-Ziri-Signature"])
            posted.append(json.loads(call.request.body))
    return posted


@pytest.fixture
def alerting_app(make_app):
    """Return ``make(**overrides)``: an app that records budget alerts at 50, 80 and 100 % and posts them."""
    def make(**overrides):
        return make_app(ALERT_WEBHOOK_URL=WEBHOOK, ALERT_WEBHOOK_SECRET=SECRET, **overrides)

    return make
