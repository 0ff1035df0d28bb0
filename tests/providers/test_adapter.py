"""The adapter interface: a provider implements ``send`` once, and the gateway's whole path serves it."""

from conftest import ENDPOINT
from conftest import USER_KEY
from conftest import ledger_lines

from ziri_images.providers.base import Provider
from ziri_images.providers.base import ProviderCall
from ziri_images.providers.base import ProviderResult
from ziri_images.providers.deadline import Transport

PAYLOAD = {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1}
FILES = [("image", ("in.png", b"\x89PNG", "image/png"))]


class Canned(Provider):
    """An adapter for an API that is not OpenAI's: no HTTP at all, one answer, every call kept."""

    def __init__(self, name, result):
        self.name, self.api_key, self.api_key_env, self.base_url = name, "canned-key-123", "CANNED_KEY", "https://x.test"
        self.call_deadline = 5.0
        self.result = result
        self.calls = []

    def send(self, call):
        self.calls.append(call)
        return self.result


def canned_result(**fields):
    return ProviderResult(body={"created": 1, "data": [{"b64_json": "QUJD"}]}, provider_status=200,
                          provider_request_id="canned_1", **fields)


def test_an_adapter_that_implements_only_send_serves_generations_edits_and_streams():
    adapter = Canned("canned", canned_result())

    assert adapter.generate(PAYLOAD, "req_1") is adapter.result
    adapter.edit(PAYLOAD, FILES, "req_2")
    adapter.open_stream(PAYLOAD, "req_3")
    adapter.open_stream(PAYLOAD, "req_4", FILES)

    assert adapter.calls == [
        ProviderCall("generations", PAYLOAD, "req_1"),
        ProviderCall("edits", PAYLOAD, "req_2", FILES),
        ProviderCall("generations", PAYLOAD, "req_3", None, True),
        ProviderCall("edits", PAYLOAD, "req_4", FILES, True),
    ]
    assert adapter.supports_stream is False and adapter.missing_setting is None and not adapter.is_loopback


def test_a_provider_that_is_not_openais_client_is_priced_called_and_charged_through_the_gateway(app, client):
    adapter = Canned("openai", canned_result())
    app.extensions["ziri_images"].providers["openai"] = adapter  # no HTTP mock: nothing may be sent

    response = client.post(ENDPOINT, json={"provider": "openai", **PAYLOAD}, headers={"X-API-Key": USER_KEY})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == [{"b64_json": "QUJD"}]
    assert response.get_json()["_meta"]["providerRequestId"] == "canned_1"
    [call] = adapter.calls
    assert (call.operation, call.payload["model"], call.files) == ("generations", "dall-e-3", None)
    charge = ledger_lines(app)[-1]
    assert (charge["status"], charge["imagesReturned"], charge["providerRequestId"]) == ("succeeded", 1, "canned_1")
    assert charge["cost"] == response.get_json()["_meta"]["cost"]["actual"] > 0


def test_a_result_carries_images_usage_and_what_the_provider_billed():
    usage = {"input_tokens": 10, "output_tokens": 4160}
    result = ProviderResult(body={"data": [{"url": "https://images.test/1.png"}], "usage": usage}, provider_status=200,
                            provider_request_id=None, provider_billed=0.045)

    assert result.images == [{"url": "https://images.test/1.png"}]
    assert (result.usage, result.provider_billed) == (usage, 0.045)
    assert canned_result().provider_billed is None and canned_result().usage is None


def test_a_url_new_on_every_call_is_not_kept_by_the_transport():
    transport = Transport((1.0, 2.0), True, {})

    for job in range(3):  # a job's polling URL: each new
        request = transport.prepare("GET", f"https://api.bfl.test/v1/get_result?id={job}", {}, cached=False)
        assert request.url == f"https://api.bfl.test/v1/get_result?id={job}"
    transport.prepare("POST", "https://api.openai.test/v1/images/generations", {}, json={})
    transport.prepare("POST", "https://api.openai.test/v1/images/generations", {}, json={})

    assert list(transport._prepared_urls) == ["https://api.openai.test/v1/images/generations"]
