"""Token-billed models: the charge is the provider's reported usage at the catalog's token prices.

Every expected figure is computed by hand in the comments: tokens x USD per 1M tokens gives
millionths of a dollar (the ledger's unit).
"""

import logging
from decimal import Decimal

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import ledger_lines
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from responses import matchers

from ziri_images.catalog.tokens import LEDGER_UNIT
from ziri_images.catalog.tokens import MAX_TOKENS
from ziri_images.catalog.tokens import TokenPrices
from ziri_images.catalog.tokens import to_amount
from ziri_images.errors import ConfigError

GPT_IMAGE_1 = TokenPrices({"text_input": 5, "image_input": 10, "image_output": 40}, "gpt-image-1")
GPT_IMAGE_1_MINI = TokenPrices({"text_input": 2, "image_input": 2.5, "image_output": 8}, "gpt-image-1-mini")
GPT_IMAGE_2 = TokenPrices({"text_input": 5, "image_input": 8, "image_output": 30}, "gpt-image-2")
WITH_TEXT_OUTPUT = TokenPrices({"text_input": 5, "image_input": 8, "image_output": 30, "text_output": 10}, "x")


def usage(text, image, output, output_text=None):
    """Return a ``usage`` object shaped as the Images API reports it."""
    body = {"input_tokens": text + image, "input_tokens_details": {"text_tokens": text, "image_tokens": image},
            "output_tokens": output, "total_tokens": text + image + output}
    if output_text is not None:
        body["output_tokens_details"] = {"image_tokens": output - output_text, "text_tokens": output_text}
    return body


@pytest.mark.parametrize(
    ("prices", "reported", "cost"),
    [
        # 50 x $5 + 4160 x $40 = 250 + 166,400 = 166,650 millionths.
        pytest.param(GPT_IMAGE_1, usage(50, 0, 4160), 0.16665, id="gpt-image-1-high-square"),
        # 12 x $5 + 323 x $10 + 1056 x $40 = 60 + 3,230 + 42,240 = 45,530.
        pytest.param(GPT_IMAGE_1, usage(12, 323, 1056), 0.04553, id="gpt-image-1-with-image-input"),
        # 12 x $2 + 323 x $2.50 + 272 x $8 = 24 + 807.5 + 2,176 = 3,007.5, rounded half up.
        pytest.param(GPT_IMAGE_1_MINI, usage(12, 323, 272), 0.003008, id="mini-half-a-millionth-rounds-up"),
        # 23 x $5 + 1372 x $30 = 115 + 41,160 = 41,275.
        pytest.param(GPT_IMAGE_2, usage(23, 0, 1372, output_text=0), 0.041275, id="gpt-image-2-medium"),
        # No text output price: all 1400 output tokens at $30: 115 + 42,000 = 42,115.
        pytest.param(GPT_IMAGE_2, usage(23, 0, 1400, output_text=28), 0.042115, id="output-text-at-image-price"),
        # 115 + 1372 x $30 + 28 x $10 = 115 + 41,160 + 280 = 41,555.
        pytest.param(WITH_TEXT_OUTPUT, usage(23, 0, 1400, output_text=28), 0.041555, id="output-text-at-its-price"),
        # Input not itemised: 20 tokens at the dearer input rate ($10) + 100 x $40 = 200 + 4,000.
        pytest.param(GPT_IMAGE_1, {"input_tokens": 20, "output_tokens": 100}, 0.0042, id="input-not-itemised"),
        pytest.param(GPT_IMAGE_1, usage(0, 0, 0), 0.0, id="nothing-used"),
    ],
)
def test_cost_of_reported_usage(prices, reported, cost):
    assert prices.cost(reported) == cost


@pytest.mark.parametrize(
    "reported",
    [
        pytest.param(None, id="none"),
        pytest.param([1, 2], id="list"),
        pytest.param({"input_tokens": 5}, id="no-output-tokens"),
        pytest.param({**usage(5, 0, 10), "output_tokens": -1}, id="negative"),
        pytest.param({**usage(5, 0, 10), "output_tokens": 10.5}, id="fraction"),
        pytest.param({**usage(5, 0, 10), "output_tokens": True}, id="boolean"),
        pytest.param({**usage(5, 0, 10), "input_tokens_details": {"text_tokens": "5"}}, id="count-as-text"),
    ],
)
def test_usage_that_cannot_be_priced(reported):
    assert GPT_IMAGE_1.cost(reported) is None


