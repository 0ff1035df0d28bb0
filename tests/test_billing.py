"""A request's money (billing.py): a Bill is settled exactly once, and the limiter tells its observers."""

from types import SimpleNamespace

import pytest

from ziri_images.billing import AlreadySettled
from ziri_images.billing import Bill
from ziri_images.billing import Limiter
from ziri_images.errors import ApiError
from ziri_images.keys.store import ApiKey
from ziri_images.providers.answers import ProviderError

KEY = ApiKey(id="key_bill", user="bill", status="active")
GENERATION = SimpleNamespace(provider="openai", model="dall-e-3", stream=False, partial_images=None, end_user=None)
IMAGE_MODEL = SimpleNamespace(provider="openai", name="dall-e-3", token_prices=None)
QUOTE = SimpleNamespace(choices={"size": "1024x1024"}, images=1, price_per_image=0.04, currency="USD",
                        reserved=0.04, estimated=0.04)
UPSTREAM = SimpleNamespace(provider_status=200, provider_request_id="up_1")


class FakeStore:
    """Record what the limiter asks of a store; ``refuse`` makes each settle raise it."""

    def __init__(self, refuse=None):
        self.reserved, self.settled, self.refuse = [], [], refuse

    def reserve(self, key, micros, details):
        self.reserved.append((key.id, micros, details))
        return SimpleNamespace(request_id=details["requestId"])

    def settle(self, reservation, record, watches=()):
        self.settled.append(record)
        if self.refuse is not None:
            raise self.refuse
        return record


class Observer:
    def __init__(self):
        self.seen = []

    def reserved(self, seconds):
        self.seen.append(("reserved", seconds >= 0))

    def settled(self, record, seconds):
        self.seen.append(("settled", record["status"], seconds is not None))


def open_bill(store):
    return Bill.open(Limiter(store), "req_bill", KEY, "generations", GENERATION, IMAGE_MODEL, QUOTE, None)


def provider_error():
    return ProviderError(502, "The provider failed.", provider_status=500)


@pytest.mark.parametrize("first", [
    pytest.param(lambda bill: bill.unknown(), id="unknown"),
    pytest.param(lambda bill: bill.fail(provider_error()), id="failed"),
    pytest.param(lambda bill: bill.charge_reservation("broken", UPSTREAM), id="stream-at-its-reservation"),
])
@pytest.mark.parametrize("second", [
    pytest.param(lambda bill: bill.unknown(), id="then-unknown"),
    pytest.param(lambda bill: bill.fail(provider_error()), id="then-failed"),
    pytest.param(lambda bill: bill.charge(UPSTREAM), id="then-charged"),
])
def test_a_bill_is_settled_exactly_once(first, second):
    store = FakeStore()
    bill = open_bill(store)
    first(bill)
    with pytest.raises(AlreadySettled):
        second(bill)
    assert bill.settled and len(store.settled) == 1


def test_a_streams_last_resort_does_nothing_once_the_bill_is_settled():
    store = FakeStore()
    bill = open_bill(store)
    bill.fail(provider_error())
    bill.charge_reservation("closed", UPSTREAM, "gateway_error", 500)
    assert [record["status"] for record in store.settled] == ["provider_error"]


def test_a_charge_the_ledger_refused_settles_the_bill_and_leaves_the_reservation_to_expire():
    store = FakeStore(refuse=ApiError(503, "LEDGER_UNAVAILABLE", "The ledger is unavailable."))
    bill = open_bill(store)
    with pytest.raises(ApiError):
        bill.unknown()
    bill.charge_reservation("not_charged", UPSTREAM)  # a stream's last resort: no second attempt
    assert bill.settled and len(store.settled) == 1


@pytest.mark.parametrize("raised, status, http_status", [
    pytest.param(provider_error(), "provider_error", 502, id="provider-error"),
    pytest.param(RuntimeError("boom"), "gateway_error", 500, id="unknown-outcome"),
])
def test_a_call_that_fails_settles_its_bill_once(raised, status, http_status):
    store = FakeStore()
    bill = open_bill(store)

    def send():
        raise raised

    with pytest.raises(type(raised)):
        bill.call(send)
    assert [(record["status"], record["httpStatus"]) for record in store.settled] == [(status, http_status)]


def test_the_summary_opens_the_reservation_and_the_charge():
    store = FakeStore()
    bill = open_bill(store)
    bill.unknown()
    (_, micros, summary), = store.reserved
    assert micros == 40_000 and list(summary) == ["requestId", "endpoint", "keyId", "user", "provider", "model",
                                                  "size", "imagesRequested", "pricePerImage", "currency"]
    assert list(store.settled[0])[:len(summary) + 2] == [*summary, "status", "httpStatus"]
    assert list(store.settled[0])[-1] == "latencyMs"


def test_the_limiter_tells_its_observers_of_each_commit_and_of_a_refused_one():
    observer = Observer()
    store = FakeStore()
    limiter = Limiter(store)
    limiter.observe(observer)
    reservation = limiter.reserve(KEY, 0.04, {"requestId": "req_1"})
    limiter.settle(reservation, {"status": "succeeded"})
    store.refuse = ApiError(503, "LEDGER_UNAVAILABLE", "The ledger is unavailable.")
    with pytest.raises(ApiError):
        limiter.settle(reservation, {"status": "gateway_error"})
    assert observer.seen == [("reserved", True), ("settled", "succeeded", True), ("settled", "gateway_error", False)]
