"""Bad input fuzzing: thousands of generated requests, never a 5xx, never an unpriced provider call.

hypothesis generates bodies (near-valid ones built from the catalog's names, arbitrary JSON,
raw bytes), API key headers, content types and paths, and bodies from the request schema of
the service's own OpenAPI document. The gateway runs in the Flask test client against a small
fixed catalog written here, with ``responses`` as the providers, so a valid request succeeds.

Whether a request is valid and priced is decided here, independently of the gateway's code,
from the catalog's JSON and the documented contract (``expected_payload``). Every answer must
then be: below 500, JSON, and for an error carry ``code`` and ``requestId``; a 200 only for a
request this file calls valid, after exactly one provider call carrying exactly the priced
payload; any other answer after no provider call and no ledger record at all. And a valid
request must get its 200.

The runs are derandomized (the same examples on every machine). In CI (``ZIRI_TEST_ALL=1``)
they send more than 5,000 requests; the README's test command sends a quarter of them, the
same properties over fewer examples, to keep the command within its few minutes.
"""

import json
import math
import re

import pytest
from conftest import DISABLED_KEY
from conftest import USER_KEY
from conftest import key_record
from conftest import run_everything
from conftest import write_keys
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ziri_images import create_app
from ziri_images.schemas.request import END_USER_PATTERN

# A catalog of every shape the format allows: price dimensions with defaults and ``auto``, a
# flat price, enumerated, free-text and integer parameters, a chat model, two providers.
CATALOG = {
    "currency": "USD",
    "providers": {
        "openai": {
            "image_model_suggestion": "dall-e-3",
            "models": {
                "dall-e-3": {
                    "kind": "image", "max_images": 1, "max_prompt_chars": 400,
                    "default_size": "1024x1024", "default_quality": "standard",
                    "params": {"response_format": ["url", "b64_json"], "style": ["vivid", "natural"], "user": "string"},
                    "prices": {"standard": {"1024x1024": 0.04, "1024x1792": 0.08}, "hd": {"1024x1024": 0.08}},
                },
                "dall-e-2": {
                    "kind": "image", "max_images": 10, "max_prompt_chars": 100,
                    "default_size": "1024x1024", "default_quality": "standard",
                    "params": {"response_format": ["url", "b64_json"], "user": "string"},
                    "prices": {"standard": {"256x256": 0.016, "512x512": 0.018, "1024x1024": 0.02}},
                },
                "gpt-image-1": {
                    "kind": "image", "max_images": 4, "max_prompt_chars": 1000,
                    "default_size": "auto", "default_quality": "auto", "auto": ["quality", "size"],
                    "params": {"background": ["transparent", "opaque", "auto"],
                               "output_compression": {"type": "integer", "min": 0, "max": 100}},
                    "prices": {"low": {"1024x1024": 0.011, "1536x1024": 0.016}, "high": {"1024x1024": 0.167}},
                },
                "gpt-4o": {"kind": "chat"},
            },
        },
        "acme": {
            "models": {
                "flat-1": {
                    "kind": "image", "max_images": 2, "max_prompt_chars": 50, "price_dimensions": [],
                    "params": {"seed": {"type": "integer", "min": 0, "max": 1000}}, "prices": 0.05,
                },
            },
        },
    },
}
PROVIDERS = {
    "providers": {
        "openai": {"type": "openai", "base_url": "https://api.openai.test/v1", "api_key_env": "OPENAI_API_KEY"},
        "acme": {"type": "openai", "base_url": "https://api.acme.test/v1", "api_key_env": "ACME_API_KEY"},
    },
}
UPSTREAMS = {"openai": "https://api.openai.test/v1/images/generations",
             "acme": "https://api.acme.test/v1/images/generations"}
