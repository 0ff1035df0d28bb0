"""The shipped catalog, ``auto`` pricing, quotes and catalog validation."""

import copy
import json
from datetime import date
from datetime import datetime

import pytest
from conftest import SHIPPED_PRICING
from marshmallow import ValidationError

from ziri_images.catalog.pricing import ImageModel
from ziri_images.catalog.pricing import PriceBook
from ziri_images.errors import ApiError
from ziri_images.errors import ConfigError

SIZES_GPT = ("1024x1024", "1024x1536", "1536x1024")


ALL_PROVIDERS = ("openai", "azure", "xai")


@pytest.fixture(scope="module")
def book():
    # The catalog as a compatible endpoint sees it: retired models are still priced there.
    return PriceBook.from_file(str(SHIPPED_PRICING), compatible_providers=ALL_PROVIDERS)


def model(book, name):
    return book.find_model("openai", name)


@pytest.mark.parametrize(
    ("name", "max_images", "prices"),
    [
        pytest.param("dall-e-3", 1, {
            "standard": {"1024x1024": 0.04, "1024x1792": 0.08, "1792x1024": 0.08},
            "hd": {"1024x1024": 0.08, "1024x1792": 0.12, "1792x1024": 0.12},
        }, id="dall-e-3"),
        pytest.param("dall-e-2", 10, {
            "standard": {"256x256": 0.016, "512x512": 0.018, "1024x1024": 0.02},
        }, id="dall-e-2"),
        pytest.param("gpt-image-1", 10, {
            "low": dict(zip(SIZES_GPT, (0.011, 0.016, 0.016), strict=True)),
            "medium": dict(zip(SIZES_GPT, (0.042, 0.063, 0.063), strict=True)),
            "high": dict(zip(SIZES_GPT, (0.167, 0.25, 0.25), strict=True)),
        }, id="gpt-image-1"),
        pytest.param("gpt-image-1-mini", 10, {
            "low": dict(zip(SIZES_GPT, (0.005, 0.006, 0.006), strict=True)),
            "medium": dict(zip(SIZES_GPT, (0.011, 0.015, 0.015), strict=True)),
            "high": dict(zip(SIZES_GPT, (0.036, 0.052, 0.052), strict=True)),
        }, id="gpt-image-1-mini"),
    ],
)
def test_shipped_seed_prices(book, name, max_images, prices):
    image_model = model(book, name)

    assert image_model.prices == prices
    assert image_model.max_images == max_images
    for quality, by_size in prices.items():
        for size, price in by_size.items():
            assert image_model.price_per_image(quality, size) == price


def test_shipped_catalog_defaults_and_image_models(book):
    assert book.currency == "USD"
    assert {(m.provider, m.name) for m in book.image_models()} == {
        ("openai", "dall-e-2"), ("openai", "dall-e-3"), ("openai", "gpt-image-1"), ("openai", "gpt-image-1-mini"),
        ("openai", "gpt-image-2"), ("openai", "gpt-image-2-2026-04-21"), ("openai", "gpt-image-2.5-sunburst"),
        ("openai", "gpt-image-2.5-flare"), ("openai", "gpt-image-2.5-sunburst-2026-09-08"),
        ("openai", "gpt-image-2.5-flare-2026-09-08"), ("openai", "gpt-image-2.6-sunburst"),
        ("openai", "gpt-image-2.6-flare"), ("azure", "dall-e-3"), ("azure", "gpt-image-1"), ("azure", "gpt-image-2"),
        ("xai", "grok-imagine-image"), ("xai", "grok-imagine-image-2.0"), ("xai", "grok-imagine-image-quality"),
        ("xai", "grok-2-image-1212"),
        *(("stability", name) for name in ("stable-image-ultra", "stable-image-core", "sd3.5-large",
                                           "sd3.5-large-turbo", "sd3.5-medium")),
        *(("recraft", name) for name in ("recraftv4_1", "recraftv4_1_pro", "recraftv4_1_utility",
                                         "recraftv4_1_utility_pro", "recraftv4_1_vector")),
        *((provider, name) for provider in ("google", "vertex") for name in (
            "gemini-3-pro-image", "gemini-3.1-flash-image", "gemini-3.1-flash-lite-image",
            "gemini-3-pro-image-preview", "gemini-2.5-flash-image")),
        *(("bfl", name) for name in ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b", "flux-2-klein-9b",
                                     "flux-kontext-pro", "flux-kontext-max", "flux-pro-1.1", "flux-pro-1.1-ultra"))}
    dalle3_model, gpt = model(book, "dall-e-3"), model(book, "gpt-image-1")
    assert (dalle3_model.default_quality, dalle3_model.default_size) == ("standard", "1024x1024")
    assert (gpt.default_quality, gpt.default_size) == ("auto", "1024x1024")
    assert model(book, "dall-e-2").max_prompt_chars == 1000
    assert model(book, "dall-e-3").max_prompt_chars == 4000
    assert model(book, "gpt-image-1").max_prompt_chars == 32000


