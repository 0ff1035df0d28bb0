"""What n calls at once are billed: the provider's figures summed only when every answered call gave one."""

import pytest

from ziri_images.providers.base import ProviderError
from ziri_images.providers.base import ProviderResult
from ziri_images.providers.fanout import merge


def result(billed):
    return ProviderResult(body={"created": 1, "data": [{"b64_json": "QQ=="}]}, provider_status=200,
                          provider_request_id="job", provider_billed=billed)


def failed(billed=None, status=None):
    return ProviderError(502, "failed", provider_status=status, may_have_billed=True, billed_amount=billed)


@pytest.mark.parametrize("outcomes, billed", [
    pytest.param([result(0.03), result(0.045)], 0.075, id="every-call-billed"),
    pytest.param([result(0.03), result(None)], None, id="one-call-silent"),
    pytest.param([result(0.03), failed(0.03, 200)], 0.06, id="a-failed-call-billed-too"),
    pytest.param([result(0.03), failed(None, 200)], None, id="a-failed-answered-call-silent"),
    pytest.param([result(0.03), failed(None, None)], 0.03, id="a-call-never-answered"),
    pytest.param([result(None), result(None)], None, id="no-figures-at-all"),
])
def test_what_the_provider_billed_is_summed_only_when_every_answered_call_says(outcomes, billed):
    assert merge(outcomes).provider_billed == billed


def test_when_every_call_failed_the_first_error_carries_every_calls_bill():
    with pytest.raises(ProviderError) as error:
        merge([failed(0.03, 200), failed(0.04, 200)])
    assert error.value.billed_amount == 0.07

    with pytest.raises(ProviderError) as error:
        merge([failed(0.03, 200), failed(None, 200)])
    assert error.value.billed_amount is None and error.value.charge_fields(0.09)["cost"] == 0.09
