"""Prometheus metrics: what is counted, that no key or prompt is a label by default, and who may read them."""

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import openai_image_response
from prometheus_client.parser import text_string_to_metric_families

from ziri_images.billing import Limiter

TOKEN = "metrics-token-0123456789"
BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a secret prompt", "size": "1024x1024",
        "quality": "standard"}


def scrape(client, token=TOKEN):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    return {sample.name: sample for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples if sample.value}, response.get_data(as_text=True)


def samples(text, name):
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name]


@pytest.fixture
def metered(make_app):
    return make_app(METRICS_TOKEN=TOKEN).test_client()


def test_a_charge_counts_spend_images_latency_and_the_request(metered, responses_mock):
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    assert metered.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200
    _, text = scrape(metered)
    spend = samples(text, "ziri_spend_usd_total")
    assert [(s.labels, s.value) for s in spend] == [({"provider": "openai", "model": "dall-e-3"}, 0.04)]
    assert samples(text, "ziri_images_total")[0].value == 1
    assert samples(text, "ziri_provider_latency_seconds_count")[0].labels == {"provider": "openai",
                                                                             "model": "dall-e-3"}
    assert {s.labels["operation"] for s in samples(text, "ziri_ledger_commit_seconds_count")} == {"reserve", "settle"}
    assert samples(text, "ziri_reservations_open")[0].value == 0
    requests_ = {(s.labels["route"], s.labels["status"], s.labels["code"]): s.value
                 for s in samples(text, "ziri_requests_total")}
    assert requests_[(ENDPOINT, "200", "-")] == 1
    # Privacy and cardinality: neither the key, its user nor the prompt appears anywhere.
    for secret in ("key_user", "alice", "secret prompt", USER_KEY):
        assert secret not in text


def test_refusals_are_counted_by_code(metered, add_key, responses_mock):
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    limited = add_key(limits={"requests_per_minute": 1})
    denied = add_key(allowed_models=["gpt-image-1"])
    assert metered.post(ENDPOINT, json=BODY, headers={"X-API-Key": denied}).status_code == 403
    assert metered.post(ENDPOINT, json=BODY, headers={"X-API-Key": limited}).status_code == 200
    assert metered.post(ENDPOINT, json=BODY, headers={"X-API-Key": limited}).status_code == 429
    _, text = scrape(metered)
    assert {s.labels["code"]: s.value for s in samples(text, "ziri_refusals_total")} == {
        "AUTHORIZATION_DENIED": 1, "RATE_LIMIT_EXCEEDED": 1}


def test_key_labels_only_when_opted_in(make_app, add_key):
    denied = add_key(key_id="key_denied", allowed_models=["gpt-image-1"])
    client = make_app(METRICS_TOKEN=TOKEN, METRICS_KEY_LABELS=True).test_client()
    client.post(ENDPOINT, json=BODY, headers={"X-API-Key": denied})
    _, text = scrape(client)
    assert samples(text, "ziri_refusals_total")[0].labels == {"code": "AUTHORIZATION_DENIED", "key": "key_denied"}


def test_unmatched_paths_share_one_route_label(metered):
    for path in ("/nope/1", "/nope/2"):
        assert metered.get(path).status_code == 404
    _, text = scrape(metered)
    routes = {s.labels["route"] for s in samples(text, "ziri_requests_total")}
    assert "(unmatched)" in routes and not any(route.startswith("/nope") for route in routes)


def test_reloads_and_their_failures_are_counted(metered, keys_path, add_key):
    add_key()
    metered.post(ENDPOINT, json=BODY, headers={"X-API-Key": "ziri-nobody-" + "0" * 32})
    keys_path.write_text("{broken")
    metered.post(ENDPOINT, json=BODY, headers={"X-API-Key": "ziri-nobody-" + "1" * 32})
    _, text = scrape(metered)
    reloads = {(s.labels["file"], s.labels["result"]): s.value for s in samples(text, "ziri_config_reloads_total")}
    assert reloads == {("key file", "ok"): 1, ("key file", "failed"): 1}


@pytest.mark.parametrize("headers, status, code", [
    pytest.param({}, 401, "METRICS_TOKEN_INVALID", id="no-header"),
    pytest.param({"Authorization": "Bearer wrong"}, 401, "METRICS_TOKEN_INVALID", id="wrong-token"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, "METRICS_TOKEN_INVALID", id="wrong-scheme"),
    pytest.param({"X-API-Key": USER_KEY}, 401, "METRICS_TOKEN_INVALID", id="an-api-key-is-not-enough"),
])
def test_metrics_refuse_without_the_token(metered, headers, status, code):
    response = metered.get("/metrics", headers=headers)
    assert response.status_code == status
    assert response.get_json()["code"] == code and response.get_json()["requestId"].startswith("req_")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_metrics_are_off_without_a_token(client):
    response = client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 404 and response.get_json()["code"] == "NOT_FOUND"


def test_metrics_observe_the_limiter_without_replacing_it(make_app, responses_mock):
    app = make_app(METRICS_TOKEN=TOKEN)
    limiter = app.extensions["ziri_images"].limiter
    assert type(limiter) is Limiter, "another extension's object was wrapped or replaced"
    assert limiter.observers == [app.extensions["ziri_images_metrics"]]
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    client = app.test_client()
    assert client.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200
    _, text = scrape(client)
    assert {s.labels["operation"] for s in samples(text, "ziri_ledger_commit_seconds_count")} == {"reserve", "settle"}
