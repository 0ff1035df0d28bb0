"""Size rules: arbitrary ``WxH`` sizes priced by pixel-count tier (gpt-image-2), refused when no rule applies."""

import json

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import SHIPPED_PRICING
from conftest import USER_KEY
from conftest import ledger_lines
from responses import matchers

from ziri_images.catalog.pricing import ImageModel
from ziri_images.catalog.sizes import SizeRule
from ziri_images.catalog.sizes import parse_size
from ziri_images.errors import ConfigError

# gpt-image-2's limits, as in the shipped catalog.
GPT_IMAGE_2_RULE = {
    "multiple_of": 16, "max_edge": 3840, "min_pixels": 655360, "max_pixels": 3840 * 2160, "max_aspect_ratio": 3,
    "sizes": ["1024x1536", "1536x1024"], "tiers": ["1024x1024", "2048x768", "2560x1440", "3840x2160"],
}


@pytest.fixture
def rule():
    return SizeRule(GPT_IMAGE_2_RULE, "here")


@pytest.mark.parametrize(
    ("size", "tier", "reason"),
    [
        pytest.param("1024x1024", "1024x1024", None, id="a-tier-itself"),
        pytest.param("1280x720", "1024x1024", None, id="hd-fits-the-smallest-tier"),
        pytest.param("1024x1536", "1024x1536", None, id="listed-portrait-priced-as-itself"),
        pytest.param("1536x1024", "1536x1024", None, id="listed-landscape-priced-as-itself"),
        pytest.param("1248x1248", "2048x768", None, id="unlisted-size-of-the-second-tier"),
        pytest.param("1040x1024", "2048x768", None, id="one-step-over-a-tier"),
        pytest.param("1024x640", "1024x1024", None, id="exactly-the-minimum"),
        pytest.param("512x512", None, "fewer than 655360 pixels", id="below-the-minimum-square"),
        pytest.param("1024x512", None, "fewer than 655360 pixels", id="below-the-minimum-wide"),
        pytest.param("1920x1088", "2560x1440", None, id="full-hd-in-steps-of-16"),
        pytest.param("2048x2048", "3840x2160", None, id="square-2k"),
        pytest.param("3840x2160", "3840x2160", None, id="largest"),
        pytest.param("2160x3840", "3840x2160", None, id="largest-portrait"),
        pytest.param("3840x1280", "3840x2160", None, id="exactly-3-to-1"),
        pytest.param("1000x1000", None, "width and height must be multiples of 16", id="not-multiple-of-16"),
        pytest.param("3856x1024", None, "an edge is longer than 3840 pixels", id="edge-too-long"),
        pytest.param("3840x1264", None, "the aspect ratio is beyond 3:1", id="wider-than-3-to-1"),
        pytest.param("512x1552", None, "the aspect ratio is beyond 3:1", id="taller-than-1-to-3"),
        pytest.param("3840x2176", None, "more than 8294400 pixels", id="too-many-pixels"),
        pytest.param("1024", None, "the size is not 'WxH'", id="not-wxh"),
        pytest.param("01024x1024", None, "the size is not 'WxH'", id="leading-zero"),
        pytest.param("1024X1024", None, "the size is not 'WxH'", id="capital-x"),
        pytest.param("auto", None, "the size is not 'WxH'", id="auto-is-not-a-size"),
    ],
)
def test_tier_for(rule, size, tier, reason):
    assert rule.tier_for(size) == (tier, reason)


def test_the_rule_here_is_the_shipped_one():
    shipped = json.loads(SHIPPED_PRICING.read_text(encoding="utf-8"))["providers"]["openai"]["models"]["gpt-image-2"]

    assert shipped["size_rule"] == GPT_IMAGE_2_RULE


