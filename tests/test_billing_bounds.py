"""No answer from a provider can make a charge exceed its reservation, or escape being recorded.

Per-image billing: only the images that were priced are delivered and charged, at no more
than the price reserved; what the provider itself reported (how many images, which quality
and size) is kept beside the charge for reconciliation. Token billing: the provider's usage
is charged, capped at ``TOKEN_CHARGE_CAP`` (``catalog/limits.py``) times the reservation. Whatever the body holds
(a lone surrogate, a 40-digit count, NaN), the call is settled with a ``charge`` record
before the client hears back.
"""

import logging
from pathlib import Path

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import ledger_lines
from conftest import strict_json_loads

from ziri_images import billing
from ziri_images.catalog.charges import charge_for
from ziri_images.catalog.limits import DEFAULT_TOKEN_CHARGE_CAP as TOKEN_CHARGE_CAP
from ziri_images.catalog.pricing import PriceBook

PROMPT = "a lighthouse at dusk"  # 20 bytes: a token-billed model reserves 20 x text_input per 1M on top


def images(count, item=None):
    return [dict(item) if item is not None else {"url": f"https://images.test/{index}.png"} for index in range(count)]


def generate(client, responses_mock, fields, answer, key=USER_KEY):
    """Ask for ``fields`` and answer with ``answer`` (a dict, or the raw bytes of the provider's body)."""
    if isinstance(answer, bytes):
        responses_mock.post(GENERATIONS_URL, body=answer, content_type="application/json")
    else:
        responses_mock.post(GENERATIONS_URL, json=answer)
    return client.post(ENDPOINT, json={"provider": "openai", "prompt": PROMPT, **fields}, headers={"X-API-Key": key})


def assert_strict_ledger(app):
    for line in Path(app.config["LEDGER_PATH"]).read_bytes().decode("utf-8", errors="strict").splitlines():
        strict_json_loads(line)


def charge_record(app):
    reservation, charge = ledger_lines(app)
    assert charge["type"] == "charge" and charge["requestId"] == reservation["requestId"]
    return reservation, charge


# --- per-image billing: never more than reserved -----------------------------------------------

@pytest.mark.parametrize(("fields", "answer", "cost", "provider_record"), [
    pytest.param({"model": "dall-e-3"}, {"created": 1, "data": images(3)}, 0.04,
                 {"providerImages": 3}, id="dall-e-3-one-asked-three-returned"),
    pytest.param({"model": "dall-e-2", "size": "256x256"}, {"created": 1, "data": images(500, {})}, 0.016,
                 {"providerImages": 500}, id="dall-e-2-one-asked-500-empty-items"),
    pytest.param({"model": "dall-e-3"}, {"created": 1, "data": images(1), "quality": "hd", "size": "1792x1024"}, 0.04,
                 {"providerImages": 1, "providerChoices": {"quality": "hd", "size": "1792x1024"}},
                 id="dall-e-3-standard-asked-hd-reported"),
])
def test_a_provider_answer_cannot_charge_past_the_reservation(client, app, responses_mock, add_key, fields, answer,
                                                              cost, provider_record):
    key = add_key(limits={"daily_spend_limit": 0.04})

    response = generate(client, responses_mock, fields, answer, key=key)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert len(body["data"]) == 1  # only the image that was priced is delivered
    assert (body["_meta"]["cost"]["actual"], body["_meta"]["cost"]["imagesCharged"]) == (cost, 1)
    reservation, charge = charge_record(app)
    assert (charge["cost"], charge["imagesReturned"], charge["chargedBy"]) == (cost, 1, "per_image")
    assert charge["cost"] <= reservation["amount"]
    for name, value in provider_record.items():
        assert charge[name] == value  # what the provider said it produced, for reconciliation
    spent = client.get("/api/me/usage", headers={"X-API-Key": key}).get_json()["daily"]["spent"]
    assert spent == cost <= 0.04


def dearest(table):
    """Return the path of keys to the highest price in a nested price table."""
    if not isinstance(table, dict):
        return [], table
    paths = [([name, *path], price) for name, value in table.items() for path, price in [dearest(value)]]
    return max(paths, key=lambda entry: entry[1])


