"""What the providers' own model lists say about the catalog: ``pricing check --online``'s findings."""

from datetime import date

import pytest

from ziri_images.catalog.pricing import PriceBook
from ziri_images.catalog.pricing_check import online_findings
from ziri_images.providers.model_lists import ModelList

TODAY = date(2026, 12, 7)


def image(**extra):
    return {"kind": "image", "source": "https://acme.test/pricing", "as_of": "2026-12-01", "max_images": 1,
            "max_prompt_chars": 1000, "price_dimensions": [], "prices": 0.02, **extra}


BOOK = PriceBook({"providers": {"acme": {"models": {
    "paint-1": image(), "paint-2": image(retired="2026-11-01"), "paint-3": image(retired="2027-01-01"),
    "chat-1": {"kind": "chat"},
}}, "other": {"models": {"draw-1": image()}}}}, "pricing.json")


@pytest.mark.parametrize(("listed", "warnings"), [
    pytest.param({"paint-1": None, "paint-2": None, "paint-3": "2027-01-01"}, [], id="all-served-retirements-known"),
    pytest.param({"paint-3": "2027-01-01"}, [
        "acme/paint-1: not in acme's model list: the provider no longer serves it; set its retired day"],
        id="missing-model-not-retired-warns-retired-one-does-not"),
    pytest.param({"paint-1": "2027-02-01", "paint-3": "2027-01-01"}, [
        "acme/paint-1: acme will shut it down on 2027-02-01; the catalog says nothing: set retired to 2027-02-01"],
        id="shutdown-to-come"),
    pytest.param({"paint-1": None, "paint-3": "2026-12-05"}, [
        "acme/paint-3: acme shut it down on 2026-12-05; the catalog says retired 2027-01-01: set retired to "
        "2026-12-05"], id="shutdown-earlier-than-the-catalog-says"),
])
def test_online_findings_compare_the_catalog_with_the_providers_list(listed, warnings):
    lists = [ModelList("acme", listed), ModelList("other", None, "not asked: OTHER_KEY is not set")]

    found, notes = online_findings(BOOK, lists, TODAY)

    assert found == warnings
    assert notes == ["other: not asked: OTHER_KEY is not set"]