def test_every_image_model_cites_its_source_and_date(book):
    for image_model in book.image_models():
        assert image_model.source and image_model.source.startswith("https://"), image_model.name
        assert date.fromisoformat(image_model.as_of) <= date(2026, 12, 31), image_model.name


@pytest.mark.parametrize(
    ("name", "quality", "size", "price"),
    [
        pytest.param("gpt-image-1", "auto", "1024x1024", 0.167, id="auto-quality-square"),
        pytest.param("gpt-image-1", "auto", "1536x1024", 0.25, id="auto-quality-landscape"),
        pytest.param("gpt-image-1", "low", "auto", 0.016, id="auto-size-low"),
        pytest.param("gpt-image-1", "auto", "auto", 0.25, id="auto-both"),
        pytest.param("gpt-image-1-mini", "auto", "auto", 0.052, id="mini-auto-both"),
        pytest.param("gpt-image-1", "auto", "256x256", None, id="auto-quality-unpriced-size"),
        pytest.param("gpt-image-1", "ultra", "1024x1024", None, id="unknown-quality"),
        pytest.param("dall-e-3", "auto", "1024x1024", None, id="dall-e-3-has-no-auto-quality"),
        pytest.param("dall-e-3", "standard", "auto", None, id="dall-e-3-has-no-auto-size"),
        pytest.param("dall-e-3", "hd", "256x256", None, id="unpriced-combination"),
    ],
)
def test_price_per_image(book, name, quality, size, price):
    assert model(book, name).price_per_image(quality, size) == price


def test_quote_reserves_the_highest_price(book):
    quote = book.quote(model(book, "gpt-image-1"), {"quality": "auto", "size": "1024x1024"}, 3)

    assert (quote.quality, quote.size, quote.images, quote.currency) == ("auto", "1024x1024", 3, "USD")
    assert quote.price_per_image == 0.167
    assert quote.estimated == 0.501
    assert quote.reserved == 0.501  # no prompt: nothing more to reserve


def test_quote_refuses_unpriced_combination(book):
    with pytest.raises(ApiError) as raised:
        book.quote(model(book, "dall-e-3"), {"quality": "hd", "size": "256x256"}, 1)

    assert raised.value.code == "IMAGE_CONFIG_NOT_FOUND"
    assert raised.value.message == "Image pricing not configured for model 'dall-e-3' (hd, 256x256)"
    assert raised.value.details == {"provider": "openai", "model": "dall-e-3", "quality": "hd", "size": "256x256"}


@pytest.mark.parametrize(
    ("provider", "name", "status", "code"),
    [
        pytest.param("midjourney", "v7", 404, "PROVIDER_NOT_FOUND", id="unknown-provider"),
        pytest.param("openai", "text-embedding-3-small", 400, "ACTION_NOT_SUPPORTED", id="embedding-model"),
        pytest.param("openai", "whisper-1", 400, "ACTION_NOT_SUPPORTED", id="audio-model"),
        pytest.param("openai", "dall-e-4", 400, "IMAGE_CONFIG_NOT_FOUND", id="unknown-model"),
    ],
)
def test_find_model_refuses(book, provider, name, status, code):
    with pytest.raises(ApiError) as raised:
        book.find_model(provider, name)

    assert (raised.value.status, raised.value.code) == (status, code)


def test_number_parameters_accept_numbers_within_bounds(tmp_path):
    document = with_change(edit_dalle3(params={"strength": {"type": "number", "min": 0, "max": 1}}))
    path = tmp_path / "pricing.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    schema = model(PriceBook.from_file(path, compatible_providers=ALL_PROVIDERS), "dall-e-3").params_schema

    assert schema.load({"strength": 0.5}) == {"strength": 0.5}
    for bad in (1.5, float("nan")):
        with pytest.raises(ValidationError):
            schema.load({"strength": bad})


def test_params_schema_follows_the_catalog(book):
    gpt = model(book, "gpt-image-1")

    assert gpt.params_schema.load({"output_compression": 80, "background": "transparent"}) == {
        "output_compression": 80, "background": "transparent"}
    for bad in ({"output_compression": 101}, {"output_compression": "80"}, {"background": "blue"}):
        with pytest.raises(ValidationError) as raised:
            gpt.params_schema.load(bad)
        assert list(raised.value.messages) == list(bad)


