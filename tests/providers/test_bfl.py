"""Black Forest Labs: the job submitted, polled at the URL it names, its image fetched, and the charge BFL reports."""

import base64
import io
import json
import logging

import pytest
import responses
from conftest import BFL_KEY
from conftest import BFL_URL
from conftest import ENDPOINT
from conftest import USER_KEY
from conftest import ledger_lines
from conftest import store_records
from responses import matchers
from uploads.test_imageinfo import jpeg

from ziri_images.dev.stub import png_bytes

POLL_URL = "https://api.eu.bfl.test:8443/v1/get_result?id=job_1"
SAMPLE_URL = "https://delivery.bfl.test/results/job_1/sample.jpeg?sig=abc"
IMAGE = png_bytes("flux", 32)


@pytest.fixture(autouse=True)
def quick_polls(app):
    """Poll at once: the backoff's seconds are the production figure, not what these tests are about."""
    app.extensions["ziri_images"].providers["bfl"].poll_seconds = (0.001, 0.002)


def submitted(mock, model="flux-2-pro", cost=4.5, polling_url=POLL_URL, job="job_1", status=200, **answer):
    body = {"id": job, "polling_url": polling_url, "cost": cost, "input_mp": 0, "output_mp": 1.05, **answer}
    if cost is None:
        del body["cost"]
    return mock.add(responses.POST, f"{BFL_URL}/{model}", json=body, status=status)


def polled(mock, *statuses, url=POLL_URL, sample=SAMPLE_URL):
    """Answer the polls with ``statuses`` in turn (the last one Ready with ``sample``, unless given)."""
    calls = []
    for status in statuses:
        body = {"id": "job_1", "status": status}
        if status == "Ready":
            body["result"] = {"sample": sample, "seed": 7}
        calls.append(mock.add(responses.GET, url, json=body, match=[matchers.header_matcher({"x-key": BFL_KEY})]))
    return calls


def generate(client, **fields):
    body = {"provider": "bfl", "model": "flux-2-pro", "prompt": "a red fox", "size": "1024x1024", **fields}
    return client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY})


def charge_record(app):
    (charge,) = [line for line in ledger_lines(app) if line["type"] == "charge"]
    return charge


def reserved(app):
    (reservation,) = [line for line in ledger_lines(app) if line["type"] == "reservation"]
    return reservation["amount"]


def test_a_job_is_submitted_polled_fetched_and_charged_what_bfl_billed(app, client, responses_mock):
    submit = submitted(responses_mock, cost=3)
    polled(responses_mock, "Ready")
    fetch = responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE, content_type="image/jpeg")

    response = generate(client, seed=42, output_format="png", safety_tolerance=2)

    assert response.status_code == 200, response.get_json()
    sent = submit.calls[0].request
    assert sent.headers["x-key"] == BFL_KEY and sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {"prompt": "a red fox", "width": 1024, "height": 1024, "seed": 42,
                                     "output_format": "png", "safety_tolerance": 2}
    assert "x-key" not in fetch.calls[0].request.headers  # the signed URL never gets the key
    answer = response.get_json()
    assert answer["data"] == [{"b64_json": base64.b64encode(IMAGE).decode()}] and "usage" not in answer
    cost = answer["_meta"]["cost"]
    # 1024x1024 is 1.05 MP: reserved as 2 started MP (3 + 1.5 cents); BFL reported 3 credits.
    assert (cost["reserved"], cost["actual"], cost["chargedBy"], cost["providerBilled"]) == (0.045, 0.03, "provider",
                                                                                             0.03)
    assert answer["_meta"]["providerRequestId"] == "job_1"
    record = charge_record(app)
    assert (record["cost"], record["providerBilled"], record["estimatedCost"], record["chargedBy"]) == (
        0.03, 0.03, 0.045, "provider")


@pytest.mark.stores()
def test_a_provider_bill_is_kept_by_every_store(app, client, responses_mock):
    submitted(responses_mock, cost=3)
    polled(responses_mock, "Content Moderated")

    assert generate(client).status_code == 400
    response = generate_after_success(client, responses_mock)

    assert response.status_code == 200
    charges = [record for record in store_records(app) if record["type"] == "charge"]
    assert [(c["status"], c["cost"], c["chargedBy"], c.get("providerBilled")) for c in charges] == [
        ("provider_error", 0.03, "provider", 0.03), ("succeeded", 0.03, "provider", 0.03)]


def generate_after_success(client, mock):
    mock.replace(responses.GET, POLL_URL, json={"id": "job_1", "status": "Ready", "result": {"sample": SAMPLE_URL}})
    mock.add(responses.GET, SAMPLE_URL, body=IMAGE)
    return generate(client)


def test_a_job_that_needs_several_polls_is_polled_until_ready(app, client, responses_mock):
    submitted(responses_mock)
    pending = polled(responses_mock, "Pending")[0]
    responses_mock.add(responses.GET, POLL_URL, json={"status": "Pending"})
    responses_mock.add(responses.GET, POLL_URL, status=503, body="busy")  # a poll that fails is tried again
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    response = generate(client)

    assert response.status_code == 200, response.get_json()
    assert len(pending.calls) == 1 and len(responses_mock.calls) == 6  # submit, 4 polls, fetch
    assert response.get_json()["_meta"]["cost"]["actual"] == 0.045