def test_output_text_tokens_above_the_output_total_cannot_be_priced():
    assert WITH_TEXT_OUTPUT.cost(usage(1, 0, 10, output_text=11)) is None


# Output text dearer than output image, so a token left unitemised must be priced at text_output.
DEAR_TEXT_OUTPUT = TokenPrices({"text_input": 5, "image_input": 8, "image_output": 30, "text_output": 40}, "y")


@pytest.mark.parametrize(
    ("details", "cost"),
    [
        # 1,000 input tokens at the dearer input rate ($10) + 100 x $40 = 10,000 + 4,000 millionths.
        pytest.param({}, 0.014, id="empty-details"),
        pytest.param({"cached_tokens": 0}, 0.014, id="only-cached-tokens"),
        pytest.param({"cached_tokens": 600}, 0.014, id="cached-tokens-are-among-the-input-tokens"),
        pytest.param(None, 0.014, id="null-details"),
        # 10 x $5 + the other 990 x $10 + 4,000 = 50 + 9,900 + 4,000.
        pytest.param({"text_tokens": 10}, 0.01395, id="partly-itemised"),
        # 10 x $5 + 400 x $10 + the other 590 x $10 + 4,000.
        pytest.param({"text_tokens": 10, "image_tokens": 400}, 0.01395, id="itemised-below-the-total"),
    ],
)
def test_every_input_token_the_usage_counts_is_priced(details, cost):
    reported = {"input_tokens": 1000, "input_tokens_details": details, "output_tokens": 100}

    assert GPT_IMAGE_1.cost(reported) == cost


@pytest.mark.parametrize(
    ("prices", "details", "cost"),
    [
        # Not itemised: 1,000 output tokens at the dearer output rate, text_output's $40.
        pytest.param(DEAR_TEXT_OUTPUT, {}, 0.04, id="empty-details-at-the-dearer-output-rate"),
        # 900 x $30 + the other 100 at $40 = 27,000 + 4,000.
        pytest.param(DEAR_TEXT_OUTPUT, {"image_tokens": 900}, 0.031, id="partly-itemised"),
        # 900 x $30 + 100 x $40: itemised in full.
        pytest.param(DEAR_TEXT_OUTPUT, {"image_tokens": 900, "text_tokens": 100}, 0.031, id="itemised"),
        # No text_output price: every output token at image_output.
        pytest.param(GPT_IMAGE_2, {"image_tokens": 900}, 0.03, id="one-output-rate"),
    ],
)
def test_every_output_token_the_usage_counts_is_priced(prices, details, cost):
    assert prices.cost({"output_tokens": 1000, "output_tokens_details": details}) == cost


@pytest.mark.parametrize(
    "reported",
    [
        pytest.param({"input_tokens": 10, "input_tokens_details": {"text_tokens": 8, "image_tokens": 3},
                      "output_tokens": 5}, id="input-items-above-the-input-total"),
        pytest.param({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 11}, "output_tokens": 5},
                     id="more-cached-than-input-tokens"),
        pytest.param({"input_tokens": 10, "input_tokens_details": {"cached_tokens": -1}, "output_tokens": 5},
                     id="negative-cached-tokens"),
        pytest.param({"input_tokens": None, "output_tokens": 5}, id="null-input-total"),
        pytest.param({"output_tokens": 10, "output_tokens_details": {"image_tokens": 8, "text_tokens": 3}},
                     id="output-items-above-the-output-total"),
        pytest.param({"output_tokens": 10, "output_tokens_details": {"image_tokens": "8"}},
                     id="output-count-as-text"),
    ],
)
@pytest.mark.parametrize("prices", [GPT_IMAGE_2, DEAR_TEXT_OUTPUT], ids=["image-output-only", "text-output-priced"])
def test_counts_that_contradict_each_other_cannot_be_priced(prices, reported):
    assert prices.cost(reported) is None


