"""Each provider's model list, asked with the gateway's credential: what ``pricing check --online`` reads."""

import pytest
import requests
from responses import matchers

from ziri_images.providers.entries import provider_entries
from ziri_images.providers.model_lists import fetch_model_lists
from ziri_images.providers.model_lists import shutdown_day

OPENAI_KEY = "sk-list-test-key-0123456789"
GEMINI_KEY = "AIzaListTestKey0123456789"
DOCUMENT = {"providers": {
    "openai": {"type": "openai", "base_url": "https://api.openai.test/v1", "api_key_env": "OPENAI_API_KEY"},
    "google": {"type": "google", "base_url": "https://gemini.test/v1beta", "api_key_env": "GEMINI_API_KEY"},
    "azure": {"type": "azure", "base_url": "https://azure.test", "api_key_env": "AZURE_KEY", "api_version": "v1",
              "deployments": {"dall-e-3": "dall-e-3"}},
    "xai": {"type": "openai", "base_url": "https://api.x.ai/v1", "api_key_env": "XAI_API_KEY"},
}}


def lists(**variables):
    entries = provider_entries(DOCUMENT, "providers.json", variables)
    return {listing.provider: listing for listing in fetch_model_lists(entries, (1, 5))}


@pytest.mark.parametrize(("value", "day"), [
    pytest.param(1798761600, "2027-01-01", id="epoch-seconds"),
    pytest.param("2026-12-01", "2026-12-01", id="iso-date"),
    pytest.param("2026-12-01T00:00:00Z", "2026-12-01", id="iso-date-time"),
    pytest.param(None, None, id="none"),
    pytest.param("soon", None, id="not-a-date"),
    pytest.param(True, None, id="boolean"),
])
def test_shutdown_day(value, day):
    assert shutdown_day(value) == day


def test_asks_each_provider_whose_key_is_set_with_its_credential(responses_mock):
    responses_mock.get("https://api.openai.test/v1/models", json={"object": "list", "data": [
        {"id": "gpt-image-2", "object": "model"},
        {"id": "gpt-image-1-mini", "object": "model", "shutdown_date": 1798761600},
    ]}, match=[matchers.header_matcher({"Authorization": f"Bearer {OPENAI_KEY}"})])
    responses_mock.get("https://gemini.test/v1beta/models", json={
        "models": [{"name": "models/gemini-3-pro-image"}], "nextPageToken": "page-2"},
        match=[matchers.query_param_matcher({"pageSize": "1000"}),
               matchers.header_matcher({"x-goog-api-key": GEMINI_KEY})])
    responses_mock.get("https://gemini.test/v1beta/models",
                       json={"models": [{"name": "models/gemini-3.1-flash-image"}]},
                       match=[matchers.query_param_matcher({"pageSize": "1000", "pageToken": "page-2"})])

    found = lists(OPENAI_API_KEY=OPENAI_KEY, GEMINI_API_KEY=GEMINI_KEY, AZURE_KEY="azure-key-0123456789")

    assert found["openai"].models == {"gpt-image-2": None, "gpt-image-1-mini": "2027-01-01"}
    assert found["google"].models == {"gemini-3-pro-image": None, "gemini-3.1-flash-image": None}
    assert (found["azure"].models, found["azure"].note) == (None, "not asked: no model list is read for type azure")
    assert (found["xai"].models, found["xai"].note) == (None, "not asked: XAI_API_KEY is not set")


@pytest.mark.parametrize(("answer", "note"), [
    pytest.param({"status": 401, "json": {"error": {"message": f"Incorrect API key {OPENAI_KEY}"}}},
                 "could not be read: HTTP 401", id="refused-key-text-not-repeated"),
    pytest.param({"status": 200, "body": "<html></html>"}, "could not be read: not JSON", id="not-json"),
    pytest.param({"status": 200, "json": {"models": []}}, "could not be read: no 'data' list", id="other-shape"),
    pytest.param({"body": requests.ConnectTimeout()}, "could not be read: ConnectTimeout", id="timeout"),
])
def test_a_list_that_cannot_be_read_says_why_without_the_providers_text(responses_mock, answer, note):
    responses_mock.get("https://api.openai.test/v1/models", **answer)

    found = lists(OPENAI_API_KEY=OPENAI_KEY)["openai"]

    assert (found.models, found.note) == (None, note)
