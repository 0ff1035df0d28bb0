"""/ready says which providers are usable: not ready when none has its key set.

With no provider key at all every generation would get 500 ``PROVIDER_KEY_MISSING``, so a
load balancer must not send traffic there. With some set, the instance is ready (those
providers work) and ``providers`` names the variable each other one still needs.
"""

import json

import pytest
from conftest import PROVIDER_KEY

NO_KEYS = {"OPENAI_API_KEY": "", "AZURE_OPENAI_API_KEY": "", "XAI_API_KEY": ""}


def test_not_ready_without_any_provider_key(make_app):
    response = make_app(**NO_KEYS).test_client().get("/ready")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert body["checks"]["providers"] == {"ok": False, "reason": "no provider has its key set"}
    assert body["providers"] == {"openai": {"usable": False, "missing": "OPENAI_API_KEY"},
                                 "azure": {"usable": False, "missing": "AZURE_OPENAI_API_KEY"},
                                 "xai": {"usable": False, "missing": "XAI_API_KEY"}}


@pytest.mark.parametrize(("settings", "unusable"), [
    pytest.param({"AZURE_OPENAI_API_KEY": "", "XAI_API_KEY": ""},
                 {"azure": "AZURE_OPENAI_API_KEY", "xai": "XAI_API_KEY"}, id="openai-only"),
    pytest.param({"AZURE_OPENAI_ENDPOINT": ""}, {"azure": "AZURE_OPENAI_ENDPOINT"}, id="azure-without-endpoint"),
])
def test_ready_with_some_providers_names_the_others(make_app, settings, unusable):
    response = make_app(**settings).test_client().get("/ready")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["checks"]["providers"]) == ("ready", {"ok": True})
    assert {name: status["missing"] for name, status in body["providers"].items() if not status["usable"]} == unusable
    assert body["providers"]["openai"] == {"usable": True}
    assert PROVIDER_KEY not in json.dumps(body)
