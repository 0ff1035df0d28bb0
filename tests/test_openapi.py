"""The OpenAPI document: valid, complete (every route, every error code) and true to real responses."""

import re
from pathlib import Path

import openapi_schema_validator
import pytest
import responses
from conftest import DEMO_KEY
from conftest import DISABLED_KEY
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import openai_image_response
from openapi_spec_validator import validate

import ziri_images
from ziri_images.errors import _HTTP_CODES
from ziri_images.openapi import ERROR_CODES

PACKAGE = Path(ziri_images.__file__).parent
SOURCE = {path.relative_to(PACKAGE).as_posix(): path.read_text() for path in PACKAGE.rglob("*.py")}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def conforms(document, schema_name, instance):
    """Raise if ``instance`` does not match the document's component schema ``schema_name``."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    openapi_schema_validator.validate(instance, schema, cls=openapi_schema_validator.OAS30Validator)


def test_the_document_is_valid_openapi(document):
    validate(document)
    assert document["openapi"] == "3.0.3"
    assert document["info"]["version"] == ziri_images.__version__


def test_every_route_is_documented(app, document):
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules()
              for method in rule.methods - IGNORED_METHODS}
    documented = {(re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper())
                  for path, operations in document["paths"].items() for method in operations}
    assert routes == documented


def raised_error_codes():
    """Return {(status, code)} of every error the gateway's code can answer."""
    pairs = set()
    for text in SOURCE.values():
        pairs |= {(int(status), code) for status, code in re.findall(r'ApiError\(\s*(\d{3}),\s*"([A-Z_]+)"', text)}
    # ProviderError (code LLM_PROVIDER_ERROR): fixed statuses, and the provider's own 4xx passed on as is.
    provider_code = SOURCE["providers/openai.py"] + SOURCE["providers/answers.py"]
    statuses = re.findall(r"\berror\(\s*(\d{3})", provider_code)
    pairs |= {(int(status), "LLM_PROVIDER_ERROR") for status in statuses}
    assert "provider.error(status," in provider_code
    pairs.add((400, "LLM_PROVIDER_ERROR"))
    pairs |= {(status, code) for status, (code, _message) in _HTTP_CODES.items()}
    return pairs


def test_every_error_the_code_raises_is_documented():
    documented = {(status, code) for status, code, _scope, _when in ERROR_CODES}
    missing = raised_error_codes() - documented
    assert not missing, f"add to openapi.ERROR_CODES: {sorted(missing)}"
    assert ("INTERNAL_ERROR" in SOURCE["errors.py"]) and (500, "INTERNAL_ERROR") in documented


def test_no_documented_error_code_is_stale():
    everything = "\n".join(SOURCE.values())
    stale = [code for _status, code, _scope, _when in ERROR_CODES if f'"{code}"' not in everything]
    assert stale == []


def test_the_openai_compatible_path_documents_provider_as_optional(document):
    schemas = document["components"]["schemas"]
    assert "provider" in schemas["GenerationRequest"]["required"]
    assert "provider" not in schemas["OpenAIImagesRequest"]["required"]
    assert schemas["OpenAIImagesRequest"]["properties"]["provider"]["default"] == "openai"
    body = document["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/OpenAIImagesRequest"}


GENERATION = {"provider": "openai", "model": "dall-e-3", "prompt": "a lighthouse"}


@pytest.mark.parametrize("headers, body, status, code", [
    pytest.param({}, GENERATION, 400, "API_KEY_REQUIRED", id="no-key"),
    pytest.param({"X-API-Key": "nope"}, GENERATION, 401, "INVALID_API_KEY_FORMAT", id="bad-format"),
    pytest.param({"X-API-Key": DISABLED_KEY}, GENERATION, 403, "API_KEY_REVOKED_OR_DISABLED", id="disabled"),
    pytest.param({"X-API-Key": USER_KEY}, {"model": "dall-e-3"}, 400, "MISSING_FIELDS", id="missing-fields"),
    pytest.param({"X-API-Key": USER_KEY}, {**GENERATION, "n": "two"}, 400, "VALIDATION_ERROR", id="validation"),
    pytest.param({"X-API-Key": USER_KEY}, {**GENERATION, "provider": "acme"}, 404, "PROVIDER_NOT_FOUND",
                 id="provider"),
    pytest.param({"X-API-Key": USER_KEY}, {**GENERATION, "n": 3}, 400, "IMAGE_REQUEST_TOO_LARGE", id="too-many"),
    pytest.param({"X-API-Key": DEMO_KEY}, GENERATION, 403, "DEMO_KEY_RESTRICTED", id="demo-key"),
])
def test_real_errors_match_the_document(client, document, headers, body, status, code):
    response = client.post(ENDPOINT, json=body, headers=headers)

    assert (response.status_code, response.get_json()["code"]) == (status, code)
    documented = document["paths"]["/api/images/generations"]["post"]["responses"][str(status)]
    assert f"`{code}`" in documented["description"]
    assert set(documented["headers"]) == {"X-Request-Id", "x-should-retry"} <= set(response.headers.keys())
    conforms(document, "Error", response.get_json())


def test_real_responses_match_the_document(client, document, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, json=openai_image_response(1, revised_prompt="a lighthouse"),
                       headers={"x-request-id": "req_upstream_1"})

    generated = client.post(ENDPOINT, json=GENERATION, headers={"X-API-Key": USER_KEY})
    assert generated.status_code == 200
    conforms(document, "ImagesResponse", generated.get_json())

    usage = client.get("/api/me/usage", headers={"X-API-Key": USER_KEY})
    conforms(document, "Usage", usage.get_json())
    conforms(document, "Health", client.get("/health").get_json())
    conforms(document, "Readiness", client.get("/ready").get_json())
    assert document["paths"]["/ready"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"}


def test_the_schemas_reject_what_the_contract_forbids(document):
    with pytest.raises(openapi_schema_validator.validators.ValidationError):
        conforms(document, "ImagesResponse", {"created": 1, "data": []})  # no _meta
    with pytest.raises(openapi_schema_validator.validators.ValidationError):
        conforms(document, "Error", {"error": "x", "code": "X"})  # no requestId


@pytest.mark.parametrize("path", ["/api/images/generations", "/v1/images/generations", "/api/images/edits",
                                  "/v1/images/edits"])
def test_the_stream_response_is_described(document, path):
    content = document["paths"][path]["post"]["responses"]["200"]["content"]
    event = content["text/event-stream"]["schema"]
    assert "image_generation.completed" in event["properties"]["type"]["enum"] and "usage" in event["properties"]
    assert "application/json" in content