GATEWAY_FIELDS = ("provider", "model", "prompt", "n", "size", "quality", "stream", "partial_images")
DEFAULT_DIMENSIONS = ["quality", "size"]
PATHS = ("/api/images/generations", "/v1/images/generations")
# Client errors a request can get before it is priced; provider errors cannot happen here.
REFUSALS = {
    "API_KEY_REQUIRED", "INVALID_API_KEY_FORMAT", "API_KEY_INVALID", "API_KEY_REVOKED_OR_DISABLED", "INVALID_JSON",
    "INVALID_BODY", "UNSUPPORTED_MEDIA_TYPE", "REQUEST_TOO_LARGE", "MISSING_FIELDS", "VALIDATION_ERROR",
    "STREAMING_NOT_SUPPORTED", "PROVIDER_NOT_FOUND", "ACTION_NOT_SUPPORTED", "IMAGE_CONFIG_NOT_FOUND",
    "PARAMETER_NOT_SUPPORTED", "IMAGE_REQUEST_TOO_LARGE", "PROMPT_TOO_LONG", "INVALID_SIZE",
}
# Examples per test: 2,600 + 1,500 + 1,000 = 5,100 generated requests (plus the explicit examples)
# in CI; a quarter of each in the README's test command.
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])
SHARE = 1 if run_everything() else 4
BODY_EXAMPLES, HEADER_EXAMPLES, SCHEMA_EXAMPLES = 2600 // SHARE, 1500 // SHARE, 1000 // SHARE


# --- the oracle: the contract, read from the catalog ---------------------------------------------

def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value, shortest, longest):
    return isinstance(value, str) and shortest <= len(value) <= longest


def param_ok(spec, value):
    """Return True when ``value`` is acceptable for a catalog parameter ``spec``."""
    if isinstance(spec, list):
        return isinstance(value, str) and value in spec
    if spec == "string":
        return is_text(value, 1, 256)
    return is_int(value) and spec.get("min", -math.inf) <= value <= spec.get("max", math.inf)


def priced(prices, dimensions, choices, auto):
    """Return True when the price table has a price for ``choices`` (``auto`` matches any row)."""
    if not dimensions:
        return True
    dimension, rest = dimensions[0], dimensions[1:]
    value = choices[dimension]
    rows = list(prices.values()) if value == "auto" and dimension in auto else (
        [prices[value]] if value in prices else [])
    return any(priced(row, rest, choices, auto) for row in rows)


def v1_routed(body):
    """Return the body as /v1 routes it (``provider/model``, or the one provider serving the model), or None."""
    model, provider, catalog = body.get("model"), body.get("provider"), CATALOG["providers"]
    if not isinstance(model, str):
        return body if "provider" in body else {**body, "provider": "openai"}
    prefix, _, rest = model.partition("/")
    if rest and prefix in catalog and provider in (None, prefix):
        return {**body, "provider": prefix, "model": rest}
    if "provider" in body:
        return body
    serving = [name for name, entry in catalog.items() if entry["models"].get(model, {}).get("kind") == "image"]
    if "openai" in serving or not serving:
        return {**body, "provider": "openai"}
    return {**body, "provider": serving[0]} if len(serving) == 1 else None


def expected_payload(path, body):
    """Return (provider, payload) the gateway must send for ``body``, or None if it must refuse it."""
    if not isinstance(body, dict):
        return None
    if path.startswith("/v1/"):
        body = v1_routed(body)
        if body is None:
            return None
    if any(body.get(name) is None or body.get(name) == "" for name in ("provider", "model", "prompt")):
        return None
    provider, model, prompt = body["provider"], body["model"], body["prompt"]
    n, stream = body.get("n", 1), body.get("stream", False)
    if not (is_text(provider, 1, 64) and is_text(model, 1, 128) and is_text(prompt, 1, math.inf)):
        return None
    if not (is_int(n) and n >= 1):
        return None
    # partial_images: 0 to 3, or absent (null); without a stream it is not sent.
    if body.get("partial_images") is not None and not (is_int(body["partial_images"])
                                                       and 0 <= body["partial_images"] <= 3):
        return None
    if any(body.get(name) is not None and not is_text(body[name], 1, 32) for name in ("size", "quality")):
        return None
    # The end user is recorded in the ledger: no control characters or line breaks, whichever model.
    if body.get("user") is not None and not (is_text(body["user"], 1, 256)
                                             and re.fullmatch(END_USER_PATTERN, body["user"])):
        return None
    # ``stream`` is a JSON boolean; only false is served (Python compares 0 and 1 equal to them).
    if not (isinstance(stream, (bool, int, float)) and stream in (True, False)) or stream:
        return None
    entry = CATALOG["providers"].get(provider, {}).get("models", {}).get(model)
    if entry is None or entry["kind"] != "image":
        return None
    dimensions = entry.get("price_dimensions", DEFAULT_DIMENSIONS)
    given_fields = {name: value for name, value in body.items()
                    if value is not None and (name in ("size", "quality") or name not in GATEWAY_FIELDS)}
    params = {name: value for name, value in given_fields.items() if name not in dimensions}
    if any(name not in entry.get("params", {}) or not param_ok(entry["params"][name], value)
           for name, value in params.items()):
        return None
    choices = {dimension: given_fields.get(dimension, entry[f"default_{dimension}"]) for dimension in dimensions}
    if not all(is_text(value, 1, 32) for value in choices.values()):
        return None
    if n > entry["max_images"] or len(prompt) > entry["max_prompt_chars"]:
        return None
    if not priced(entry["prices"], dimensions, choices, entry.get("auto", [])):
        return None
    return provider, {"model": model, "prompt": prompt, "n": n, **choices, **params}


