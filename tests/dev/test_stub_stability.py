"""The stub answers Stability AI's shape: the adapter reads its answers as it reads Stability's own."""

import pytest

from ziri_images.dev.stub import create_stub_app
from ziri_images.providers.base import ProviderError
from ziri_images.providers.stability import StabilityProvider
from ziri_images.providers.stability import build_form
from ziri_images.providers.stability import read_answer

HEADERS = {"Authorization": "Bearer sk-local-stub-not-a-real-key", "Accept": "application/json"}


def stub_answer(model="sd3.5-large", prompt="a lighthouse", **fields):
    endpoint, form = build_form({"model": model, "prompt": prompt, "n": 1, "aspect_ratio": "16:9", **fields})
    client = create_stub_app().test_client()
    response = client.post(f"/v2beta/stable-image/generate/{endpoint}", headers=HEADERS,
                           data={name: value for name, (_, value) in form}, content_type="multipart/form-data")
    provider = StabilityProvider("stability", "http://127.0.0.1:3199", "sk-local-stub-not-a-real-key", 1, 5)
    return read_answer(provider, response.status_code, response.headers, response.data)


@pytest.mark.parametrize("model", ["stable-image-ultra", "stable-image-core", "sd3.5-large-turbo"])
def test_stub_generates_one_image_per_call(model):
    result = stub_answer(model, seed=77)

    assert [set(item) for item in result.images] == [{"b64_json", "seed"}]
    assert result.images[0]["seed"] == 77


@pytest.mark.parametrize(("prompt", "status", "code"), [
    pytest.param("a lighthouse [stub:filtered]", 400, "CONTENT_POLICY_VIOLATION", id="filtered"),
    pytest.param("a lighthouse [stub:moderation]", 400, "CONTENT_POLICY_VIOLATION", id="moderation-403"),
    pytest.param("a lighthouse [stub:status=500]", 502, "LLM_PROVIDER_ERROR", id="server-error"),
])
def test_stub_faults_map_as_stabilitys_own(prompt, status, code):
    with pytest.raises(ProviderError) as raised:
        stub_answer(prompt=prompt)

    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.billed_images == (1 if "filtered" in prompt else None)