def test_a_usage_without_an_input_total_is_priced_from_its_items():
    # 9 x $5 + 100 x $10 + 10 x $40 = 45 + 1,000 + 400 millionths.
    reported = {"input_tokens_details": {"text_tokens": 9, "image_tokens": 100}, "output_tokens": 10}

    assert GPT_IMAGE_1.cost(reported) == 0.001445


# --- the rule as properties, over random usages and prices ------------------------------------

COUNTS = st.integers(min_value=0, max_value=MAX_TOKENS - 1)  # room for one more
RATES = st.decimals(min_value=0, max_value=100, places=2)


@st.composite
def token_prices(draw):
    """Return TokenPrices with random rates, with or without text_output."""
    spec = {name: float(draw(RATES)) for name in ("text_input", "image_input", "image_output")}
    if draw(st.booleans()):
        spec["text_output"] = float(draw(RATES))
    return TokenPrices(spec, "random")


@st.composite
def itemised(draw, total, kinds):
    """Return a details object for ``total`` tokens: some kinds itemised, their sum at most ``total``."""
    details, left = {}, total
    for kind in kinds:
        if draw(st.booleans()):
            details[kind] = draw(st.integers(min_value=0, max_value=left))
            left -= details[kind]
    return draw(st.sampled_from([details, details, None, "not an object"])) if not details else details


@st.composite
def readable_usages(draw):
    """Return a usage whose counts agree with each other (every itemised count within its total)."""
    input_tokens, output_tokens = draw(COUNTS), draw(COUNTS)
    reported = {"output_tokens": output_tokens,
                "output_tokens_details": draw(itemised(output_tokens, ("image_tokens", "text_tokens")))}
    input_details = draw(itemised(input_tokens, ("text_tokens", "image_tokens")))
    reported["input_tokens_details"] = input_details
    if draw(st.booleans()) or not isinstance(input_details, dict):
        reported["input_tokens"] = input_tokens
    if isinstance(input_details, dict) and draw(st.booleans()):
        input_details["cached_tokens"] = draw(st.integers(min_value=0, max_value=counted(reported, "input")))
    return reported


def counted(reported, side):
    """Return the tokens a usage counts on one side: its total, else the sum of its items."""
    details = reported.get(f"{side}_tokens_details")
    items = sum(value for name, value in details.items() if name != "cached_tokens") if isinstance(details, dict) else 0
    return reported.get(f"{side}_tokens", items)


def rate(prices, kinds, pick):
    return pick(prices.per_token(kind) for kind in kinds if kind in prices.prices)


PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=400)


@PROPERTY
@given(prices=token_prices(), reported=readable_usages())
def test_every_counted_token_is_priced_at_least_at_the_cheapest_applicable_rate(prices, reported):
    inputs, outputs = counted(reported, "input"), counted(reported, "output")
    cheapest = (inputs * rate(prices, ("text_input", "image_input"), min)
                + outputs * rate(prices, ("image_output", "text_output"), min))
    dearest = (inputs * rate(prices, ("text_input", "image_input"), max)
               + outputs * rate(prices, ("image_output", "text_output"), max))

    cost = prices.cost(reported)

    # Readable counts are always priced; no token is left out, and none is priced twice.
    assert cost is not None
    assert to_amount(cheapest) <= cost <= to_amount(dearest)


@PROPERTY
@given(prices=token_prices(), reported=readable_usages(), side=st.sampled_from(["input", "output"]))
def test_one_more_counted_token_is_priced_at_the_dearer_rate_of_its_side(prices, reported, side):
    more = {**reported, f"{side}_tokens": counted(reported, side) + 1}
    kinds = ("text_input", "image_input") if side == "input" else ("image_output", "text_output")

    added = Decimal(str(prices.cost(more))) - Decimal(str(prices.cost(reported)))

    # Left unitemised, the extra token costs the dearer rate (each figure is rounded to a millionth).
    assert abs(added - rate(prices, kinds, max)) <= LEDGER_UNIT