@pytest.mark.parametrize(
    ("sizes", "problem"),
    [
        pytest.param(["1000x1000"], "here.sizes: 1000x1000: width and height must be multiples of 16",
                     id="breaks-a-limit"),
        pytest.param(["1024x1024"], "here.sizes: 1024x1024 is also a tier", id="a-tier"),
        pytest.param(["3840x2160"], "here.sizes: 3840x2160 is also a tier", id="the-largest-tier"),
        pytest.param(["2160x3840", "1024"], "here.sizes: expected a list of 'WxH' sizes", id="not-wxh"),
        pytest.param("1024x1536", "here.sizes: expected a list of 'WxH' sizes", id="not-a-list"),
    ],
)
def test_listed_sizes_are_checked(sizes, problem):
    with pytest.raises(ConfigError) as raised:
        SizeRule({**GPT_IMAGE_2_RULE, "sizes": sizes}, "here")

    assert str(raised.value).startswith(problem)


def test_a_listed_size_beyond_every_tier_is_refused():
    with pytest.raises(ConfigError, match="here.sizes: 1536x1024 has more pixels than the largest tier"):
        SizeRule({"sizes": ["1536x1024"], "tiers": ["1024x1024"]}, "here")


def test_minimum_pixels_and_a_size_beyond_every_tier():
    rule = SizeRule({"min_pixels": 512 * 512, "tiers": ["1024x1024"]}, "here")

    assert rule.tier_for("256x256") == (None, "fewer than 262144 pixels")
    assert rule.tier_for("512x512") == ("1024x1024", None)
    assert rule.tier_for("1040x1040") == (None, "more pixels than the largest tier (1024x1024)")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("1536x1024", (1536, 1024), id="size"),
        pytest.param("16x16", (16, 16), id="small"),
        pytest.param("0x16", None, id="zero"),
        pytest.param(" 16x16", None, id="space"),
        pytest.param(None, None, id="none"),
        pytest.param(1024, None, id="number"),
    ],
)
def test_parse_size(text, parsed):
    assert parse_size(text) == parsed


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param([], "here: expected an object", id="not-an-object"),
        pytest.param({**GPT_IMAGE_2_RULE, "tiers": []}, "here.tiers: expected a list of 'WxH' sizes", id="no-tiers"),
        pytest.param({**GPT_IMAGE_2_RULE, "tiers": ["1k", "2k"]}, "here.tiers: expected a list of 'WxH'",
                     id="tiers-not-sizes"),
        pytest.param({**GPT_IMAGE_2_RULE, "tiers": ["1536x1024", "1024x1024"]},
                     "here.tiers: each tier must have more pixels than the one before it", id="tiers-not-ascending"),
        pytest.param({**GPT_IMAGE_2_RULE, "tiers": ["1536x1024", "1024x1536"]},
                     "here.tiers: each tier must have more pixels", id="tiers-with-equal-pixels"),
        pytest.param({**GPT_IMAGE_2_RULE, "multiple_of": 0}, "here.multiple_of: expected a whole number >= 1",
                     id="multiple-of-zero"),
        pytest.param({**GPT_IMAGE_2_RULE, "max_edge": "3840"}, "here.max_edge: expected a whole number >= 1",
                     id="max-edge-string"),
        pytest.param({**GPT_IMAGE_2_RULE, "max_pixels": True}, "here.max_pixels: expected a whole number >= 1",
                     id="max-pixels-bool"),
        pytest.param({**GPT_IMAGE_2_RULE, "max_aspect_ratio": 0.5}, "here.max_aspect_ratio: expected a number >= 1",
                     id="ratio-below-one"),
        pytest.param({**GPT_IMAGE_2_RULE, "max_ratio": 3}, "here: unknown field(s) max_ratio", id="unknown-field"),
    ],
)
def test_invalid_rule_names_the_field(spec, problem):
    with pytest.raises(ConfigError) as raised:
        SizeRule(spec, "here")

    assert str(raised.value).startswith(problem)


