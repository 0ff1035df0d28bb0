"""The edit bodies a worker holds: refused before any byte is read when the key or the worker has no room."""

import io
import threading

import pytest
import responses
from conftest import BASE_URL
from conftest import USER_KEY
from conftest import charge_record
from conftest import reservation_record
from test_limits import live_worker
from test_limits import raw_key as team_raw_key
from test_streaming import completed
from test_streaming import partial
from test_team_limits import write_team_keys
from werkzeug.datastructures import FileStorage
from werkzeug.datastructures import MultiDict
from werkzeug.test import encode_multipart

from ziri_images.config import Config
from ziri_images.dev.stub import png_bytes
from ziri_images.errors import ConfigError

EDITS_URL = BASE_URL + "/images/edits"
ANSWER = {"created": 1, "data": [{"b64_json": "aGk="}],
          "usage": {"input_tokens": 400, "output_tokens": 1056, "total_tokens": 1456,
                    "input_tokens_details": {"text_tokens": 10, "image_tokens": 390}}}
WAIT = 10  # seconds: a bound for the threads below, never reached when the gateway behaves


class ClientBody(io.RawIOBase):
    """A request body as a client sends it: counted as the gateway reads it, paused after ``pause_at`` bytes."""

    def __init__(self, data, pause_at=None):
        self.data = data
        self.read_bytes = 0
        self.pause_at = pause_at
        self.paused = threading.Event()  # set once the gateway waits for the rest
        self.resume = threading.Event()

    def readable(self):
        return True

    def readinto(self, buffer):
        end = len(self.data)
        if self.pause_at is not None and not self.resume.is_set():
            if self.read_bytes >= self.pause_at:
                self.paused.set()
                assert self.resume.wait(WAIT)
            else:
                end = self.pause_at
        chunk = self.data[self.read_bytes:min(end, self.read_bytes + len(buffer))]
        buffer[:len(chunk)] = chunk
        self.read_bytes += len(chunk)
        return len(chunk)


def edit_body(image_bytes=20_000, **fields):
    """Return (content type, body) of an edit with one PNG of about ``image_bytes``."""
    image = png_bytes("a", 64)
    image += bytes(max(0, image_bytes - len(image)))  # read by its header, never decoded
    form = MultiDict({"model": "gpt-image-1", "prompt": "add a hat", **fields})
    form.add("image", FileStorage(io.BytesIO(image), filename="a.png", content_type="image/png"))
    boundary, body = encode_multipart(form)
    return f"multipart/form-data; boundary={boundary}", body