def shipped():
    return json.loads(SHIPPED_PRICING.read_text(encoding="utf-8"))


def with_change(change):
    document = shipped()
    change(document)
    return document


def dalle3(document):
    return document["providers"]["openai"]["models"]["dall-e-3"]


def edit_dalle3(**values):
    def change(document):
        entry = dalle3(document)
        for name, value in values.items():
            if value is None:
                del entry[name]
            else:
                entry[name] = value
    return change


DALLE3 = "providers.openai.models.dall-e-3"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param([], "expected an object with a 'providers' object", id="top-level-list"),
        pytest.param({"currency": "USD"}, "expected an object with a 'providers' object", id="no-providers"),
        pytest.param({"providers": {"openai": {}}}, "providers.openai: expected a 'models' object",
                     id="provider-without-models"),
        pytest.param(with_change(edit_dalle3(kind="picture")), f"{DALLE3}.kind: expected one of", id="bad-kind"),
        pytest.param(with_change(edit_dalle3(max_images=None)), f"{DALLE3}: missing or invalid 'max_images'",
                     id="missing-max-images"),
        pytest.param(with_change(edit_dalle3(max_prompt_chars="many")), f"{DALLE3}: missing or invalid",
                     id="non-numeric-max-prompt"),
        pytest.param(with_change(edit_dalle3(prices={})), f"{DALLE3}.prices: expected", id="empty-prices"),
        pytest.param(with_change(edit_dalle3(prices={"standard": {}})), f"{DALLE3}.prices.standard: expected",
                     id="empty-quality"),
        pytest.param(with_change(edit_dalle3(prices={"standard": {"1024x1024": -0.04}})),
                     f"{DALLE3}.prices.standard.1024x1024: price must be a number >= 0", id="negative-price"),
        pytest.param(with_change(edit_dalle3(prices={"standard": {"1024x1024": "0.04"}})),
                     f"{DALLE3}.prices.standard.1024x1024: price must be a number >= 0", id="string-price"),
        pytest.param(with_change(edit_dalle3(prices={"standard": {"1024x1024": True}})),
                     f"{DALLE3}.prices.standard.1024x1024: price must be a number >= 0", id="boolean-price"),
        pytest.param(with_change(edit_dalle3(default_size="2048x2048")),
                     f"{DALLE3}: default_size '2048x2048' has no price", id="unpriced-default-size"),
        pytest.param(with_change(edit_dalle3(default_quality="auto")),
                     f"{DALLE3}: default_quality 'auto' has no price", id="auto-default-without-auto"),
        pytest.param(with_change(edit_dalle3(params={"style": 3})), f"{DALLE3}.params.style: expected",
                     id="bad-param-spec"),
        pytest.param(with_change(edit_dalle3(params=["style"])), f"{DALLE3}.params: expected an object",
                     id="params-not-an-object"),
        pytest.param(with_change(edit_dalle3(params={"strength": {"type": "number", "max": "high"}})),
                     f"{DALLE3}.params.strength.max: expected a number", id="param-bound-not-a-number"),
        pytest.param(with_change(edit_dalle3(default_quality=None)), f"{DALLE3}: missing or invalid 'default_quality'",
                     id="missing-default-of-a-dimension"),
        pytest.param(with_change(edit_dalle3(price_dimensions="quality")),
                     f"{DALLE3}.price_dimensions: expected a list", id="dimensions-not-a-list"),
        pytest.param(with_change(edit_dalle3(price_dimensions=["quality", "quality"])),
                     f"{DALLE3}.price_dimensions: expected a list of distinct", id="duplicate-dimension"),
        pytest.param(with_change(edit_dalle3(price_dimensions=["user"], default_user="x", prices={"x": 1})),
                     f"{DALLE3}.price_dimensions: user cannot be a price dimension", id="reserved-dimension-name"),
        pytest.param(with_change(edit_dalle3(price_dimensions=[], prices=-1)),
                     f"{DALLE3}.prices: price must be a number >= 0", id="negative-flat-price"),
        pytest.param(with_change(edit_dalle3(price_dimensions=["size"], prices={"standard": {"1024x1024": 1}})),
                     f"{DALLE3}.prices.standard: price must be a number >= 0", id="table-deeper-than-dimensions"),
        pytest.param(with_change(edit_dalle3(auto=["style"])), f"{DALLE3}.auto: only price dimensions",
                     id="auto-not-a-dimension"),
        pytest.param(with_change(edit_dalle3(params={"size": "string"})),
                     f"{DALLE3}.params: size is a price dimension, not a parameter", id="param-is-a-dimension"),
        pytest.param(with_change(edit_dalle3(token_prices={"text_input": 5, "image_input": 10})),
                     f"{DALLE3}.token_prices.image_output: price per 1M tokens must be a number >= 0",
                     id="token-prices-without-image-output"),
        pytest.param(with_change(edit_dalle3(token_prices={"text_input": 5, "image_input": 1, "image_output": 2,
                                                           "audio_output": 3})),
                     f"{DALLE3}.token_prices: unknown field(s) audio_output", id="token-prices-unknown-kind"),
        pytest.param(with_change(edit_dalle3(output_tokens_per_image={"standard": {"1024x1024": 1}})),
                     f"{DALLE3}.output_tokens_per_image: needs token_prices", id="output-tokens-without-token-prices"),
        pytest.param(with_change(edit_dalle3(token_prices={"text_input": 5, "image_input": 1, "image_output": 2},
                                             output_tokens_per_image={"standard": {"1024x1024": 1.5}})),
                     f"{DALLE3}.output_tokens_per_image.standard.1024x1024: expected a whole number of tokens",
                     id="fractional-output-tokens"),
        pytest.param(with_change(lambda d: d["providers"]["openai"].update(image_model_suggestion="gpt-4o")),
                     "providers.openai.image_model_suggestion: 'gpt-4o' is not an image model", id="bad-suggestion"),
    ],
)
def test_invalid_catalog_names_the_file_and_the_entry(tmp_path, document, problem):
    path = tmp_path / "pricing.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        PriceBook.from_file(str(path))

    message = str(raised.value)
    assert message.startswith(f"pricing file {path}")
    assert problem in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(None, "not found", id="missing-file"),
        pytest.param('{"providers": ', "Expecting value", id="bad-json"),
    ],
)
def test_unreadable_catalog_names_the_file(tmp_path, content, problem):
    path = tmp_path / "pricing.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError, match=problem) as raised:
        PriceBook.from_file(str(path))

    assert str(raised.value).startswith(f"pricing file {path}: ")


