"""An Idempotency-Key whose answer said ``x-should-retry: true`` can be used again; one that may have billed cannot.

OpenAI's SDKs resend a request with the same Idempotency-Key when the answer says
``x-should-retry: true``. Such an answer is given only when the provider cannot have generated
(or billed) anything, so its key is released: the charge record says ``idempotencyReleased``,
and every store folds it the same way — after a restart (the file store's checkpoint and
replay) and on another host (PostgreSQL). Every test runs against every store; the last is
PostgreSQL's own (a reserve whose answer was lost, released by the housekeeping pass), and one
holds the two folds together: ziri_reserve's SQL and ``UsageState``, over the same records. The
last runs OpenAI's own SDK, in process, through the retry it makes after a provider 500.
"""

from datetime import timedelta

import httpx2
import openai
import pytest
import requests
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import openai_image_response
from conftest import store_records
from ledger.postgres.test_pgstore import PRICE
from ledger.postgres.test_pgstore import TTL
from ledger.postgres.test_pgstore import Key
from ledger.postgres.test_pgstore import details
from ledger.postgres.test_pgstore import make_store  # noqa: F401  (a fixture, used by name)

from ziri_images.errors import ApiError
from ziri_images.ledger.file.jsonl import Ledger
from ziri_images.ledger.file.store import FileStore
from ziri_images.ledger.parse import parse_record
from ziri_images.ledger.records import Reservation
from ziri_images.ledger.records import charge_record
from ziri_images.ledger.records import expiry_record
from ziri_images.ledger.records import reservation_record

pytestmark = pytest.mark.stores()

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a red fox"}

RETRYABLE = [
    pytest.param({"status": 500, "json": {"error": {"message": "The server had an error", "type": "server_error"}}},
                 502, id="provider-500"),
    pytest.param({"status": 429, "json": {"error": {"message": "Slow down", "code": "rate_limit_exceeded"}}},
                 429, id="provider-429"),
    pytest.param({"body": requests.ConnectTimeout("connect timed out")}, 504, id="connect-timeout"),
]
MAY_HAVE_BILLED = [
    pytest.param({"body": requests.ReadTimeout("read timed out")}, 504, id="read-timeout"),
    pytest.param({"json": {"created": 1}}, 502, id="2xx-without-images"),
]


def post(client, idempotency_key):
    return client.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY, "Idempotency-Key": idempotency_key})


def charges(app):
    return [record for record in store_records(app) if record["type"] == "charge"]