def test_the_polling_url_on_another_host_and_port_is_polled_with_the_key(app, client, responses_mock):
    other = "https://api.us1.bfl.test:9443/results/get_result?id=job_1"
    submitted(responses_mock, polling_url=other)
    (poll,) = polled(responses_mock, "Ready", url=other)
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    assert generate(client).status_code == 200
    assert poll.calls[0].request.headers["x-key"] == BFL_KEY


@pytest.mark.parametrize("polling_url", [
    pytest.param("http://collector.example.com/get_result?id=job_1", id="plain-http-elsewhere"),
    pytest.param("ftp://api.bfl.test/get_result", id="not-http"),
])
def test_the_key_never_goes_to_a_polling_url_without_tls_elsewhere(app, client, responses_mock, polling_url):
    submitted(responses_mock, polling_url=polling_url, cost=4)

    response = generate(client)

    assert response.status_code == 502 and "polling URL" in response.get_json()["error"]
    assert len(responses_mock.calls) == 1  # the submit only: nothing was sent there
    assert (charge_record(app)["cost"], charge_record(app)["chargedBy"]) == (0.04, "provider")


@pytest.mark.parametrize("status, http_status, code", [
    pytest.param("Error", 502, "LLM_PROVIDER_ERROR", id="error"),
    pytest.param("Failed", 502, "LLM_PROVIDER_ERROR", id="failed"),
    pytest.param("Content Moderated", 400, "CONTENT_POLICY_VIOLATION", id="content-moderated"),
    pytest.param("Request Moderated", 400, "CONTENT_POLICY_VIOLATION", id="request-moderated"),
])
def test_a_job_that_ends_without_an_image_is_charged_what_bfl_billed(app, client, responses_mock, status,
                                                                     http_status, code):
    submitted(responses_mock, cost=3)
    polled(responses_mock, "Pending", status)

    response = generate(client)

    assert response.status_code == http_status and response.get_json()["code"] == code
    record = charge_record(app)
    assert (record["cost"], record["chargedBy"], record["httpStatus"]) == (0.03, "provider", http_status)


def test_an_expired_result_url_is_a_clear_502_charged_what_was_billed(app, client, responses_mock):
    submitted(responses_mock, cost=3)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, status=403, body="<Error>AuthenticationFailed</Error>")

    response = generate(client)

    assert response.status_code == 502
    error = response.get_json()
    assert "expired" in error["error"] and error["reason"] == "result_url_expired"
    assert charge_record(app)["cost"] == 0.03


def test_the_deadline_passing_while_the_job_runs_is_a_504_charged_what_was_billed(app, client, responses_mock):
    app.extensions["ziri_images"].providers["bfl"].call_deadline = 0.05
    submitted(responses_mock, cost=3)
    responses_mock.add(responses.GET, POLL_URL, json={"status": "Pending"})

    response = generate(client)

    assert response.status_code == 504 and "may still finish" in response.get_json()["error"]
    assert (charge_record(app)["cost"], charge_record(app)["chargedBy"]) == (0.03, "provider")


def test_response_format_url_answers_the_signed_url_and_when_it_expires(app, client, responses_mock, clock):
    submitted(responses_mock)
    polled(responses_mock, "Ready")  # nothing is fetched: an unused registration would fail the test

    answer = generate(client, response_format="url").get_json()

    assert answer["data"] == [{"url": SAMPLE_URL}]
    assert 0 < answer["url_expires_at"] - answer["created"] <= 600


def test_n_images_are_n_jobs_charged_the_sum_of_their_costs(app, client, responses_mock):
    submitted(responses_mock, cost=3)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    response = generate(client, n=3)

    assert response.status_code == 200 and len(response.get_json()["data"]) == 3
    assert len([call for call in responses_mock.calls if call.request.method == "POST"]) == 3
    assert (reserved(app), charge_record(app)["cost"]) == (0.135, 0.09)


def test_a_cost_above_the_reservation_is_charged_in_full_and_logged(app, client, responses_mock, caplog):
    submitted(responses_mock, cost=50)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    with caplog.at_level(logging.WARNING, logger="ziri_images"):
        response = generate(client)

    assert response.get_json()["_meta"]["cost"]["actual"] == 0.5
    assert any("charge exceeds reservation" in record.message and "providerBilled=0.5" in record.message
               for record in caplog.records)


def test_a_job_accepted_without_a_cost_is_charged_its_reservation(app, client, responses_mock):
    submitted(responses_mock, cost=None)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    cost = generate(client).get_json()["_meta"]["cost"]

    assert (cost["actual"], cost["chargedBy"]) == (0.045, "reservation") and "providerBilled" not in cost