def test_quote_of_a_token_priced_model_reserves_its_prompt_and_output_tokens(book):
    gpt = model(book, "gpt-image-1")

    # medium 1024x1024 lists $0.042 but its 1056 output tokens bill 1056 x $40/1M = $0.04224;
    # the 9-byte prompt can use at most 9 text tokens: 9 x $5/1M = $0.000045.
    quote = book.quote(gpt, {"quality": "medium", "size": "1024x1024"}, 2, "a red fox")

    assert (quote.price_per_image, quote.reserve_per_image) == (0.042, 0.04224)
    assert quote.estimated == 0.084
    assert quote.reserved == 0.084525  # 2 x 0.04224 + 0.000045
    # A multi-byte character can be several tokens: the bound counts UTF-8 bytes, not characters.
    assert book.quote(gpt, {"quality": "medium", "size": "1024x1024"}, 1, "\u732b").reserved == 0.042255


BY_RESOLUTION = {"price_dimensions": ["resolution"], "default_resolution": "1k", "prices": {"1k": 0.02, "2k": 0.05}}


@pytest.mark.parametrize(
    ("entry", "choices", "price"),
    [
        pytest.param({"price_dimensions": [], "prices": 0.07}, {}, 0.07, id="flat-price"),
        pytest.param(BY_RESOLUTION, {"resolution": "2k"}, 0.05, id="priced-by-resolution"),
        pytest.param(BY_RESOLUTION, {"resolution": "4k"}, None, id="unpriced-resolution"),
        pytest.param({"price_dimensions": ["resolution"], "default_resolution": "1k", "auto": ["resolution"],
                      "prices": {"1k": 0.02, "2k": 0.05}}, {"resolution": "auto"}, 0.05, id="auto-resolution"),
    ],
)
def test_price_dimensions_other_than_quality_and_size(entry, choices, price):
    image_model = ImageModel("xai", "grok-test", {"kind": "image", "max_images": 10, "max_prompt_chars": 100,
                                                  **entry}, "here")

    assert image_model.price_for(choices) == price
    assert image_model.param_names == ()


def test_image_model_accepts_auto_default_only_where_listed():
    entry = copy.deepcopy(dalle3(shipped()))
    entry.update(default_quality="auto", auto=["quality"])

    assert ImageModel("openai", "dall-e-3", entry, "here").price_per_image("auto", "1024x1792") == 0.12


# --- retirement and entries based on another ------------------------------------------------

def clock_at(day):
    return lambda: datetime.fromisoformat(f"{day}T12:00:00+00:00")


