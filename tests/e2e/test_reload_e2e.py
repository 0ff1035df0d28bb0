"""keys.json edits apply to every worker the moment the ``keys`` command returns.

A 20,000-key file makes each worker's reload take long enough for other threads of the same
worker to arrive while it runs: they must wait for the new file, never answer from the old one.
"""

import pytest
import requests

from ziri_images.keys.keyfile import create_key
from ziri_images.keys.keyfile import set_status

from .test_limits_e2e import burst

pytestmark = pytest.mark.real_http

FILLER_KEYS = 20_000
REQUESTS = 20


def usage_codes(gateway, raw_key):
    """Ask for the key's usage from REQUESTS threads at once; return each answer's status and code."""
    def send():
        response = requests.get(f"{gateway.url}/api/me/usage", headers={"X-API-Key": raw_key}, timeout=(2, 30))
        return response.status_code, response.json().get("code")

    return burst(REQUESTS, send)


def test_a_created_then_disabled_key_applies_to_every_request_after_the_command(start_gateway, tmp_path):
    gateway = start_gateway({f"filler{index}": {} for index in range(FILLER_KEYS)}, workers=2, threads=8)
    keys_path = str(tmp_path / "keys.json")

    record, raw_key = create_key(keys_path, "newcomer")
    assert usage_codes(gateway, raw_key) == [(200, None)] * REQUESTS

    set_status(keys_path, record["id"], "disabled")
    assert usage_codes(gateway, raw_key) == [(403, "API_KEY_REVOKED_OR_DISABLED")] * REQUESTS
