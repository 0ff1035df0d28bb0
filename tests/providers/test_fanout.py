"""n calls at once under one reservation: their images and usage merged, failures charged what they billed."""

import threading

import pytest

from ziri_images.providers.base import ProviderError
from ziri_images.providers.base import ProviderResult
from ziri_images.providers.fanout import add_usage
from ziri_images.providers.fanout import fan_out
from ziri_images.providers.fanout import merge


def result(images=1, output=100, billed=None):
    usage = {"input_tokens": 5, "output_tokens": output, "output_tokens_details": {"image_tokens": output}}
    return ProviderResult(body={"data": [{"b64_json": "x"}] * images, "usage": usage}, provider_status=200,
                          provider_request_id="r", provider_billed=billed)


def failed(status=502, **billing):
    return ProviderError(status, "failed", provider_status=status, **billing)


def test_the_calls_run_at_once():
    arrived = threading.Barrier(3, timeout=5)

    def call(index):
        arrived.wait()  # all three must be running for any to pass: they are not one after another
        return index

    assert fan_out(call, 3) == [0, 1, 2]


def test_usages_add_up_counts_details_and_lists():
    total = add_usage({"input_tokens": 1, "d": {"a": 1}, "usageMetadata": [1]},
                      {"input_tokens": 2, "d": {"a": 3}, "usageMetadata": [2]})

    assert total == {"input_tokens": 3, "d": {"a": 4}, "usageMetadata": [1, 2]}


def test_the_images_of_the_calls_that_succeeded_are_merged_with_their_usage():
    merged = merge([result(output=100, billed=0.01), failed(500), result(output=200, billed=0.02)])

    assert len(merged.images) == 2
    assert merged.usage["output_tokens"] == 300
    assert merged.provider_billed == 0.03


def test_a_failure_that_billed_adds_its_usage():
    merged = merge([result(output=100), failed(400, billed_usage={"input_tokens": 7, "output_tokens": 0})])

    assert (merged.usage["input_tokens"], merged.usage["output_tokens"]) == (12, 100)


def test_a_failure_after_a_2xx_makes_the_usage_unreadable():
    merged = merge([result(), failed(200)])  # it may have billed without saying what

    assert "output_tokens" not in merged.usage


def test_when_every_call_fails_the_first_error_carries_all_their_billing():
    with pytest.raises(ProviderError) as raised:
        merge([failed(400, billed_usage={"input_tokens": 1, "output_tokens": 0}, billed_amount=0.03),
               failed(400, billed_usage={"input_tokens": 2, "output_tokens": 0}, billed_amount=0.03)])

    assert raised.value.billed_usage == {"input_tokens": 3, "output_tokens": 0}
    assert raised.value.billed_amount == 0.06


def test_an_unexpected_error_is_raised_as_it_is():
    with pytest.raises(KeyError):
        merge([result(), KeyError("boom")])


def billed_result(billed):
    return ProviderResult(body={"created": 1, "data": [{"b64_json": "QQ=="}]}, provider_status=200,
                          provider_request_id="job", provider_billed=billed)


def billed_failure(billed=None, status=None):
    return ProviderError(502, "failed", provider_status=status, may_have_billed=True, billed_amount=billed)


@pytest.mark.parametrize("outcomes, billed", [
    pytest.param([billed_result(0.03), billed_result(0.045)], 0.075, id="every-call-billed"),
    pytest.param([billed_result(0.03), billed_result(None)], None, id="one-call-silent"),
    pytest.param([billed_result(0.03), billed_failure(0.03, 200)], 0.06, id="a-failed-call-billed-too"),
    pytest.param([billed_result(0.03), billed_failure(None, 200)], None, id="a-failed-answered-call-silent"),
    pytest.param([billed_result(0.03), billed_failure(None, None)], 0.03, id="a-call-never-answered"),
    pytest.param([billed_result(None), billed_result(None)], None, id="no-figures-at-all"),
])
def test_what_the_provider_billed_is_summed_only_when_every_answered_call_says(outcomes, billed):
    assert merge(outcomes).provider_billed == billed


def test_when_every_call_failed_the_first_error_carries_every_calls_bill():
    with pytest.raises(ProviderError) as error:
        merge([billed_failure(0.03, 200), billed_failure(0.04, 200)])
    assert error.value.billed_amount == 0.07

    with pytest.raises(ProviderError) as error:
        merge([billed_failure(0.03, 200), billed_failure(None, 200)])
    assert error.value.billed_amount is None and error.value.charge_fields(0.09)["cost"] == 0.09