def gpt_image_2_like(**changes):
    entry = {
        "kind": "image", "max_images": 10, "max_prompt_chars": 100, "default_quality": "low",
        "default_size": "1024x1024", "size_rule": GPT_IMAGE_2_RULE,
        "prices": {"low": {"1024x1024": 0.01, "1024x1536": 0.015, "1536x1024": 0.015, "2048x768": 0.02,
                           "2560x1440": 0.03, "3840x2160": 0.04}},
    }
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param({"prices": {"low": {"1024x1024": 0.01, "1280x720": 0.02}}},
                     "here: 1280x720: not a tier or size of size_rule", id="price-for-a-size-that-is-no-tier"),
        pytest.param({"price_dimensions": ["quality"], "prices": {"low": 0.01}},
                     "here.size_rule: 'size' is not one of the price_dimensions", id="rule-without-size-dimension"),
        pytest.param({"default_size": "1000x1000"}, "here: default_size '1000x1000' has no price",
                     id="default-size-breaks-the-rule"),
        pytest.param({"prices": {"low": {"1024x1024": 0.01, "1536x1024": 0.015, "2048x768": 0.02}}},
                     "here: 1024x1536: a size of size_rule without a figure in every row",
                     id="a-listed-size-without-a-price"),
    ],
)
def test_catalog_entry_with_a_rule_is_checked(changes, problem):
    with pytest.raises(ConfigError) as raised:
        ImageModel("openai", "gpt-image-2", gpt_image_2_like(**changes), "here")

    assert str(raised.value).startswith(problem)


def test_a_default_size_inside_a_tier_is_priced():
    image_model = ImageModel("openai", "gpt-image-2", gpt_image_2_like(default_size="1280x720"), "here")

    assert image_model.price_per_image("low", "1280x720") == 0.01


# --- through the endpoint, with the shipped gpt-image-2 entry -------------------------------

def generate(client, model="gpt-image-2", **fields):
    body = {"provider": "openai", "model": model, "prompt": "a lighthouse", **fields}
    return client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY})


@pytest.mark.parametrize(
    ("quality", "size", "reserved_per_image"),
    [
        pytest.param("low", "1280x720", 0.00588, id="low-hd"),
        pytest.param("high", "1536x1024", 0.16464, id="high-standard-landscape-at-its-published-tokens"),
        pytest.param("medium", "1024x1536", 0.04116, id="medium-standard-portrait-at-its-published-tokens"),
        pytest.param("medium", "1536x864", 0.06174, id="medium-wide"),
        pytest.param("high", "2160x3840", 0.71157, id="high-4k-portrait"),
        pytest.param("auto", "auto", 0.71157, id="auto-reserves-the-dearest-tier"),
    ],
)
def test_arbitrary_size_is_sent_as_asked_and_reserved_by_its_tier(client, app, responses_mock, quality, size,
                                                                  reserved_per_image):
    responses_mock.post(GENERATIONS_URL, json={"created": 1, "data": [{"b64_json": "AA=="}]}, match=[
        matchers.json_params_matcher({"model": "gpt-image-2", "prompt": "a lighthouse", "n": 1, "quality": quality,
                                      "size": size})])

    response = generate(client, quality=quality, size=size)

    assert response.status_code == 200
    reservation, _charge = ledger_lines(app)
    assert (reservation["quality"], reservation["size"]) == (quality, size)
    assert reservation["pricePerImage"] == reserved_per_image
    # Plus the prompt's text tokens: 12 bytes x $5 per 1M tokens.
    assert reservation["amount"] == round(reserved_per_image + 12 * 5 / 1_000_000, 6)


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        pytest.param("1000x1000", "width and height must be multiples of 16", id="not-multiple-of-16"),
        pytest.param("100x100", "width and height must be multiples of 16", id="tiny"),
        pytest.param("4096x4096", "an edge is longer than 3840 pixels", id="too-large"),
        pytest.param("3840x1248", "the aspect ratio is beyond 3:1", id="too-wide"),
        pytest.param("big", "the size is not 'WxH'", id="not-a-size"),
        pytest.param("huge", "the size is not 'WxH'", id="huge"),
        pytest.param("512x512", "fewer than 655360 pixels", id="below-the-minimum"),
        pytest.param("1024x512", "fewer than 655360 pixels", id="below-the-minimum-wide"),
    ],
)
@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst"])
@pytest.mark.parametrize("path", [ENDPOINT, "/v1/images/generations"])
def test_a_size_that_breaks_the_rule_is_a_size_error_that_says_why(client, app, responses_mock, size, reason,
                                                                   model, path):
    response = post_size(client, path, "openai", model, size)

    assert_size_error(app, responses_mock, response, path, model, size, reason)


