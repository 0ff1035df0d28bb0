"""The stub's Black Forest Labs answers the adapter as BFL does: a job submitted, polled, fetched, and its cost."""

import base64
import io
import threading

import pytest
from werkzeug.serving import make_server

from ziri_images.dev.stub import create_stub_app
from ziri_images.dev.stub_bfl import cost_in_credits
from ziri_images.providers.base import ProviderError
from ziri_images.providers.bfl import BflProvider
from ziri_images.uploads.imageinfo import image_info

pytestmark = pytest.mark.real_http


@pytest.fixture(scope="module")
def stub_bfl():
    """The stub served in a thread; return a BflProvider pointed at its /bfl/v1."""
    server = make_server("127.0.0.1", 0, create_stub_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield BflProvider("bfl", f"http://127.0.0.1:{server.server_port}/bfl/v1", "stub-key-0123456789", 2.0, 5.0,
                      poll_seconds=(0.01, 0.02))
    server.shutdown()
    thread.join(5)
    server.server_close()


def payload(prompt="a red fox", **fields):
    return {"model": "flux-2-pro", "prompt": prompt, "n": 1, "size": "1024x1024", **fields}


def test_a_generation_is_a_job_polled_until_ready_and_its_image_fetched(stub_bfl):
    result = stub_bfl.generate(payload(n=2), "req_stub")

    assert len(result.images) == 2
    assert image_info(io.BytesIO(base64.b64decode(result.images[0]["b64_json"]))).mime_type == "image/png"
    # 1.05 MP at 3 cents, then 1.5 cents a further MP, by exact megapixels: 3.08 credits a job.
    assert result.provider_billed == 2 * 0.0308


@pytest.mark.parametrize("directive, status, code", [
    pytest.param("[stub:bfl_status=Content Moderated]", 400, "CONTENT_POLICY_VIOLATION", id="moderated"),
    pytest.param("[stub:bfl_status=Error]", 502, "LLM_PROVIDER_ERROR", id="error"),
    pytest.param("[stub:expired]", 502, "LLM_PROVIDER_ERROR", id="expired-url"),
])
def test_the_stubs_failures_are_billed_as_bfl_bills_them(stub_bfl, directive, status, code):
    with pytest.raises(ProviderError) as failure:
        stub_bfl.generate(payload(f"a fox {directive} [stub:polls=2]"), "req_stub")

    assert (failure.value.status, failure.value.code, failure.value.billed_amount) == (status, code, 0.0308)


def test_the_stub_prices_flux_1_per_image_and_counts_input_megapixels():
    assert cost_in_credits("flux-kontext-max", 1.0, 3.0) == 8
    assert cost_in_credits("flux-2-klein-9b", 2.0, 1.0) == 1.9