def key_is_valid(headers):
    """Return True when the headers carry the active key (X-API-Key first, else a Bearer token)."""
    headers = {name.lower(): value for name, value in headers.items()}  # header names ignore case
    raw = headers.get("x-api-key", "").strip()
    if not raw:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        raw = token.strip() if scheme.lower() == "bearer" else ""
    return raw == USER_KEY


# --- the gateway under test -----------------------------------------------------------------------

class FuzzedGateway:
    """The app on the fuzz catalog, with every provider call recorded."""

    def __init__(self, tmp_path, app_config, responses_mock):
        (tmp_path / "fuzz-pricing.json").write_text(json.dumps(CATALOG))
        (tmp_path / "fuzz-providers.json").write_text(json.dumps(PROVIDERS))
        keys_path = tmp_path / "fuzz-keys.json"
        write_keys(keys_path, [key_record(USER_KEY, key_id="key_user", user="alice"),
                               key_record(DISABLED_KEY, key_id="key_disabled", user="mallory", status="disabled")])
        self.app = create_app({
            **app_config, "KEYS_FILE": str(keys_path), "PRICING_FILE": str(tmp_path / "fuzz-pricing.json"),
            "PROVIDERS_FILE": str(tmp_path / "fuzz-providers.json"), "ACME_API_KEY": "acme-test-key",
            "LEDGER_PATH": str(tmp_path / "fuzz-ledger.jsonl"), "LOG_LEVEL": "WARNING",
        })
        self.client = self.app.test_client()
        self.ledger = tmp_path / "fuzz-ledger.jsonl"
        self.calls = []
        self.statuses = {}
        for provider, url in UPSTREAMS.items():
            responses_mock.add_callback("POST", url, callback=self._answer(provider))
        # Some tests may generate no valid request for one of the providers.
        responses_mock.assert_all_requests_are_fired = False

    def _answer(self, provider):
        def answer(request):
            payload = json.loads(request.body)
            self.calls.append((provider, payload))
            data = [{"url": f"https://images.test/{index}.png"} for index in range(payload.get("n", 1))]
            return 200, {"x-request-id": "req_upstream"}, json.dumps({"created": 1, "data": data})
        return answer

    def send(self, path, headers, expected=None, json_content=True, **kwargs):
        """Send one request and check the invariants; ``expected`` is the oracle's (provider, payload).

        ``json_content`` None: the content type is one the oracle does not classify, so refusing
        it as UNSUPPORTED_MEDIA_TYPE is as right as serving it.
        """
        calls, size = len(self.calls), self.ledger.stat().st_size
        response = self.client.post(path, headers=headers, **kwargs)
        status = response.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        text = response.get_data(as_text=True)
        assert status < 500, text
        body = json.loads(text)
        if path.startswith("/v1/") and status != 200:
            body = flat_error(body)
        assert body.get("_meta", body).get("requestId") == response.headers["X-Request-Id"]
        new_calls = self.calls[calls:]
        if status == 200:
            assert expected is not None, f"served an invalid request: {kwargs}"
            assert new_calls == [expected]
            assert body["_meta"]["cost"]["actual"] > 0
            assert self.ledger.stat().st_size > size
        else:
            assert body["code"] in REFUSALS, text
            assert isinstance(body["error"], str) and body["error"]
            assert new_calls == [], f"{body['code']} after a provider call"
            assert self.ledger.stat().st_size == size, f"{body['code']} left a ledger record"
            if not (json_content is None and body["code"] == "UNSUPPORTED_MEDIA_TYPE"):
                assert expected is None, f"refused a valid request with {body['code']}: {kwargs}"
        return response