def send_edit(app, key, body, content_type):
    """Send an edit whose body is the ClientBody ``body``; return the response, read and closed as a server would."""
    environ = {"wsgi.input": body, "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body.data))}
    return app.test_client().post("/v1/images/edits", environ_overrides=environ, buffered=True,
                                  headers={"Authorization": f"Bearer {key}"})


class InTransfer:
    """An edit whose body stops halfway (in another thread) until ``finish()``: a body in transfer."""

    def __init__(self, app, key, image_bytes=20_000):
        content_type, data = edit_body(image_bytes)
        self.body = ClientBody(data, pause_at=len(data) // 2)
        self.response = None
        self.thread = threading.Thread(target=self._send, args=(app, key, content_type))
        self.thread.start()
        assert self.body.paused.wait(WAIT), "the gateway never started reading the body"

    def _send(self, app, key, content_type):
        self.response = send_edit(app, key, self.body, content_type)

    def finish(self):
        self.body.resume.set()
        self.thread.join(WAIT)
        return self.response


def error_of(response):
    error = response.get_json()["error"]
    assert error["requestId"] == response.headers["X-Request-Id"]
    return error


def held_bytes(app):
    return app.extensions["ziri_images"].limiter.uploads.held_bytes


@pytest.mark.parametrize("limits, status, code", [
    pytest.param({"max_concurrent_requests": 1}, 503, "QUEUE_FULL", id="one-in-flight"),
    pytest.param({"requests_per_minute": 1}, 429, "RATE_LIMIT_EXCEEDED", id="one-per-minute"),
    pytest.param({"requests_per_minute": 1, "max_concurrent_requests": 1}, 429, "RATE_LIMIT_EXCEEDED", id="both"),
])
def test_a_keys_second_edit_is_refused_before_its_body_is_read_while_its_first_is_in_transfer(
        app, add_key, responses_mock, limits, status, code):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    key = add_key(limits=limits)
    first = InTransfer(app, key)
    content_type, data = edit_body()
    second = ClientBody(data)

    refused = send_edit(app, key, second, content_type)
    answered = first.finish()

    assert (refused.status_code, error_of(refused)["code"]) == (status, code)
    assert refused.headers["x-should-retry"] == "true" and "Retry-After" in refused.headers
    assert second.read_bytes == 0  # not a byte of it held
    assert answered.status_code == 200, answered.get_json()
    assert len(responses_mock.calls) == 1


@pytest.mark.stores()
def test_an_edit_past_the_keys_rate_is_refused_before_its_body_is_read(app, add_key, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    key = add_key(limits={"requests_per_minute": 1})
    content_type, data = edit_body()
    assert send_edit(app, key, ClientBody(data), content_type).status_code == 200
    body = ClientBody(data)

    response = send_edit(app, key, body, content_type)

    assert (response.status_code, error_of(response)["code"]) == (429, "RATE_LIMIT_EXCEEDED")
    assert body.read_bytes == 0


@pytest.mark.stores()
def test_an_edit_of_a_team_past_its_budget_is_refused_before_its_body_is_read(make_app, keys_path, clock,
                                                                                another_worker):
    write_team_keys(keys_path, {"design": {"name": "Design", "limits": {"daily_spend_limit": 0.04}}},
                    {"alice": {"team": "design"}, "bob": {"team": "design"}})
    app = make_app()  # on PostgreSQL, the database's keys are made those of keys.json
    another_worker({**charge_record("bob", 0.05, clock(), "req_spent"), "team": "design"})  # past its budget
    content_type, data = edit_body()
    body = ClientBody(data)

    response = send_edit(app, team_raw_key("alice"), body, content_type)

    assert (response.status_code, error_of(response)["code"], error_of(response)["scope"]) == (
        402, "SPEND_LIMIT_EXCEEDED", "team")
    assert body.read_bytes == 0


@pytest.mark.stores()
def test_an_edit_past_the_keys_requests_in_flight_on_other_workers_is_refused_before_its_body_is_read(
        app, add_key, clock, another_worker):
    key = add_key(key_id="key_busy", user="busy", limits={"max_concurrent_requests": 1})
    another_worker(reservation_record("busy", 0.04, clock(), live_worker()))
    content_type, data = edit_body()
    body = ClientBody(data)

    response = send_edit(app, key, body, content_type)

    assert (response.status_code, error_of(response)["code"]) == (503, "QUEUE_FULL")
    assert body.read_bytes == 0


def test_bodies_beyond_the_workers_room_for_uploads_are_refused_with_a_retryable_503(
        make_app, add_key, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    app = make_app(EDIT_WORKER_MAX_BYTES=100_000)
    first = InTransfer(app, add_key(), image_bytes=60_000)
    content_type, data = edit_body(image_bytes=60_000)
    second = ClientBody(data)

    refused = send_edit(app, add_key(), second, content_type)
    answered = first.finish()

    error = error_of(refused)
    assert (refused.status_code, error["code"], error["reason"]) == (503, "UPLOAD_CAPACITY_FULL", "server")
    assert refused.headers["x-should-retry"] == "true" and refused.headers["Retry-After"] == "1"
    assert second.read_bytes == 0
    assert answered.status_code == 200 and held_bytes(app) == 0
    assert send_edit(app, add_key(), ClientBody(data), content_type).status_code == 200  # room again


def test_one_key_without_limits_holds_at_most_half_of_the_workers_room(make_app, add_key, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, json=ANSWER)
    app = make_app(EDIT_WORKER_MAX_BYTES=100_000)
    key = add_key()
    first = InTransfer(app, key, image_bytes=30_000)
    content_type, data = edit_body(image_bytes=30_000)
    second = ClientBody(data)

    refused = send_edit(app, key, second, content_type)
    other_key = send_edit(app, add_key(), ClientBody(data), content_type)
    first.finish()

    assert (refused.status_code, error_of(refused)["code"], error_of(refused)["reason"]) == (
        503, "UPLOAD_CAPACITY_FULL", "key")
    assert second.read_bytes == 0
    assert other_key.status_code == 200, other_key.get_json()


def test_an_admitted_edit_counts_once_in_the_keys_rate(app, add_key, responses_mock):
    upstream_busy, upstream_done = threading.Event(), threading.Event()

    def slow_answer(request):
        if not upstream_busy.is_set():
            upstream_busy.set()
            assert upstream_done.wait(WAIT)
        return 200, {}, '{"created": 1, "data": [{"b64_json": "aGk="}]}'

    responses_mock.add_callback(responses.POST, EDITS_URL, callback=slow_answer)
    key = add_key(limits={"requests_per_minute": 2})
    content_type, data = edit_body()
    first = threading.Thread(target=send_edit, args=(app, key, ClientBody(data), content_type))
    first.start()
    assert upstream_busy.wait(WAIT)

    second = send_edit(app, key, ClientBody(data), content_type)  # the first is admitted and still held
    upstream_done.set()
    first.join(WAIT)

    assert second.status_code == 200, second.get_json()


@pytest.mark.parametrize("image, answer", [
    pytest.param(None, {"json": ANSWER}, id="answered"),
    pytest.param(b"not an image" * 100, None, id="refused"),
    pytest.param(None, {"status": 500, "json": {"error": {"message": "down"}}}, id="provider-error"),
])
def test_the_room_is_given_back_once_the_answer_is_sent(app, client, responses_mock, image, answer):
    if answer is not None:
        responses_mock.add(responses.POST, EDITS_URL, **answer)
    form = {"model": "gpt-image-1", "prompt": "add a hat",
            "image": (io.BytesIO(image or png_bytes("a", 64)), "a.png")}

    client.post("/v1/images/edits", data=form, content_type="multipart/form-data",
                headers={"Authorization": f"Bearer {USER_KEY}"}, buffered=True)  # read and closed, as a server does

    assert held_bytes(app) == 0


def test_a_streamed_edit_holds_its_room_until_its_last_event_is_sent(app, client, responses_mock):
    responses_mock.add(responses.POST, EDITS_URL, body=partial(0, "image_edit") + completed("image_edit"),
                       content_type="text/event-stream")
    form = {"model": "gpt-image-1", "prompt": "add a hat", "stream": "true", "partial_images": "1",
            "image": (io.BytesIO(png_bytes("a", 64)), "a.png")}

    response = client.post("/v1/images/edits", data=form, content_type="multipart/form-data",
                           headers={"Authorization": f"Bearer {USER_KEY}"}, buffered=False)
    during = held_bytes(app)
    b"".join(response.response)
    response.close()

    assert during > 0 and held_bytes(app) == 0


def test_a_worker_room_smaller_than_the_largest_edit_is_a_configuration_error():
    with pytest.raises(ConfigError, match="ZIRI_EDIT_WORKER_MAX_BYTES"):
        Config.from_environ({"ZIRI_EDIT_WORKER_MAX_BYTES": str(64 * 1024 * 1024)}, read_providers=False)
    settings = Config.from_environ({"ZIRI_EDIT_MAX_TOTAL_BYTES": "1000000", "ZIRI_EDIT_WORKER_MAX_BYTES": "2048576"},
                                   read_providers=False)
    assert settings["EDIT_WORKER_MAX_BYTES"] == 2_048_576
