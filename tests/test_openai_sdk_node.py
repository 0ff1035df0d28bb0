"""OpenAI's npm SDK against the gateway (gunicorn on loopback, the stub as OpenAI).

``tests/sdk-node/drive.mjs`` calls the SDK with only the base URL and the key changed and prints
one JSON line of what came back; these tests assert on that line and on the gateway's ledger.
The SDK is pinned in tests/sdk-node/package-lock.json and installed with
``npm ci --prefix tests/sdk-node``; without it (or without node) the tests skip, and with
``ZIRI_TEST_REQUIRE_NODE=1`` (``.ci/run`` sets it) they fail instead.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sdk_gateway import new_records
from sdk_gateway import running_gateway

from ziri_images.dev.stub import png_bytes

SDK_DIR = Path(__file__).resolve().parent / "sdk-node"
OLDEST_NODE = 20  # the pinned SDK supports Node.js 20 LTS and later (its README)
NODE_SECONDS = 60  # one scenario, start-up included; the SDK's own timeout is 20 s
INSTALL = "run npm ci --prefix tests/sdk-node"
NOT_INSTALLED = f"the npm openai SDK is not installed: {INSTALL}"

pytestmark = pytest.mark.real_http


def node_sdk_problem():
    """Return why the pinned SDK cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not on PATH (apt-get install nodejs npm), so " + NOT_INSTALLED
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    if int(version.strip().lstrip("v").split(".")[0] or 0) < OLDEST_NODE:
        return f"node {version.strip()} is older than the SDK supports (Node.js {OLDEST_NODE} or later)"
    pinned = json.loads((SDK_DIR / "package.json").read_text())["dependencies"]["openai"]
    installed = SDK_DIR / "node_modules" / "openai" / "package.json"
    if not installed.exists():
        return NOT_INSTALLED
    if json.loads(installed.read_text())["version"] != pinned:
        return f"tests/sdk-node/node_modules holds another openai than the pinned {pinned}: {INSTALL}"
    return None


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    problem = node_sdk_problem()
    if problem and os.environ.get("ZIRI_TEST_REQUIRE_NODE", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{problem} (ZIRI_TEST_REQUIRE_NODE is set)", pytrace=False)
    if problem:
        pytest.skip(problem)
    with running_gateway(tmp_path_factory.mktemp("openai-sdk-node")) as started:
        yield started


@pytest.fixture(scope="module")
def api_key(gateway):
    return gateway.cli("keys", "create", "--user", "node-sdk-user", "--id", "key_node_sdk")


def drive(gateway, key, scenario, *argv):
    """Run one scenario of drive.mjs against the gateway as ``key``; return its JSON line."""
    done = subprocess.run(
        ["node", SDK_DIR / "drive.mjs", scenario, "--base-url", f"{gateway.url}/v1", *map(str, argv)],
        env={"PATH": os.environ["PATH"], "OPENAI_API_KEY": key},  # nothing else of the developer's
        capture_output=True, text=True, timeout=NODE_SECONDS, check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    return json.loads(line)


def the_one_charge(gateway, before, request_id):
    """Return the one charge written since ``before``: the request's own (no retry, no second settle)."""
    charges = new_records(gateway, before, "charge", 1)
    assert [charge["requestId"] for charge in charges] == [request_id]
    return charges[0]


def test_node_sdk_generates_images(gateway, api_key):
    before = len(gateway.ledger())

    result = drive(gateway, api_key, "generate", "--model", "dall-e-2", "--prompt", "a red kite", "--size", "256x256",
                   "--n", "2", "--response-format", "b64_json")

    assert "error" not in result, result
    assert (result["images"], result["b64"], result["pngs"]) == (2, [True, True], [True, True])
    meta = result["meta"]
    assert (meta["provider"], meta["model"], meta["cost"]["actual"]) == ("openai", "dall-e-2", 0.032)
    assert result["requestId"] == meta["requestId"]  # the x-request-id header the SDK read
    charge = the_one_charge(gateway, before, meta["requestId"])
    assert (charge["endpoint"], charge["status"], charge["cost"]) == ("generations", "succeeded", 0.032)


@pytest.mark.parametrize("images, with_mask", [
    pytest.param(1, False, id="one-image"),
    pytest.param(2, True, id="two-images-and-a-mask"),
])
def test_node_sdk_edits_images(gateway, api_key, tmp_path, images, with_mask):
    files = []
    for name in [f"ref{index}" for index in range(images)] + (["mask"] if with_mask else []):
        files.append(tmp_path / f"{name}.png")
        files[-1].write_bytes(png_bytes(name, 64))
    mask = ["--mask", files.pop()] if with_mask else []
    before = len(gateway.ledger())

    result = drive(gateway, api_key, "edit", "--model", "gpt-image-1", "--prompt", "add a red hat", *mask, *files)

    assert "error" not in result, result
    assert (result["images"], result["b64"], result["pngs"]) == (1, [True], [True])
    # The stub counts 85 + 170 image tokens per 64x64 upload it received: every image and the mask arrived.
    assert result["usage"]["input_tokens_details"]["image_tokens"] == (images + with_mask) * (85 + 170)
    charge = the_one_charge(gateway, before, result["meta"]["requestId"])
    assert (charge["endpoint"], charge["status"]) == ("edits", "succeeded")
    assert charge["cost"] == result["meta"]["cost"]["actual"] and charge["usage"] == result["usage"]


def test_node_sdk_lists_and_retrieves_models(gateway, api_key):
    result = drive(gateway, api_key, "models", "--model", "gpt-image-1")

    assert "error" not in result, result
    models = {model["id"]: (model["object"], model["ownedBy"]) for model in result["models"]}
    assert models["gpt-image-1"] == ("model", "openai") and models["dall-e-3"] == ("model", "openai")
    assert "gpt-4o" not in models  # image models only
    assert result["retrieved"] == {"id": "gpt-image-1", "object": "model", "ownedBy": "openai"}


def test_node_sdk_over_budget_raises_402_with_the_gateways_code(gateway):
    poor_key = gateway.cli("keys", "create", "--user", "node-sdk-poor", "--id", "key_node_sdk_poor",
                           "--daily-spend-limit", "0.01")
    before = len(gateway.ledger())

    result = drive(gateway, poor_key, "generate", "--model", "dall-e-3", "--prompt", "an expensive cat")

    error = result["error"]
    assert (error["status"], error["code"], error["type"]) == (402, "SPEND_LIMIT_EXCEEDED", "insufficient_quota")
    assert "daily spend limit" in error["message"]  # the gateway's words, not only "402 status code"
    assert error["requestId"].startswith("req_") and error["shouldRetry"] == "false"
    assert [record for record in gateway.ledger()[before:] if record["type"] != "key"] == []  # nothing reserved


def test_node_sdk_streams_partial_images(gateway, api_key):
    before = len(gateway.ledger())

    result = drive(gateway, api_key, "stream", "--model", "gpt-image-1", "--prompt", "a fox at dawn",
                   "--partial-images", "2")

    assert "error" not in result, result
    assert result["types"] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    partials, completed = result["events"][:2], result["events"][2]
    assert [event["partialImageIndex"] for event in partials] == [0, 1]
    assert all(event["b64"] for event in result["events"])
    usage = completed["usage"]
    assert usage["output_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # The charge is the completed event's usage, once, on the generations endpoint.
    charge = the_one_charge(gateway, before, result["requestId"])
    assert (charge["endpoint"], charge["status"], charge["usage"]) == ("generations", "succeeded", usage)