def flat_error(body):
    """Return OpenAI's error body (/v1) in the flat shape: the checks are the same for both."""
    error = body["error"]
    assert isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error), body
    return {**error, "error": error["message"]}


@pytest.fixture
def gateway(tmp_path, app_config, responses_mock):
    return FuzzedGateway(tmp_path, app_config, responses_mock)


# --- strategies -------------------------------------------------------------------------------------

def catalog_names():
    models, sizes, qualities, params, values = set(), set(), set(), set(), set()
    for provider in CATALOG["providers"].values():
        for name, entry in provider["models"].items():
            models.add(name)
            if entry["kind"] == "image" and isinstance(entry["prices"], dict):  # flat prices have no rows
                qualities.update(entry["prices"])
                sizes.update(size for row in entry["prices"].values() for size in row)
            for param, spec in entry.get("params", {}).items():
                params.add(param)
                values.update(spec if isinstance(spec, list) else ())
    return sorted(models), sorted(sizes | {"auto"}), sorted(qualities | {"auto"}), sorted(params), sorted(values)


MODELS, SIZES, QUALITIES, PARAMS, PARAM_VALUES = catalog_names()
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)


def either(known, weight_known=3):
    """Values from the catalog most of the time, anything JSON otherwise."""
    return st.one_of(*[st.sampled_from(known)] * weight_known, json_values)


PROMPTS = st.one_of(st.text(min_size=1, max_size=30), st.text(max_size=3),
                    st.sampled_from(["x" * 50, "x" * 51, "x" * 100, "x" * 101, "x" * 400, "x" * 401, " ", "\u0000"]),
                    json_values)
FIELDS = {
    "provider": either(["openai", "acme", "azure", "OpenAI", ""]),
    "model": either([*MODELS, "dall-e-9", "", "DALL-E-3"]),
    "prompt": PROMPTS,
    "n": st.one_of(st.integers(min_value=-2, max_value=12), st.sampled_from([1, 1, 2**64, True, False, 1.0, "1"]),
                   json_values),
    "size": either([*SIZES, "256x257", "", None]),
    "quality": either([*QUALITIES, "ultra", "", None]),
    "stream": st.sampled_from([False, False, True, 0, 1, 0.0, "false", None, []]),
}
PARAM_VALUE = st.one_of(st.sampled_from(PARAM_VALUES), st.integers(min_value=-5, max_value=1005),
                        st.text(max_size=5), json_values)


IMAGE_MODELS = [(provider, name, entry) for provider, catalog in CATALOG["providers"].items()
                for name, entry in catalog["models"].items() if entry["kind"] == "image"]


def param_values(spec):
    if isinstance(spec, list):
        return st.sampled_from(spec)
    if spec == "string":
        return st.text(min_size=1, max_size=10)
    return st.integers(min_value=spec["min"], max_value=spec["max"])


def dimension_values(entry, dimension):
    rows = entry["prices"]
    keys = set(rows) if dimension == "quality" else {size for row in rows.values() for size in row}
    return st.sampled_from(sorted(keys | ({"auto"} if dimension in entry.get("auto", ()) else set())))


