"""/ready says which providers are usable: not ready when none has its key set.

With no provider key at all every generation would get 500 ``PROVIDER_KEY_MISSING``, so a
load balancer must not send traffic there. With some set, the instance is ready (those
providers work) and ``providers`` names the variable each other one still needs.
"""

import json

import pytest
from conftest import PROVIDER_KEY

NO_KEYS = {"OPENAI_API_KEY": "", "AZURE_OPENAI_API_KEY": "", "XAI_API_KEY": "", "GEMINI_API_KEY": "",
           "VERTEX_CREDENTIALS_JSON": "", "STABILITY_API_KEY": "", "RECRAFT_API_KEY": "", "BFL_API_KEY": ""}
OTHERS = {"XAI_API_KEY": "", "GEMINI_API_KEY": "", "VERTEX_CREDENTIALS_JSON": "", "STABILITY_API_KEY": "",
          "RECRAFT_API_KEY": "", "BFL_API_KEY": ""}
OTHERS_MISSING = {"xai": "XAI_API_KEY", "google": "GEMINI_API_KEY",
                  "vertex": "VERTEX_CREDENTIALS_JSON or GOOGLE_APPLICATION_CREDENTIALS",
                  "stability": "STABILITY_API_KEY", "recraft": "RECRAFT_API_KEY", "bfl": "BFL_API_KEY"}


def test_not_ready_without_any_provider_key(make_app):
    response = make_app(**NO_KEYS).test_client().get("/ready")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert body["checks"]["providers"] == {"ok": False, "reason": "no provider has its key set"}
    assert body["providers"] == {"openai": {"usable": False, "missing": "OPENAI_API_KEY"},
                                 "azure": {"usable": False, "missing": "AZURE_OPENAI_API_KEY"},
                                 **{name: {"usable": False, "missing": variable}
                                    for name, variable in OTHERS_MISSING.items()}}


@pytest.mark.parametrize(("settings", "unusable"), [
    pytest.param({"AZURE_OPENAI_API_KEY": "", **OTHERS}, {"azure": "AZURE_OPENAI_API_KEY", **OTHERS_MISSING},
                 id="openai-only"),
    pytest.param({"VERTEX_PROJECT": ""}, {"vertex": "VERTEX_PROJECT"}, id="vertex-without-project"),
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