@pytest.mark.parametrize("status, body, http_status", [
    pytest.param(422, {"detail": [{"msg": "width must be a multiple of 16"}]}, 422, id="refused"),
    pytest.param(402, {"detail": "Insufficient credits"}, 502, id="no-credits"),
    pytest.param(401, {"detail": "Not authenticated"}, 502, id="key-rejected"),
])
def test_a_refused_submit_is_not_charged(app, client, responses_mock, status, body, http_status):
    responses_mock.add(responses.POST, f"{BFL_URL}/flux-2-pro", json=body, status=status)

    response = generate(client)

    assert response.status_code == http_status
    assert charge_record(app)["cost"] == 0


@pytest.mark.parametrize("model, fields, reservation", [
    pytest.param("flux-2-pro", {"size": "1024x1024"}, 0.045, id="pro-1mp-counted-as-2"),
    pytest.param("flux-2-pro", {"size": "1008x992"}, 0.03, id="pro-within-1mp"),
    pytest.param("flux-2-pro", {"size": "2048x2048"}, 0.09, id="pro-4.2mp-as-5"),
    pytest.param("flux-2-max", {"size": "1024x1024", "n": 2}, 0.2, id="max-n2"),
    pytest.param("flux-2-klein-4b", {"size": "1024x1024"}, 0.015, id="klein-4b"),
    pytest.param("flux-pro-1.1-ultra", {"size": "1920x1080"}, 0.06, id="ultra-per-image"),
    pytest.param("flux-pro-1.1", {"size": "1024x768", "n": 2}, 0.08, id="pro-1.1-per-image"),
])
def test_the_reservation_is_the_catalogs_formula_at_the_size_asked(app, client, responses_mock, model, fields,
                                                                    reservation):
    submitted(responses_mock, model=model, cost=1)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    response = generate(client, model=model, **fields)

    assert response.status_code == 200, response.get_json()
    assert reserved(app) == reservation == response.get_json()["_meta"]["cost"]["reserved"]


def test_a_model_that_takes_a_ratio_is_sent_the_nearest_one(app, client, responses_mock):
    submit = submitted(responses_mock, model="flux-pro-1.1-ultra", cost=6)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    generate(client, model="flux-pro-1.1-ultra", size="1920x1080", raw=True)

    assert json.loads(submit.calls[0].request.body) == {"prompt": "a red fox", "aspect_ratio": "16:9", "raw": True}


@pytest.mark.parametrize("size, reason", [
    pytest.param("1000x1000", "multiples of 16", id="not-multiple-of-16"),
    pytest.param("2064x2064", "more than 4194304 pixels", id="over-4mp"),
    pytest.param("32x1024", "shorter than 64", id="too-narrow"),
])
def test_a_size_the_model_does_not_take_is_refused_before_anything_is_reserved(app, client, size, reason):
    response = generate(client, size=size)

    assert response.status_code == 400 and response.get_json()["code"] == "INVALID_SIZE"
    assert reason in response.get_json()["error"]
    assert ledger_lines(app) == []


def edit(client, images, model="flux-2-pro", **fields):
    form = {"provider": "bfl", "model": model, "prompt": "the fox in the snow", "size": "1024x1024", **fields,
            "image[]": [(io.BytesIO(data), f"in{index}.jpg") for index, data in enumerate(images)]}
    return client.post("/api/images/edits", data=form, content_type="multipart/form-data",
                       headers={"X-API-Key": USER_KEY})


def test_an_edit_sends_its_images_as_input_images_and_reserves_their_megapixels(app, client, responses_mock):
    first, second = jpeg(1024, 1024), jpeg(800, 600)
    submit = submitted(responses_mock, cost=7.5)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    response = edit(client, [first, second])

    assert response.status_code == 200, response.get_json()
    sent = json.loads(submit.calls[0].request.body)
    assert sent["input_image"] == base64.b64encode(first).decode()
    assert sent["input_image_2"] == base64.b64encode(second).decode() and "input_image_3" not in sent
    # Output 2 MP (3 + 1.5 cents), inputs 2 MP + 1 MP at 1.5 cents: 9 cents; BFL reported 7.5 credits.
    assert (reserved(app), charge_record(app)["cost"]) == (0.09, 0.075)


def test_an_edit_with_more_images_than_the_model_takes_is_refused_before_anything_is_reserved(app, client):
    response = edit(client, [jpeg(64, 64)] * 5, model="flux-2-klein-4b")

    assert response.status_code == 413 and response.get_json()["code"] == "TOO_MANY_IMAGES"
    assert ledger_lines(app) == []


def test_the_worked_example_of_docs_pricing(app, client, responses_mock):
    submitted(responses_mock, cost=6.2)
    polled(responses_mock, "Ready")
    responses_mock.add(responses.GET, SAMPLE_URL, body=IMAGE)

    response = edit(client, [jpeg(1024, 1024)], size="1920x1088", n=2)

    cost = response.get_json()["_meta"]["cost"]
    assert (cost["reserved"], cost["actual"], cost["providerBilled"], cost["chargedBy"]) == (0.18, 0.124, 0.124,
                                                                                             "provider")
    assert charge_record(app)["estimatedCost"] == 0.18