@st.composite
def priced_bodies(draw):
    """A body for one catalog model, each optional field valid for it, then up to two fields broken."""
    provider, model, entry = draw(st.sampled_from(IMAGE_MODELS))
    body = {"provider": provider, "model": model, "prompt": draw(st.text(min_size=1, max_size=20))}
    if draw(st.booleans()):
        body["n"] = draw(st.integers(min_value=1, max_value=entry["max_images"]))
    for dimension in entry.get("price_dimensions", DEFAULT_DIMENSIONS):
        if draw(st.booleans()):
            body[dimension] = draw(dimension_values(entry, dimension))
    for param, spec in entry.get("params", {}).items():
        if draw(st.booleans()):
            body[param] = draw(param_values(spec))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name = draw(st.sampled_from([*FIELDS, *PARAMS, "api_key", "provider"]))
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(FIELDS.get(name, PARAM_VALUE))
    return body


@st.composite
def generation_bodies(draw):
    """A body assembled from the catalog's names and anything else: wrong in every way, sometimes right."""
    body = {}
    for name, values in FIELDS.items():
        # The required fields are usually there; the optional ones half the time.
        if draw(st.floats(0, 1)) < (0.9 if name in ("provider", "model", "prompt") else 0.4):
            body[name] = draw(values)
    extra = draw(st.dictionaries(st.one_of(st.sampled_from(PARAMS), st.text(max_size=6)), PARAM_VALUE, max_size=3))
    return {**body, **extra}


BODIES = st.one_of(priced_bodies(), generation_bodies(), json_values)


def assert_sent(gateway, path, body):
    # Serialized as Python's json does, NaN and Infinity included: what is not JSON must be refused.
    gateway.send(path, {"X-API-Key": USER_KEY}, expected_payload(path, body), data=json.dumps(body),
                 content_type="application/json")


def test_generation_bodies(gateway):
    @settings(FUZZ, max_examples=BODY_EXAMPLES)
    @given(path=st.sampled_from(PATHS), body=BODIES)
    @example(path=PATHS[0], body={"provider": "acme", "model": "flat-1", "prompt": "a fox", "seed": 7})
    @example(path=PATHS[1], body={"model": "gpt-image-1", "prompt": "a fox", "n": 4, "quality": "auto"})
    @example(path=PATHS[0], body={"provider": "openai", "model": "dall-e-3", "prompt": "x" * 401})
    def fuzz(path, body):
        assert_sent(gateway, path, body)

    fuzz()

    assert sum(gateway.statuses.values()) >= BODY_EXAMPLES
    assert gateway.statuses.get(200, 0) >= BODY_EXAMPLES // 20  # valid requests were generated and served
    assert {provider for provider, _ in gateway.calls} == set(UPSTREAMS)


# --- headers, content types and raw bodies ---------------------------------------------------------

HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60)
VALID_KEY = st.just({"X-API-Key": USER_KEY})
KEY_HEADERS = st.one_of(
    VALID_KEY, VALID_KEY, VALID_KEY,
    st.builds(lambda scheme, pad: {"Authorization": f"{scheme} {pad}{USER_KEY}{pad}"},
              st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", ""]), st.sampled_from(["", " ", "\t"])),
    st.builds(lambda pad: {"X-API-Key": f"{pad}{USER_KEY}{pad}"}, st.sampled_from([" ", "\t", "\xa0"])),
    st.builds(lambda value: {"X-API-Key": value}, HEADER_TEXT),
    st.builds(lambda value: {"Authorization": value}, HEADER_TEXT),
    st.builds(lambda key, other: {"X-API-Key": key, "Authorization": f"Bearer {other}"},
              st.one_of(HEADER_TEXT, st.just(USER_KEY)), st.one_of(HEADER_TEXT, st.just(USER_KEY))),
    st.sampled_from([{}, {"X-API-Key": DISABLED_KEY}, {"X-API-Key": "ziri-nobody-" + "0" * 32},
                     {"X-API-Key": USER_KEY.upper()}, {"X-API-Key": USER_KEY[:-1]}, {"X-API-Key": USER_KEY + "0"},
                     {"X-API-Key": USER_KEY.replace("ziri-", "sk-")}, {"X-Api-Key": USER_KEY}]),
)
# (Content-Type, whether it is JSON); None: leave it to the gateway.
JSON_TYPE = st.just(("application/json", True))
CONTENT_TYPES = st.one_of(
    JSON_TYPE, JSON_TYPE, JSON_TYPE,
    st.sampled_from([
        ("application/json", True), ("application/json; charset=utf-8", True), ("APPLICATION/JSON", True),
        ("application/json;", True), ("application/vnd.api+json", True), ("application/merge-patch+json", True),
        ("text/plain", False), ("text/json", False), ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=xyz", False), ("", False), ("application/jsonx", False),
        ("application/xml", False), ("*/*", False),
    ]),
    st.tuples(HEADER_TEXT, st.none()),
)
UNPARSABLE = object()
RAW_BODIES = st.one_of(
    BODIES.map(lambda body: json.dumps(body).encode()),
    priced_bodies().map(lambda body: json.dumps(body).encode()),
    priced_bodies().map(lambda body: json.dumps(body).encode()),
    priced_bodies().map(lambda body: json.dumps(body).encode("utf-16")),
    BODIES.map(json.dumps).flatmap(lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut].encode())),
    st.binary(max_size=80),
    st.sampled_from([b"", b"null", b"[]", b"{}", b"NaN", b"\xef\xbb\xbf{}", b"{\"prompt\": \"\\ud800\"}"]),
)


