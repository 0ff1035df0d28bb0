"""GET /v1/models and /v1/models/{id}: the image models a key may use, in OpenAI's list shape."""

import ast
from pathlib import Path

import pytest
from conftest import USER_KEY

import ziri_images

CATALOG = Path(ziri_images.__file__).parent / "catalog"
# The request's own modules: the catalog is read by them, never the other way round.
REQUEST_LEVEL = {"access", "api", "gateway", "models", "streaming", "uploads"}


def model_ids(client, key):
    response = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "list"
    assert all(model["object"] == "model" and set(model) == {"id", "object", "created", "owned_by"}
               for model in body["data"])
    return {model["id"]: model["owned_by"] for model in body["data"]}


def test_the_list_holds_every_usable_image_model_once(app, client):
    ids = model_ids(client, USER_KEY)
    book = app.extensions["ziri_images"].prices
    assert ids["dall-e-3"] == "openai"  # also an Azure model: listed once, under /v1's default provider
    assert list(ids) == sorted(ids)
    assert "gpt-4o" not in ids  # a chat model is not an image model
    assert {entry.name for entry in book.image_models()} >= set(ids)


def test_a_retired_model_is_left_out(app, client):
    book = app.extensions["ziri_images"].prices
    retired = [entry for entry in book.image_models()
               if entry.provider not in book.compatible_providers and entry.is_retired(book.today())]
    assert retired  # the shipped catalog has Azure models Azure has retired
    ids = model_ids(client, USER_KEY)
    for entry in retired:
        assert ids.get(entry.name) != entry.provider


@pytest.mark.parametrize("limits, expected", [
    pytest.param({"allowed_models": ["dall-e-2"]}, {"dall-e-2": "openai"}, id="model-allow-list"),
    pytest.param({"allowed_providers": ["xai"]}, None, id="provider-allow-list"),
])
def test_the_keys_allow_lists_apply(client, add_key, limits, expected):
    ids = model_ids(client, add_key(**limits))
    if expected is not None:
        assert ids == expected
    else:
        assert ids and set(ids.values()) == {"xai"}


def test_one_model(client):
    response = client.get("/v1/models/dall-e-2", headers={"Authorization": f"Bearer {USER_KEY}"})
    assert response.status_code == 200
    assert response.get_json() == {"id": "dall-e-2", "object": "model", "created": 0, "owned_by": "openai"}


@pytest.mark.parametrize("model_id", ["gpt-4o", "dall-e-9"])
def test_an_unknown_or_chat_model_is_not_found_in_openais_shape(client, model_id):
    response = client.get(f"/v1/models/{model_id}", headers={"Authorization": f"Bearer {USER_KEY}"})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("MODEL_NOT_FOUND", "not_found_error", "model")
    assert error["requestId"] == response.headers["X-Request-Id"]


def test_the_list_needs_a_key(client):
    response = client.get("/v1/models")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "API_KEY_REQUIRED"


def test_the_catalog_imports_no_request_level_module():
    imported = set()
    for path in CATALOG.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:  # from ..x import y
                imported.add((path.name, (node.module or "").split(".")[0]))
            if isinstance(node, ast.ImportFrom) and node.module == "flask":
                imported.add((path.name, "flask"))
    assert {(name, module) for name, module in imported if module in REQUEST_LEVEL | {"flask"}} == set()