def test_prompt_bound_is_one_token_per_utf8_byte():
    # "a fox" is 5 bytes: 5 x $5 per 1M; "猫" is 3 bytes (and can be more than one token).
    assert float(GPT_IMAGE_2.prompt_bound("a fox")) == 0.000025
    assert float(GPT_IMAGE_2.prompt_bound("\u732b")) == 0.000015


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param({"text_input": 5, "image_input": 10}, "t.image_output: price per 1M tokens", id="missing"),
        pytest.param({"text_input": -5, "image_input": 10, "image_output": 40}, "t.text_input: price", id="negative"),
        pytest.param({"text_input": "5", "image_input": 10, "image_output": 40}, "t.text_input: price", id="string"),
        pytest.param([5, 10, 40], "t: expected an object", id="list"),
    ],
)
def test_invalid_token_prices(spec, problem):
    with pytest.raises(ConfigError, match=problem):
        TokenPrices(spec, "t")


# --- through the endpoint: real response shapes ---------------------------------------------

PROMPT = "A white cat sitting on a windowsill"  # 35 bytes: reserves 35 x $5 per 1M = $0.000175
PROMPT_RESERVE = 35 * 5 / 1_000_000

# What gpt-image-1 answers (b64 shortened): the quality and size it produced, and its usage.
GPT_IMAGE_1_RESPONSE = {
    "created": 1764158400,
    "background": "opaque",
    "data": [{"b64_json": "iVBORw0KGgo="}],
    "output_format": "png",
    "quality": "high",
    "size": "1024x1024",
    "usage": {
        "input_tokens": 9,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 9},
        "output_tokens": 4160,
        "total_tokens": 4169,
    },
}

# What gpt-image-2 answers for two 1536x864 images at medium quality: usage also itemises output.
GPT_IMAGE_2_RESPONSE = {
    "created": 1764158400,
    "background": "opaque",
    "data": [{"b64_json": "iVBORw0KGgo="}, {"b64_json": "iVBORw0KGgo="}],
    "output_format": "png",
    "quality": "medium",
    "size": "1536x864",
    "usage": {
        "input_tokens": 9,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 9},
        "output_tokens": 2156,
        "output_tokens_details": {"image_tokens": 2156, "text_tokens": 0},
        "total_tokens": 2165,
    },
}


def generate(client, responses_mock, request_fields, answer):
    body = {"provider": "openai", "prompt": PROMPT, **request_fields}
    sent = {"prompt": PROMPT, "n": 1, **{name: value for name, value in request_fields.items() if name != "provider"}}
    responses_mock.post(GENERATIONS_URL, json=answer, headers={"x-request-id": "req_up"},
                        match=[matchers.json_params_matcher(sent)])
    response = client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY})
    assert response.status_code == 200, response.get_json()
    return response


def test_gpt_image_1_is_charged_its_reported_tokens(client, app, responses_mock):
    response = generate(client, responses_mock, {"model": "gpt-image-1", "quality": "high", "size": "1024x1024"},
                        GPT_IMAGE_1_RESPONSE)

    # 9 x $5 + 4160 x $40 = 45 + 166,400 = 166,445 millionths.
    cost = response.get_json()["_meta"]["cost"]
    assert (cost["actual"], cost["chargedBy"], cost["usage"]) == (0.166445, "tokens", GPT_IMAGE_1_RESPONSE["usage"])
    assert (cost["estimated"], cost["pricePerImage"]) == (0.167, 0.167)
    assert cost["reserved"] == round(0.167 + PROMPT_RESERVE, 6) == 0.167175
    reservation, charge = ledger_lines(app)
    assert reservation["amount"] == 0.167175
    assert (charge["estimatedCost"], charge["tokenCost"], charge["chargedBy"]) == (0.167, 0.166445, "tokens")
    assert (charge["cost"], charge["usage"]) == (0.166445, GPT_IMAGE_1_RESPONSE["usage"])
    spent = client.get("/api/me/usage", headers={"X-API-Key": USER_KEY}).get_json()["daily"]["spent"]
    assert spent == 0.166445  # the budget counts what was charged


