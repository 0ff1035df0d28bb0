"""The JavaScript client, ``@ziri/sdk`` (clients/js), under Node's own test runner against the gateway.

One gateway (gunicorn on loopback, the stub as OpenAI: ``sdk_gateway.running_gateway``) serves
every test file of ``clients/js/test/``: ``node --test`` is handed its URL, its ledger and the
keys in ``ZIRI_TEST_*`` variables, and must pass with nothing skipped. Nothing is installed: the
package is dependency-free and its tests import it by its own name. Without node 20+ and npm the
test skips, and with ``ZIRI_TEST_REQUIRE_NODE=1`` (``.ci/run`` sets it) it fails instead.
"""

import os
import re
import shutil
import subprocess

import pytest
from conftest import DEMO_KEY
from conftest import PROJECT_DIR
from conftest import key_record
from sdk_gateway import running_gateway

from ziri_images.keys import store as keys_store

JS_DIR = PROJECT_DIR / "clients" / "js"
OLDEST_NODE = 20  # package.json's "engines"
NODE_SECONDS = 60
USER_KEY = "ziri-js-user-0123456789abcdef0123456789abcdef"
POOR_KEY = "ziri-js-poor-fedcba9876543210fedcba9876543210"
KEYS = (
    key_record(DEMO_KEY, key_id="key_demo", user="user-123", demo=True),  # the documented snippet's key
    key_record(USER_KEY, key_id="key_js_user", user="js-user"),
    key_record(POOR_KEY, key_id="key_js_poor", user="js-poor", limits={"daily_spend_limit": 0.01}),
)
SUMMARY = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.MULTILINE)


def node_problem():
    """Return why the client's tests cannot run here, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH (apt-get install nodejs npm)"
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    if int(version.strip().lstrip("v").split(".")[0] or 0) < OLDEST_NODE:
        return f"node {version.strip()} is older than the client supports (Node.js {OLDEST_NODE} or later)"
    return None


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    problem = node_problem()
    if problem and os.environ.get("ZIRI_TEST_REQUIRE_NODE", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{problem} (ZIRI_TEST_REQUIRE_NODE is set)", pytrace=False)
    if problem:
        pytest.skip(f"the JavaScript client's tests need Node.js {OLDEST_NODE}+: {problem}")
    with running_gateway(tmp_path_factory.mktemp("js-client"), keys=KEYS) as started:
        yield started


@pytest.mark.real_http
def test_the_clients_node_tests_pass_against_the_gateway(gateway, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),  # nothing else of the developer's
           "ZIRI_TEST_GATEWAY_URL": gateway.url, "ZIRI_TEST_STUB_URL": gateway.stub_url,
           "ZIRI_TEST_LEDGER": str(gateway.ledger_path), "ZIRI_TEST_USER_KEY": USER_KEY,
           "ZIRI_TEST_POOR_KEY": POOR_KEY}

    done = subprocess.run(["node", "--test", "--test-reporter=tap", JS_DIR / "test"], env=env, cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=NODE_SECONDS, check=False)

    output = done.stdout + done.stderr
    counts = {name: int(count) for name, count in SUMMARY.findall(done.stdout)}
    assert done.returncode == 0, output
    assert counts["skipped"] == 0 and counts["pass"] == counts["tests"] > 0, output  # every test ran, and passed


def test_the_client_accepts_exactly_the_keys_the_gateway_accepts():
    [pattern] = re.findall(r"^const KEY_PATTERN = /(.*)/;$", (JS_DIR / "src" / "index.js").read_text(), re.MULTILINE)
    # The same expression; JavaScript's $ (without the m flag) is Python's \Z.
    assert pattern == keys_store.KEY_PATTERN.pattern.replace(r"\Z", "$")