@pytest.mark.parametrize("row", ["cheapest", "dearest"])
def test_no_catalog_model_charges_per_image_past_its_reservation(pricing_path, row):
    book = PriceBook.from_file(pricing_path)
    for model in book.image_models():
        rows = sorted(model.price_rows(), key=lambda entry: entry[1])
        requested = dict(rows[0][0] if row == "cheapest" else rows[-1][0])  # a size tier's name is a valid size
        quote = book.quote(model, requested, 1, PROMPT)
        path, _price = dearest(model.prices)
        reported = dict(zip(model.price_dimensions, path))
        answer = {"created": 1, "data": images(model.max_images + 3), **reported}

        charge = charge_for(model, quote, answer)

        assert charge.images == 1 and charge.provider_images == model.max_images + 3, model.name
        assert charge.cost <= quote.reserved, (model.provider, model.name, requested, reported)


# --- token billing: the one exception, bounded ----------------------------------------------------

LOW_SQUARE = {"model": "gpt-image-2", "quality": "low", "size": "1024x1024"}


def token_answer(output_tokens, **extra):
    usage = {"input_tokens": 9, "input_tokens_details": {"text_tokens": 9, "image_tokens": 0},
             "output_tokens": output_tokens, "total_tokens": 9 + output_tokens}
    return {"created": 1, "data": images(1, {"b64_json": "AA=="}), "quality": "low", "size": "1024x1024",
            "usage": usage, **extra}


def test_token_bill_above_the_reservation_is_capped(client, app, responses_mock, caplog):
    # 5,000 output tokens for one low square image: 45 + 5000 x $30 = $0.150045, reserved $0.00588 + $0.0001.
    with caplog.at_level(logging.WARNING, logger="ziri_images"):
        response = generate(client, responses_mock, LOW_SQUARE, token_answer(5000))

    assert response.status_code == 200
    reservation, charge = charge_record(app)
    assert reservation["amount"] == 0.00598
    assert charge["tokenCost"] == 0.150045  # what the provider reports billing, kept for reconciliation
    assert (charge["cost"], charge["chargedBy"]) == (round(TOKEN_CHARGE_CAP * 0.00598, 6), "tokens")
    assert response.get_json()["_meta"]["cost"]["actual"] == charge["cost"]
    assert any("charge exceeds reservation" in record.getMessage() for record in caplog.records)


# --- any body: settled with a charge before the client hears back ------------------------------

MALFORMED_USAGE = [
    pytest.param(b'{"created": 1, "data": [{"b64_json": "AA=="}], "usage": {"input_tokens": 9, '
                 b'"output_tokens": 1000000000000000000000000000000000000000}}', id="40-digit-token-count"),
    pytest.param(b'{"created": 1, "data": [{"b64_json": "AA=="}], "usage": {"input_tokens": 9, '
                 b'"output_tokens": "\\ud800"}}', id="lone-surrogate-count"),
    pytest.param(b'{"created": 1, "data": [{"b64_json": "AA=="}], "usage": {"input_tokens": 9, '
                 b'"output_tokens": NaN}}', id="nan-count"),
    pytest.param(b'{"created": 1, "data": [{"b64_json": "AA=="}], "usage": "lots"}', id="not-an-object"),
]


@pytest.mark.parametrize("raw", MALFORMED_USAGE)
def test_malformed_usage_is_charged_the_reservation(client, app, responses_mock, raw):
    response = generate(client, responses_mock, {"model": "gpt-image-1", "quality": "low", "size": "1024x1024"},
                        raw)

    # The images are delivered; what they cost cannot be read from the usage, so the reservation is charged.
    assert response.status_code == 200, response.get_data(as_text=True)
    body = strict_json_loads(response.get_data(as_text=True))
    assert len(body["data"]) == 1
    reservation, charge = charge_record(app)
    assert (charge["status"], charge["chargedBy"], charge["cost"]) == ("succeeded", "reservation",
                                                                       reservation["amount"])
    assert body["_meta"]["cost"]["actual"] == reservation["amount"]
    assert_strict_ledger(app)


def test_a_charge_that_cannot_be_computed_is_settled_at_the_reservation(client, app, responses_mock, monkeypatch):
    def broken_charge(*args):
        raise ArithmeticError("unexpected")
    monkeypatch.setattr(billing, "charge_for", broken_charge)

    response = generate(client, responses_mock, {"model": "dall-e-3"}, {"created": 1, "data": images(1)})

    assert response.status_code == 502
    assert (response.get_json()["code"], response.headers["x-should-retry"]) == ("LLM_PROVIDER_ERROR", "false")
    reservation, charge = charge_record(app)
    assert (charge["status"], charge["cost"], charge["mayHaveBilled"]) == ("gateway_error", reservation["amount"],
                                                                          True)