def test_gpt_image_2_arbitrary_size_is_charged_its_reported_tokens(client, app, responses_mock):
    response = generate(client, responses_mock,
                        {"model": "gpt-image-2", "quality": "medium", "size": "1536x864", "n": 2},
                        GPT_IMAGE_2_RESPONSE)

    # 9 x $5 + 2156 x $30 = 45 + 64,680 = 64,725 millionths; the estimate is 2 x the 1536x1024 tier's $0.06174.
    cost = response.get_json()["_meta"]["cost"]
    assert (cost["actual"], cost["chargedBy"]) == (0.064725, "tokens")
    assert (cost["estimated"], cost["size"], cost["pricePerImage"]) == (0.12348, "1536x864", 0.06174)
    assert cost["reserved"] == round(0.12348 + PROMPT_RESERVE, 6)
    _reservation, charge = ledger_lines(app)
    assert (charge["estimatedCost"], charge["tokenCost"], charge["cost"]) == (0.12348, 0.064725, 0.064725)
    assert charge["imagesReturned"] == 2


def test_input_tokens_the_usage_does_not_itemise_are_charged(client, app, responses_mock):
    answer = {**GPT_IMAGE_2_RESPONSE, "data": [{"b64_json": "AA=="}], "quality": "medium", "size": "1024x1024",
              "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1372}}

    response = generate(client, responses_mock, {"model": "gpt-image-2", "quality": "medium", "size": "1024x1024"},
                        answer)

    # 1,000 input tokens at the dearer input rate ($8) + 1372 x $30 = 8,000 + 41,160 millionths.
    assert response.get_json()["_meta"]["cost"]["actual"] == 0.04916
    _reservation, charge = ledger_lines(app)
    assert (charge["cost"], charge["tokenCost"], charge["chargedBy"]) == (0.04916, 0.04916, "tokens")


def test_tokens_above_the_reservation_are_charged_up_to_the_cap_and_logged(client, app, responses_mock, caplog):
    # An unexpected bill: 5,000 output tokens for one low-quality square image reserved at $0.00588.
    answer = {**GPT_IMAGE_2_RESPONSE, "data": [{"b64_json": "AA=="}], "quality": "low", "size": "1024x1024",
              "usage": usage(9, 0, 5000, output_text=0)}

    with caplog.at_level(logging.WARNING, logger="ziri_images"):
        response = generate(client, responses_mock, {"model": "gpt-image-2", "quality": "low", "size": "1024x1024"},
                            answer)

    # 45 + 5000 x $30 = 150,045 millionths, against 5,880 + 175 reserved: charged twice the reservation.
    reservation, charge = ledger_lines(app)
    assert reservation["amount"] == 0.006055
    assert (charge["cost"], charge["chargedBy"], charge["reserved"]) == (0.01211, "tokens", 0.006055)
    assert charge["tokenCost"] == 0.150045  # the provider's own figure, for reconciliation
    request_id = response.get_json()["_meta"]["requestId"]
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "charge exceeds reservation" in warning.getMessage() and request_id in warning.getMessage()


@pytest.mark.parametrize(
    ("model", "reported"),
    [
        pytest.param("gpt-image-1", None, id="no-usage-from-a-token-model"),
        pytest.param("dall-e-2", usage(9, 0, 100), id="usage-of-a-model-without-token-prices"),
    ],
)
def test_per_image_price_is_charged_when_tokens_cannot_be(client, app, responses_mock, model, reported):
    fields = {"model": model, "quality": "medium" if model == "gpt-image-1" else "standard", "size": "1024x1024"}
    response = generate(client, responses_mock, fields, {"created": 1, "data": [{"url": "https://x.test/1.png"}],
                                                         "usage": reported})

    cost = response.get_json()["_meta"]["cost"]
    per_image = 0.042 if model == "gpt-image-1" else 0.02
    assert (cost["actual"], cost["chargedBy"], cost["usage"]) == (per_image, "per_image", reported)
    _reservation, charge = ledger_lines(app)
    assert (charge["estimatedCost"], charge["tokenCost"], charge["chargedBy"]) == (per_image, None, "per_image")
    assert charge["usage"] == reported  # kept for the record, even when it is not what was charged