def parse(data):
    """Return the JSON value of ``data``, or UNPARSABLE."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return UNPARSABLE


def test_headers_content_types_and_raw_bodies(gateway):
    @settings(FUZZ, max_examples=HEADER_EXAMPLES)
    @given(path=st.sampled_from(PATHS), headers=KEY_HEADERS, content_type=CONTENT_TYPES, data=RAW_BODIES)
    @example(path=PATHS[0], headers={"X-API-Key": USER_KEY}, content_type=("application/json", True),
             data=json.dumps({"provider": "openai", "model": "dall-e-2", "prompt": "x" * 300_000}).encode())
    def fuzz(path, headers, content_type, data):
        mimetype, is_json = content_type
        value = parse(data)
        valid = key_is_valid(headers) and is_json is not False and value is not UNPARSABLE
        kwargs = {"data": data, **({"content_type": mimetype} if mimetype else {})}
        gateway.send(path, headers, expected_payload(path, value) if valid else None, json_content=is_json, **kwargs)

    fuzz()

    assert sum(gateway.statuses.values()) >= HEADER_EXAMPLES
    assert gateway.statuses.get(200, 0) >= HEADER_EXAMPLES // 100
    assert {400, 401, 403, 413, 415} <= set(gateway.statuses)


# --- bodies from the OpenAPI document ---------------------------------------------------------------

# Values the document cannot know (the catalog's names), offered next to what its schema allows.
KNOWN_VALUES = {"provider": ["openai", "acme"], "model": MODELS, "size": SIZES, "quality": QUALITIES}
# A body the schema accepts, without fields of its own, is never refused as malformed.
MALFORMED = {"INVALID_JSON", "INVALID_BODY", "MISSING_FIELDS", "VALIDATION_ERROR", "UNSUPPORTED_MEDIA_TYPE"}


def from_schema(schema, known=()):
    """Return a strategy for values that conform to ``schema`` (the JSON Schema subset the document uses)."""
    kind = schema.get("type")
    if kind == "object":
        properties, required = schema.get("properties", {}), set(schema.get("required", ()))
        fields = {name: from_schema(sub, KNOWN_VALUES.get(name, ())) for name, sub in properties.items()}

        @st.composite
        def objects(draw):
            return {name: draw(values) for name, values in fields.items() if name in required or draw(st.booleans())}
        return objects()
    if kind == "string":
        shortest, longest = schema.get("minLength", 0), schema.get("maxLength", 40)
        values = st.text(min_size=shortest, max_size=min(longest, 40))
        if "pattern" in schema:
            values = st.from_regex(schema["pattern"], fullmatch=True).filter(lambda text: shortest <= len(text)
                                                                                 <= longest)
        fitting = [value for value in known if shortest <= len(value) <= longest]
        if fitting:
            values = st.one_of(st.sampled_from(fitting), st.sampled_from(fitting), values)
    elif kind == "integer":
        lowest = schema.get("minimum", -2**31)
        highest = schema.get("maximum", 2**63)
        values = st.one_of(st.integers(min_value=lowest, max_value=min(lowest + 10, highest)),
                           st.integers(min_value=lowest, max_value=highest))
    elif kind == "boolean":
        values = st.booleans()
    else:
        values = json_values
    return st.one_of(st.none(), values) if schema.get("nullable") else values


def test_bodies_from_the_openapi_document(gateway):
    document = gateway.client.get("/api/openapi.json").get_json()
    operations = []
    for path in PATHS:
        content = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        name = content["schema"]["$ref"].rsplit("/", 1)[1]
        operations.append((path, document["components"]["schemas"][name]))
    assert all(schema.get("additionalProperties", True) for _, schema in operations)  # provider parameters
    extra_fields = st.dictionaries(st.sampled_from(PARAMS), PARAM_VALUE, max_size=2)

    @settings(FUZZ, max_examples=SCHEMA_EXAMPLES)
    @given(operation=st.sampled_from(operations).flatmap(
        lambda operation: st.tuples(st.just(operation[0]), from_schema(operation[1]))), extra=extra_fields)
    def fuzz(operation, extra):
        path, body = operation
        body = {**extra, **body}
        # Serialized as Python's json does: an extra field may hold NaN or Infinity, which must be refused.
        response = gateway.send(path, {"X-API-Key": USER_KEY}, expected_payload(path, body), data=json.dumps(body),
                                content_type="application/json")
        if not extra and response.status_code != 200:
            refusal = response.get_json()
            refusal = flat_error(refusal) if path.startswith("/v1/") else refusal
            assert refusal["code"] not in MALFORMED, refusal

    fuzz()

    assert sum(gateway.statuses.values()) >= SCHEMA_EXAMPLES
    assert gateway.statuses.get(200, 0) >= SCHEMA_EXAMPLES // 50


# --- hostile bodies --------------------------------------------------------------------------------

VALID = {"provider": "openai", "model": "dall-e-2", "prompt": "a fox"}


def raw(body):
    return json.dumps(body).encode()


def nested(depth, opening=b"[", closing=b"]"):
    return opening * depth + closing * depth


@pytest.mark.parametrize(("data", "status", "code"), [
    pytest.param(nested(100_000), 400, "INVALID_JSON", id="array-nested-100000-deep"),
    pytest.param(nested(30_000, b'{"a":', b"}")[:-1] + b"1" + b"}" * 30_000, 400, "INVALID_JSON",
                 id="object-nested-30000-deep"),
    pytest.param(raw(VALID)[:-1] + b', "user": ' + nested(20_000) + b"}", 400, "INVALID_JSON",
                 id="deep-parameter-value"),
    pytest.param(raw(VALID)[:-1] + b', "n": ' + b"1" * 5000 + b"}", 400, "INVALID_JSON", id="5000-digit-integer"),
    pytest.param(raw(VALID)[:-1] + b', "n": NaN}', 400, "INVALID_JSON", id="n-nan"),  # not JSON (RFC 8259)
    pytest.param(raw(VALID)[:-1] + b', "n": 1e400}', 400, "INVALID_JSON", id="n-infinite"),
    pytest.param(raw(VALID)[:-1] + b', "n": 1' + b"0" * 30 + b"}", 400, "IMAGE_REQUEST_TOO_LARGE", id="n-huge"),
    pytest.param(raw({**VALID, "prompt": "x" * 300_000}), 413, "REQUEST_TOO_LARGE", id="body-over-the-limit"),
    pytest.param(b'{"provider": "openai", "model": "gpt-4o", "model": "dall-e-2", "prompt": "a fox"}', 200, None,
                 id="duplicate-key-last-wins"),
    pytest.param(json.dumps(VALID).encode("utf-16"), 200, None, id="utf-16"),
    pytest.param(raw({**VALID, "prompt": "a \\ud800 fox \\u0000"}).replace(b"\\\\", b"\\"), 200, None,
                 id="lone-surrogate-and-nul-in-prompt"),
])
def test_hostile_body(gateway, data, status, code):
    value = parse(data)
    response = gateway.send(PATHS[0], {"X-API-Key": USER_KEY},
                            None if value is UNPARSABLE else expected_payload(PATHS[0], value),
                            data=data, content_type="application/json")

    assert response.status_code == status
    assert response.get_json().get("code") == code
