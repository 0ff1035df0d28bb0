"""Megapixel pricing (Black Forest Labs' FLUX.2): the formula, the sizes it takes, the catalog entry, the charge."""

import json

import pytest
from conftest import SHIPPED_PRICING

from ziri_images.catalog.charges import charge_for
from ziri_images.catalog.megapixels import MegapixelPrices
from ziri_images.catalog.megapixels import megapixels
from ziri_images.catalog.pricing import ImageModel
from ziri_images.catalog.pricing import PriceBook
from ziri_images.errors import ConfigError
from ziri_images.uploads.imageinfo import ImageInfo

PRO = {"first_mp": 0.03, "mp": 0.015, "multiple_of": 16, "min_edge": 64, "max_pixels": 4194304}


def flux_2_pro():
    return json.loads(SHIPPED_PRICING.read_text())["providers"]["bfl"]["models"]["flux-2-pro"]


@pytest.mark.parametrize("width, height, counted", [
    pytest.param(1000, 1000, 1, id="exactly-1mp"),
    pytest.param(64, 64, 1, id="less-than-1mp-is-the-first"),
    pytest.param(1024, 1024, 2, id="1.05mp-counts-2"),
    pytest.param(1920, 1080, 3, id="2.07mp-counts-3"),
    pytest.param(2048, 2048, 5, id="4.19mp-counts-5"),
])
def test_every_started_megapixel_is_counted(width, height, counted):
    assert megapixels(width, height) == counted


@pytest.mark.parametrize("size, price", [
    pytest.param("1008x992", 0.03, id="within-the-first-mp"),
    pytest.param("1024x1024", 0.045, id="first-and-one-more"),
    pytest.param("1920x1088", 0.06, id="three"),
    pytest.param("2048x2048", 0.09, id="five"),
    pytest.param("1000x1000", None, id="not-multiples-of-16"),
    pytest.param("2064x2048", None, id="over-the-limit"),
    pytest.param("square", None, id="not-wxh"),
])
def test_the_output_price_is_the_first_mp_then_each_further_one(size, price):
    assert MegapixelPrices(PRO, "here").output_price(size) == price


def test_reference_images_add_their_megapixels_at_the_further_mp_price():
    prices = MegapixelPrices(PRO, "here")

    assert prices.input_price([ImageInfo("image/jpeg", 1024, 1024), ImageInfo("image/png", 800, 600)]) == 0.045
    assert prices.input_price([]) == 0


@pytest.mark.parametrize("change, message", [
    pytest.param({"first_mp": -1}, "first_mp: expected a price", id="negative-price"),
    pytest.param({"mp": "0.015"}, "mp: expected a price", id="price-as-text"),
    pytest.param({"multiple_of": 0}, "multiple_of: expected a whole number", id="zero-multiple"),
    pytest.param({"max_pixels": None}, "max_pixels: expected a whole number", id="no-limit"),
    pytest.param({"per_image": 1}, "unknown field(s) per_image", id="unknown-field"),
])
def test_a_broken_megapixel_entry_stops_start_up_naming_the_field(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MegapixelPrices({**PRO, **change}, "pricing.json: bfl.flux-2-pro.megapixel_prices")


@pytest.mark.parametrize("change, message", [
    pytest.param({"prices": {"1024x1024": 0.03}}, "no prices and no size_rule", id="with-a-price-table"),
    pytest.param({"price_dimensions": ["size", "quality"], "default_quality": "auto"}, "priced by size alone",
                 id="another-dimension"),
    pytest.param({"default_size": "1000x1000"}, "default_size '1000x1000': width and height must be multiples",
                 id="default-size-refused"),
    pytest.param({"charged_by": "tokens"}, "charged_by: expected", id="unknown-charger"),
    pytest.param({"max_input_images": 0}, "max_input_images: expected a whole number", id="no-input-images"),
])
def test_a_broken_megapixel_model_stops_start_up(change, message):
    with pytest.raises(ConfigError, match=message):
        ImageModel("bfl", "flux-2-pro", {**flux_2_pro(), **change}, "here")


def test_a_provider_billed_model_is_charged_what_the_provider_reported_else_its_reservation():
    model = ImageModel("bfl", "flux-2-pro", flux_2_pro(), "here")
    quote = PriceBook({"providers": {}}, "here").quote(model, {"size": "1024x1024"}, 2)
    body = {"created": 1, "data": [{"b64_json": "QQ=="}, {"b64_json": "Qg=="}]}

    billed = charge_for(model, quote, body, provider_billed=0.06)
    unknown = charge_for(model, quote, body)
    above = charge_for(model, quote, body, provider_billed=0.5)

    assert (quote.reserved, billed.cost, billed.charged_by, billed.estimated_cost) == (0.09, 0.06, "provider", 0.09)
    assert billed.ledger_fields()["providerBilled"] == 0.06
    assert (unknown.cost, unknown.charged_by, "providerBilled" in unknown.ledger_fields()) == (0.09, "reservation",
                                                                                                False)
    assert above.cost == 0.5  # in full: the provider billed it (Bill.charge logs it)


def test_a_catalog_priced_model_records_but_does_not_charge_what_the_provider_says_it_billed(pricing_path):
    book = PriceBook.from_file(pricing_path)
    model = book.providers["openai"]["dall-e-3"]
    quote = book.quote(model, {"quality": "standard", "size": "1024x1024"}, 1)

    charge = charge_for(model, quote, {"created": 1, "data": [{"url": "u"}]}, provider_billed=9.0)

    assert (charge.cost, charge.charged_by, charge.ledger_fields()["providerBilled"]) == (0.04, "per_image", 9.0)


def test_the_listing_shows_the_largest_square_of_each_megapixel_count():
    rows = list(MegapixelPrices(PRO, "here").rows())

    assert rows == [({"size": "992x992"}, 0.03), ({"size": "1408x1408"}, 0.045), ({"size": "1728x1728"}, 0.06),
                    ({"size": "2000x2000"}, 0.075), ({"size": "2048x2048"}, 0.09)]