@pytest.mark.parametrize(
    ("provider", "name", "retired_on", "suggestion"),
    [
        pytest.param("openai", "dall-e-3", "2026-05-12", "gpt-image-2.6-flare", id="openai-dall-e-3"),
        pytest.param("openai", "gpt-image-1", "2026-10-23", "gpt-image-2.6-flare", id="openai-gpt-image-1"),
        pytest.param("openai", "gpt-image-1-mini", "2026-12-01", "gpt-image-2.6-flare", id="openai-gpt-image-1-mini"),
        pytest.param("azure", "dall-e-3", "2026-02-18", "gpt-image-2", id="azure-dall-e-3"),
    ],
)
def test_a_retired_model_is_refused_with_a_current_suggestion(provider, name, retired_on, suggestion):
    shipped = PriceBook.from_file(str(SHIPPED_PRICING), clock=clock_at("2026-12-02"))

    with pytest.raises(ApiError) as raised:
        shipped.find_model(provider, name)

    error = raised.value
    assert (error.status, error.code) == (410, "MODEL_RETIRED")
    assert error.message == f"Model '{name}' was retired by {provider} on {retired_on}. Use {suggestion} instead."
    assert error.details == {"provider": provider, "model": name, "retiredOn": retired_on, "suggestedModel": suggestion}
    assert isinstance(shipped.find_model(provider, suggestion), ImageModel)


@pytest.mark.parametrize(
    ("day", "compatible", "served"),
    [
        pytest.param("2026-11-30", (), True, id="the-day-before"),
        pytest.param("2026-12-01", (), False, id="the-day-itself"),
        pytest.param("2026-12-01", ("openai",), True, id="at-a-compatible-endpoint"),
    ],
)
def test_retirement_applies_from_its_day_to_the_providers_own_api(day, compatible, served):
    shipped = PriceBook.from_file(str(SHIPPED_PRICING), clock=clock_at(day), compatible_providers=compatible)

    if served:
        assert shipped.find_model("openai", "gpt-image-1-mini").name == "gpt-image-1-mini"
    else:
        with pytest.raises(ApiError, match="MODEL_RETIRED|retired"):
            shipped.find_model("openai", "gpt-image-1-mini")


def test_a_month_alone_retires_from_its_first_day():
    document = with_change(edit_dalle3(retired="2026-05"))
    for day, retired in (("2026-04-30", False), ("2026-05-01", True)):
        image_model = model(PriceBook(document, "p", compatible_providers=ALL_PROVIDERS), "dall-e-3")
        assert image_model.is_retired(day) is retired


@pytest.mark.parametrize("value", ["May 2026", "2026-13-01", "2026-05-12T00:00:00Z", 20260512])
def test_retired_must_be_a_date(value):
    with pytest.raises(ConfigError, match=r"models\.dall-e-3\.retired: expected 'YYYY-MM-DD'"):
        PriceBook(with_change(edit_dalle3(retired=value)), "p")


def test_snapshots_and_variants_reuse_the_entry_they_are_based_on(book):
    base = model(book, "gpt-image-2")
    for name in ("gpt-image-2-2026-04-21", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare-2026-09-08",
                 "gpt-image-2.6-sunburst", "gpt-image-2.6-flare"):
        variant = model(book, name)
        assert (variant.prices, variant.token_prices.prices, variant.param_names) == (
            base.prices, base.token_prices.prices, base.param_names), name
        assert variant.rules["size"].tiers == base.rules["size"].tiers
        assert variant.source != base.source and variant.as_of and variant.retired is None, name


def add_openai_models(models):
    def change(document):
        document["providers"]["openai"]["models"].update(models)
    return change


def test_own_fields_win_over_the_base_and_provenance_is_not_inherited():
    document = with_change(add_openai_models(
        {"gpt-image-2-copy": {"kind": "image", "based_on": "gpt-image-2", "max_images": 2}}))
    copy = model(PriceBook(document, "p"), "gpt-image-2-copy")

    assert (copy.max_images, copy.source, copy.as_of) == (2, None, None)


@pytest.mark.parametrize(
    ("based_on", "extra"),
    [
        pytest.param("dall-e-4", {}, id="unknown"),
        pytest.param("gpt-4o", {}, id="not-an-image-model"),
        pytest.param("chained", {"chained": {"kind": "image", "based_on": "gpt-image-2"}}, id="itself-based-on"),
    ],
)
def test_based_on_must_name_an_image_model_of_the_provider(based_on, extra):
    document = with_change(add_openai_models({**extra, "copy": {"kind": "image", "based_on": based_on}}))

    with pytest.raises(ConfigError, match=rf"models\.copy\.based_on: '{based_on}' is not an image model"):
        PriceBook(document, "p")