def post_size(client, path, provider, model, size):
    body = {"provider": provider, "model": model, "prompt": "a lighthouse", "quality": "high", "size": size}
    return client.post(path, json=body, headers={"X-API-Key": USER_KEY})


def assert_size_error(app, responses_mock, response, path, model, size, reason):
    """Assert an INVALID_SIZE answer in the path's shape, refused before the provider and the ledger."""
    assert response.status_code == 400
    body = response.get_json()
    error = body["error"] if path.startswith("/v1/") else body
    assert error["code"] == "INVALID_SIZE"
    assert (error["error"] if path == ENDPOINT else error["message"]) == (
        f"Size '{size}' is not accepted by model '{model}': {reason}.")
    assert (error["size"], error["reason"]) == (size, f"size {size}: {reason}")
    if path.startswith("/v1/"):
        assert (error["param"], error["type"]) == ("size", "invalid_request_error")
    assert len(responses_mock.calls) == 0
    assert ledger_lines(app) == []


@pytest.mark.parametrize("size", ["huge", "1024", "1024x1024px", "x"])
@pytest.mark.parametrize("path", [ENDPOINT, "/v1/images/generations"])
def test_a_size_that_is_not_wxh_is_a_size_error_for_a_model_without_a_size_rule(client, app, responses_mock, size,
                                                                                 path):
    # azure/gpt-image-1 prices a fixed list of sizes: no size rule, but a size that is not even 'WxH' is malformed.
    response = post_size(client, path, "azure", "gpt-image-1", size)

    assert_size_error(app, responses_mock, response, path, "gpt-image-1", size, "the size is not 'WxH'")


def test_a_well_formed_size_a_model_without_a_rule_does_not_price_is_the_catalogs_gap(client, responses_mock):
    response = post_size(client, ENDPOINT, "azure", "gpt-image-1", "512x512")

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == "IMAGE_CONFIG_NOT_FOUND"


def test_a_size_the_rule_takes_but_no_tier_prices_is_the_catalogs_gap(make_app, pricing_path, responses_mock):
    catalog = json.loads(pricing_path.read_text(encoding="utf-8"))
    entry = catalog["providers"]["openai"]["models"]["gpt-image-2"]
    del entry["size_rule"]["max_pixels"]  # so a size can pass the largest tier within every limit
    pricing_path.write_text(json.dumps(catalog), encoding="utf-8")
    app = make_app()

    response = generate(app.test_client(), quality="high", size="3840x2176")

    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "IMAGE_CONFIG_NOT_FOUND"
    assert body["error"] == "Image pricing not configured for model 'gpt-image-2' (high, 3840x2176)"
    assert body["reason"] == "size 3840x2176: more pixels than the largest tier (3840x2160)"
    assert ledger_lines(app) == []


@pytest.mark.parametrize(("size", "price"), [
    pytest.param("1024x1536", 0.00474, id="listed-size-priced-as-itself"),
    pytest.param("1248x1248", 0.00687, id="other-size-priced-by-its-tier"),
])
def test_reported_size_is_priced_by_the_rule(client, app, responses_mock, size, price):
    # Asked for auto, the provider reports what it made; that size is priced by the same rule.
    responses_mock.post(GENERATIONS_URL, json={"created": 1, "data": [{"b64_json": "AA=="}], "quality": "low",
                                               "size": size})

    cost = generate(client, quality="auto", size="auto").get_json()["_meta"]["cost"]

    assert (cost["quality"], cost["size"], cost["pricePerImage"]) == ("low", size, price)
    assert (cost["chargedBy"], cost["actual"]) == ("per_image", price)