@pytest.mark.parametrize(("answer", "status"), RETRYABLE)
def test_an_answer_that_says_retry_can_be_retried_with_the_same_idempotency_key_and_succeed(
        app, client, responses_mock, answer, status):
    responses_mock.post(GENERATIONS_URL, **answer)
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))

    failed = post(client, "fox-1")
    retried = post(client, "fox-1")
    again = post(client, "fox-1")

    assert (failed.status_code, failed.headers["x-should-retry"]) == (status, "true")
    assert retried.status_code == 200, retried.get_json()
    assert (again.status_code, again.get_json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert again.get_json()["originalRequestId"] == retried.get_json()["_meta"]["requestId"]
    first, second = charges(app)
    assert (first["status"], first["cost"], first["shouldRetry"], first["idempotencyReleased"]) == (
        "provider_error", 0.0, True, True)
    assert (second["status"], second["cost"], "idempotencyReleased" in second) == ("succeeded", 0.04, False)


@pytest.mark.parametrize(("answer", "status"), [
    *MAY_HAVE_BILLED,
    # Not a provider that may have billed, but an answer that does not say retry: the key stays used.
    pytest.param({"status": 429, "json": {"error": {"message": "Out of credit", "code": "insufficient_quota"}}},
                 429, id="quota-exhausted"),
])
def test_an_answer_that_does_not_say_retry_keeps_its_idempotency_key_used(app, client, responses_mock, answer,
                                                                          status):
    responses_mock.post(GENERATIONS_URL, **answer)

    failed = post(client, "fox-2")
    retried = post(client, "fox-2")

    assert (failed.status_code, failed.headers["x-should-retry"]) == (status, "false")
    assert (retried.status_code, retried.get_json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    [charge] = charges(app)
    assert "idempotencyReleased" not in charge


def test_a_released_idempotency_key_stays_released_after_a_restart_and_on_another_host(make_app, responses_mock):
    responses_mock.post(GENERATIONS_URL, status=500, json={"error": {"message": "The server had an error"}})
    responses_mock.post(GENERATIONS_URL, body=requests.ReadTimeout("read timed out"))
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    first = make_app().test_client()
    assert post(first, "fox-3").headers["x-should-retry"] == "true"
    assert post(first, "owl-3").headers["x-should-retry"] == "false"  # may have billed

    # The file store: the second start replays the records after the first start's checkpoint
    # and writes a new one; the third starts from that checkpoint alone. PostgreSQL: two more hosts.
    make_app()
    restarted = make_app().test_client()

    assert post(restarted, "fox-3").status_code == 200
    refused = post(restarted, "owl-3")
    assert (refused.status_code, refused.get_json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert post(make_app().test_client(), "fox-3").get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_reserve_answered_retry_whose_commit_was_lost_frees_its_idempotency_key_once_released(
        make_store, monkeypatch):  # noqa: F811  (the fixture imported above)
    store = make_store()
    call = store.database.call

    def committed_then_lost(sql, params):
        call(sql, params)
        lost = ApiError(503, "LEDGER_UNAVAILABLE", "the database is unavailable", should_retry=True)
        lost.maybe_committed = True
        raise lost

    monkeypatch.setattr(store.database, "call", committed_then_lost)
    with pytest.raises(ApiError) as lost:
        store.reserve(Key(), PRICE, details(idempotencyKey="digest"))
    monkeypatch.undo()
    assert lost.value.should_retry
    assert store.release_unconfirmed() == 1  # the housekeeping pass: settled at zero

    retried = store.reserve(Key(), PRICE, details(idempotencyKey="digest"))

    assert store.key_usage(Key()).in_flight == 1
    [released] = [record for record in store.records() if record["type"] == "charge"]
    assert (released["status"], released["idempotencyReleased"]) == ("not_admitted", True)
    assert retried.request_id != released["requestId"]


LIVE_WORKER = "elsewhere:1:feedf00d"  # another host's live process: only its expiry time frees it


def idempotency_ledger(now):
    """Return records of seven requests, each with its own Idempotency-Key digest, and each digest's fate."""
    records, fates = [], {}

    def request(digest, fate, settle=None):
        summary = details(idempotencyKey=digest, keyId="key_pg", user="pat")
        reservation = reservation_record(now, Key(), summary, PRICE, now + timedelta(seconds=TTL), LIVE_WORKER)
        records.append(reservation)
        held = Reservation.from_record(parse_record(reservation))
        if settle is not None:
            records.append(settle(held, summary))
        fates[digest] = fate

    def charged(cost, **outcome):
        return lambda held, summary: charge_record(now, held, {**summary, "status": "provider_error",
                                                                "cost": cost, **outcome}, after_expiry=False)

    def written_as(**fields):  # a charge as written by hand (or another program), not by charge_record
        return lambda held, summary: {**charged(0.0)(held, summary), **fields}

    request("released", "admitted", charged(0.0, shouldRetry=True))
    request("charged", "IDEMPOTENCY_KEY_REUSED", charged(0.04, status="succeeded"))
    request("may-have-billed", "IDEMPOTENCY_KEY_REUSED", charged(0.0, shouldRetry=True, mayHaveBilled=True))
    request("expired", "IDEMPOTENCY_KEY_REUSED", lambda held, summary: expiry_record(now, held, "expired"))
    request("released-as-text", "IDEMPOTENCY_KEY_REUSED", written_as(idempotencyReleased="true"))
    request("released-for-another-key", "IDEMPOTENCY_KEY_REUSED",
            written_as(idempotencyReleased=True, idempotencyKey="another"))
    request("in-flight", "IDEMPOTENT_REQUEST_IN_PROGRESS")
    return records, fates


def fate_of(store, digest):
    try:
        store.reserve(Key(), PRICE, details(idempotencyKey=digest))
    except ApiError as error:
        return error.code
    return "admitted"


def test_both_stores_fold_a_released_idempotency_key_the_same_way(make_store, database, clock, tmp_path):  # noqa: F811
    records, fates = idempotency_ledger(clock())
    database.keep_alive([LIVE_WORKER])
    stores = [FileStore(Ledger(str(tmp_path / "ledger.jsonl"), durable=False), clock, TTL), make_store()]
    stores[0].start()

    for store in stores:
        assert store.import_records(records) == (len(records), 0)
        assert {digest: fate_of(store, digest) for digest in fates} == fates


def test_the_openai_sdks_retry_of_a_provider_500_is_served_with_its_idempotency_key(app, responses_mock):
    responses_mock.post(GENERATIONS_URL, status=500, json={"error": {"message": "The server had an error"}})
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    # In process: the SDK's HTTP client calls the app's WSGI interface, as it would call gunicorn.
    http_client = httpx2.Client(transport=httpx2.WSGITransport(app=app))
    client = openai.OpenAI(base_url="http://gateway.test/v1", api_key=USER_KEY, max_retries=1,
                           http_client=http_client)

    image = client.images.generate(model="dall-e-3", prompt="a red fox", extra_headers={"Idempotency-Key": "fox-4"})

    assert len(image.data) == 1
    assert [(charge["status"], charge["cost"]) for charge in charges(app)] == [("provider_error", 0.0),
                                                                               ("succeeded", 0.04)]
