"""A WxH size for a model that takes an aspect ratio and a tier: the nearest ratio, the tier by the long edge."""

import json

import pytest

from ziri_images.catalog.pricing import PriceBook
from ziri_images.catalog.sizes import SizeMapping
from ziri_images.errors import ConfigError

MAPPING = SizeMapping({"aspect_ratio": ["1:1", "2:3", "3:2", "9:16", "16:9", "21:9"],
                       "image_size": {"1K": 1024, "2K": 2048, "4K": 4096}}, "test")


@pytest.mark.parametrize(("size", "expected"), [
    ("1024x1024", {"aspect_ratio": "1:1", "image_size": "1K"}),
    ("1025x1025", {"aspect_ratio": "1:1", "image_size": "2K"}),
    ("1792x1024", {"aspect_ratio": "16:9", "image_size": "2K"}),
    ("1024x1536", {"aspect_ratio": "2:3", "image_size": "2K"}),
    ("2100x900", {"aspect_ratio": "21:9", "image_size": "4K"}),
    ("576x1024", {"aspect_ratio": "9:16", "image_size": "1K"}),
    ("4096x4096", {"aspect_ratio": "1:1", "image_size": "4K"}),
])
def test_a_size_becomes_the_nearest_ratio_and_the_first_tier_that_holds_its_long_edge(size, expected):
    assert MAPPING.translate(size) == (expected, None)


def test_the_nearest_ratio_is_nearest_by_proportion_not_by_difference():
    # 2:1 is as far from 1:1 (log 2) as from 4:1 (log 2): by difference 2.0 would be nearer 1.0 than 4.0.
    mapping = SizeMapping({"aspect_ratio": ["1:1", "4:1"]}, "test")
    assert mapping.translate("1500x1000")[0] == {"aspect_ratio": "1:1"}
    assert mapping.translate("2500x1000")[0] == {"aspect_ratio": "4:1"}


@pytest.mark.parametrize(("size", "reason"), [
    ("4097x100", "an edge is longer than 4096 pixels"),
    ("big", "the size is not 'WxH'"),
])
def test_a_size_the_model_cannot_take_says_why(size, reason):
    assert MAPPING.translate(size) == (None, reason)


@pytest.mark.parametrize("spec", [
    {"image_size": {"1K": 1024}}, {"aspect_ratio": []}, {"aspect_ratio": ["16x9"]},
    {"aspect_ratio": ["1:1"], "image_size": {"2K": 2048, "1K": 1024}}, {"aspect_ratio": ["1:1"], "other": 1},
])
def test_a_malformed_mapping_is_a_config_error(spec):
    with pytest.raises(ConfigError):
        SizeMapping(spec, "test")


def test_a_mapping_to_a_tier_without_a_price_or_a_ratio_the_model_refuses_is_a_config_error(pricing_path):
    document = json.loads(pricing_path.read_text())
    entry = document["providers"]["google"]["models"]["gemini-3.1-flash-image"]
    entry["size_mapping"]["image_size"]["8K"] = 8192
    with pytest.raises(ConfigError, match=r"size_mapping.image_size: tier\(s\) 8K without a price"):
        PriceBook(document, "pricing.json")
    del entry["size_mapping"]["image_size"]["8K"]
    entry["params"]["aspect_ratio"].remove("21:9")
    with pytest.raises(ConfigError, match="every ratio must be one params.aspect_ratio lists"):
        PriceBook(document, "pricing.json")
