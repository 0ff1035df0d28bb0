"""POST /v1/images/edits and /api/images/edits: multipart uploads, checked, priced and reserved before the call."""

import io

import pytest
import responses
from conftest import AZURE_ENDPOINT
from conftest import BASE_URL
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from conftest import ledger_lines
from conftest import package_modules_loaded_by
from marshmallow import fields

from uploads.test_imageinfo import jpeg
from uploads.test_imageinfo import webp_vp8x
from ziri_images.catalog.pricing import PriceBook
from ziri_images.catalog.quoting import image_input_tokens
from ziri_images.dev import stub_tokens
from ziri_images.dev.stub import png_bytes
from ziri_images.schemas.request import GenerationRequestSchema
from ziri_images.uploads.form import INTEGER_FIELDS as FORM_INTEGER_FIELDS
from ziri_images.uploads.imageinfo import ImageInfo

EDITS_URL = BASE_URL + "/images/edits"
USAGE = {"input_tokens": 400, "output_tokens": 1056, "total_tokens": 1456,
         "input_tokens_details": {"text_tokens": 10, "image_tokens": 390},
         "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0}}
ANSWER = {"created": 1, "data": [{"b64_json": "aGk="}], "usage": USAGE}


def edit(client, path="/v1/images/edits", files=None, key=USER_KEY, **fields):
    form = {"model": "gpt-image-1", "prompt": "add a hat", **fields}
    for name, items in (files if files is not None else {"image": [png_bytes("a", 64)]}).items():
        form[name] = [(io.BytesIO(data), f"upload{index}.bin") for index, data in enumerate(items)]
    return client.post(path, data=form, content_type="multipart/form-data",
                       headers={"Authorization": f"Bearer {key}"})


def sent_parts(call):
    """Return {field name: [bytes]} of the multipart body the gateway sent upstream."""
    body, boundary = call.request.body, call.request.headers["Content-Type"].split("boundary=")[1].encode()
    parts = {}
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, content = part.partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        parts.setdefault(name, []).append(content[:-2])
    return parts


def test_one_image_is_sent_and_charged_by_usage(app, client, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    image = png_bytes("a", 64)

    response = edit(client, files={"image": [image]}, quality="medium", input_fidelity="high")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == [{"b64_json": "aGk="}]
    call = responses_mock.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    parts = sent_parts(call)
    assert parts["image"] == [image] and parts["prompt"] == [b"add a hat"]
    assert parts["input_fidelity"] == [b"high"] and "provider" not in parts
    assert b"upload0.bin" not in call.request.body  # the client's file name stays here
    reservation, charge = ledger_lines(app)
    assert reservation["endpoint"] == charge["endpoint"] == "edits"
    assert charge["cost"] == 0.046_19  # 10 x $5 + 390 x $10 + 1056 x $40 per 1M tokens
    image_tokens = image_input_tokens(type("Info", (), {"width": 64, "height": 64})(), "high")
    assert reservation["amount"] >= 0.046_19 and image_tokens == 85 + 170 + 6_000
    assert reservation["amount"] >= image_tokens * 10 / 1e6


def test_two_images_and_a_mask(app, client, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    first, second, mask = jpeg(1536, 1024), webp_vp8x(800, 600), png_bytes("m", 64)

    response = edit(client, files={"image[]": [first, second], "mask": [mask]})

    assert response.status_code == 200, response.get_json()
    parts = sent_parts(responses_mock.calls[0])
    assert parts["image[]"] == [first, second] and parts["mask"] == [mask]
    assert b'filename="image.jpeg"' in responses_mock.calls[0].request.body


def test_the_more_and_larger_the_images_the_more_is_reserved(app, client, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    edit(client, files={"image": [png_bytes("a", 16)]})
    edit(client, files={"image[]": [webp_vp8x(4000, 4000)] * 3})
    small, large = [line["amount"] for line in ledger_lines(app) if line["type"] == "reservation"]
    assert large - small == pytest.approx(3 * 10 * image_input_tokens(type("I", (), {"width": 4000, "height": 4000})(),
                                                                      None) / 1e6 - 10 * (85 + 170) / 1e6, abs=1e-6)


@pytest.mark.parametrize("width, height", [(1, 1), (64, 64), (512, 512), (513, 512), (1024, 1536), (1536, 1024),
                                           (2048, 2048), (2049, 100), (4000, 4000), (10_000, 3), (3, 10_000)])
@pytest.mark.parametrize("fidelity", [None, "low", "high"])
def test_the_stub_reports_the_image_tokens_the_gateway_reserves_for(width, height, fidelity):
    # Two statements of OpenAI's count, the stub's and the catalog's: neither may drift from the other.
    gateway = image_input_tokens(ImageInfo("png", width, height), fidelity)
    assert stub_tokens.image_input_tokens(width, height, fidelity) == gateway


def test_the_stub_counts_without_the_gateways_catalog():
    loaded = package_modules_loaded_by("ziri_images.dev.stub")
    assert [name for name in loaded if name.startswith(("ziri_images.catalog", "ziri_images.schemas"))] == []


def test_azures_edit_path(client, responses_mock):
    url = f"{AZURE_ENDPOINT}/openai/deployments/gpt-image-1/images/edits"
    responses_mock.add(responses.POST, url, json=ANSWER)
    response = edit(client, path="/api/images/edits", provider="azure")
    assert response.status_code == 200, response.get_json()
    assert responses_mock.calls[0].request.url.startswith(url + "?api-version=")


@pytest.mark.parametrize("options, status, code, param", [
    pytest.param({"files": {}}, 400, "MISSING_FIELDS", "image", id="no-image"),
    pytest.param({"files": {"image": [b"GIF89a" + b"\x00" * 64]}}, 400, "UNSUPPORTED_IMAGE_FORMAT", "image",
                 id="gif-by-content"),
    pytest.param({"files": {"image": [png_bytes("a")], "mask": [b"not an image"]}}, 400, "UNSUPPORTED_IMAGE_FORMAT",
                 "mask", id="bad-mask"),
    pytest.param({"files": {"image[]": [png_bytes("a")] * 17}}, 413, "TOO_MANY_IMAGES", "image", id="17-images"),
    pytest.param({"files": {"image": [png_bytes("a")], "mask": [png_bytes("a")] * 2}}, 413, "TOO_MANY_IMAGES",
                 "image", id="two-masks"),
    pytest.param({"model": "grok-imagine-image", "provider": "xai"}, 400, "EDITS_NOT_SUPPORTED", "model",
                 id="provider-without-edits"),
    pytest.param({"model": "dall-e-3"}, 400, "EDITS_NOT_SUPPORTED", "model", id="model-without-edits"),
    pytest.param({"prompt": ""}, 400, "MISSING_FIELDS", "prompt", id="no-prompt"),
    pytest.param({"n": "two"}, 400, "VALIDATION_ERROR", "n", id="n-not-a-number"),
])
def test_refused_before_any_call(app, client, options, status, code, param):
    response = edit(client, **options)  # the autouse RequestsMock fails any call upstream
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert ledger_lines(app) == []


@pytest.mark.parametrize("limit, value", [
    pytest.param("EDIT_MAX_FILE_BYTES", 1000, id="per-file"),
    pytest.param("EDIT_MAX_TOTAL_BYTES", 3000, id="total"),
])
def test_byte_limits_answer_413(make_app, limit, value):
    client = make_app(**{limit: value}).test_client()
    response = edit(client, files={"image[]": [png_bytes("a", 64) + b"\x00" * 900] * 3}, path="/api/images/edits",
                    provider="openai")
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] in ("UPLOAD_TOO_LARGE", "REQUEST_TOO_LARGE") and body["requestId"]


def test_an_edit_must_be_multipart(client):
    response = client.post("/v1/images/edits", json={"model": "gpt-image-1", "prompt": "x"},
                           headers={"Authorization": f"Bearer {USER_KEY}"})
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


# --- integer fields: ASCII digits only, on both endpoints ------------------------------------

# Every integer field a request may carry: the gateway's own and the catalog's integer params.
INTEGER_FIELDS = ("n", "partial_images", "output_compression", "seed", "safety_tolerance")
# Each is text a form could carry. "²".isdigit() is true but int() refuses it; int() reads
# Arabic-Indic and full-width digits as numbers. Only ASCII digits are accepted, as in JSON.
NOT_ASCII_INTEGERS = [
    pytest.param("\u00b2", id="superscript-two"),
    pytest.param("\u0661", id="arabic-indic-one"),
    pytest.param("\uff11", id="fullwidth-one"),
    pytest.param("1\u00b2", id="digit-then-superscript"),
    pytest.param("1" * 5000, id="more-digits-than-int-reads"),
]
ENDPOINTS = [
    pytest.param("/api/images/generations", id="api-generations"),
    pytest.param("/v1/images/generations", id="v1-generations"),
    pytest.param("/api/images/edits", id="api-edits"),
    pytest.param("/v1/images/edits", id="v1-edits"),
]


def test_the_table_names_every_integer_field(pricing_path):
    book = PriceBook.from_file(pricing_path)
    schema_fields = GenerationRequestSchema().fields.items()
    params = [field for model in book.image_models() for field in model.params_schema.fields.items()]

    found = {name for name, field in [*schema_fields, *params] if isinstance(field, fields.Integer)}

    assert found == set(INTEGER_FIELDS) == set(FORM_INTEGER_FIELDS)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("value", NOT_ASCII_INTEGERS)
@pytest.mark.parametrize("field", INTEGER_FIELDS)
def test_an_integer_field_in_anything_but_ascii_digits_is_a_validation_error(app, client, path, value, field):
    provider, model = {"seed": ("google", "gemini-3-pro-image"), "safety_tolerance": ("bfl", "flux-2-pro")}.get(
        field, ("openai", "gpt-image-1"))
    if path.endswith("/edits"):
        response = edit(client, path=path, provider=provider, model=model, **{field: value})
    else:
        body = {"provider": provider, "model": model, "prompt": "add a hat", field: value}
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 400, response.get_json()  # the autouse RequestsMock fails any call upstream
    body = response.get_json()
    error = body["error"] if path.startswith("/v1/") else body
    assert (error["code"], list(error["details"])) == ("VALIDATION_ERROR", [field])
    if path.startswith("/v1/"):
        assert error["param"] == field
    assert ledger_lines(app) == []
