"""Google's image models end to end: gunicorn, the Gemini API and Vertex AI adapters, and a local Google.

Google here is the project's stub served by this process, every request it receives recorded
(``RecordingGoogle``): the Gemini API's and Vertex AI's ``generateContent`` and the OAuth2 token
endpoint that the test's service account (tests/google_credentials.py) names as its
``token_uri``. Checked: what Google receives (the key; Vertex's bearer token, fetched once for
several requests, and the project and location in the URL), ``n`` images as ``n`` calls, the
charge as the usage priced by hand, a safety block as 400 CONTENT_POLICY_VIOLATION charged its
prompt. One worker class (the default): the limits suite runs a Google model under the others.
"""

import base64
import importlib.util
import io
import json
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest
from google_credentials import CLIENT_EMAIL
from werkzeug.serving import make_server

from e2e.conftest import STUB_GEMINI_KEY
from e2e.conftest import VERTEX_LOCATION
from e2e.conftest import VERTEX_PROJECT
from e2e.conftest import google_environment
from ziri_images.dev.stub import create_stub_app
from ziri_images.uploads.imageinfo import image_info

pytestmark = pytest.mark.real_http

PROMPT = "a red fox in the snow"  # 21 bytes; the stub counts 5 tokens (four characters a token)
MICROS = 1_000_000


@pytest.fixture
def worker_class():
    return "gevent" if importlib.util.find_spec("gevent") else "gthread"


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    answer: bytes

    def json(self):
        return json.loads(self.body)


class RecordingGoogle:
    """The stub served on a free loopback port by a thread, each request (and the token endpoint's answers) kept."""

    def __init__(self):
        self.requests, self._lock, self._app = [], threading.Lock(), create_stub_app()
        self.server = make_server("127.0.0.1", 0, self._record, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        answer = b"".join(self._app(environ, start_response))
        headers = {name[5:].replace("_", "-").lower(): value for name, value in environ.items()
                   if name.startswith("HTTP_")}
        with self._lock:
            self.requests.append(Received(environ["PATH_INFO"], headers, body, answer))
        return [answer]

    def calls(self):
        return [request for request in self.requests if request.path.endswith(":generateContent")]

    def token_requests(self):
        return [request for request in self.requests if request.path == "/token"]

    def close(self):
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


@pytest.fixture
def google():
    server = RecordingGoogle()
    yield server
    server.close()


def png_size(b64_json):
    info = image_info(io.BytesIO(base64.b64decode(b64_json)))
    return info.format, info.width, info.height


def micros(amount):
    return round(amount * MICROS)


def test_the_gemini_api_gets_n_calls_with_the_key_and_the_charge_is_the_usage(start_gateway, google):
    gateway = start_gateway({"alice": {}}, workers=2, extra_env=google_environment(google.url))

    answer = gateway.generate("alice", provider="google", model="gemini-3.1-flash-image", prompt=PROMPT, n=2,
                              size="1536x1024")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [png_size(item["b64_json"]) for item in body["data"]] == [("png", 2528, 1696)] * 2
    assert {item["revised_prompt"] for item in body["data"]} == {f"Here is {PROMPT}, drawn by the local stub."}
    assert (body["size"], body["image_size"]) == ("2528x1696", "2K")
    calls = google.calls()
    assert len(calls) == 2
    assert {call.path for call in calls} == {"/v1beta/models/gemini-3.1-flash-image:generateContent"}
    assert {call.headers["x-goog-api-key"] for call in calls} == {STUB_GEMINI_KEY}
    assert all("authorization" not in call.headers for call in calls)  # the gateway key stays with the gateway
    # 1536x1024: the nearest ratio 3:2, the tier of a 1536 long edge 2K; the output bound 1,680 image + 2,048 text.
    assert [call.json() for call in calls] == [{
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 1,
                             "imageConfig": {"aspectRatio": "3:2", "imageSize": "2K"}, "maxOutputTokens": 3728},
    }] * 2
    # Reserved, per image (each call is sent, and billed, the prompt again): the prompt's 21 bytes x $0.50/1M =
    # $0.0000105, 1,680 image tokens x $60/1M = $0.1008 and 2,048 text tokens x $3/1M = $0.006144:
    # 2 x (0.106944 + 0.0000105) = $0.213909.
    # Charged, per call: 5 prompt tokens x $0.50/1M = $0.0000025; 1,680 image tokens x $60/1M = $0.1008;
    # 13 text ("Here is a red fox in the snow, drawn by the local stub.": 55 characters) + 196 thinking
    # = 209 tokens x $3/1M = $0.000627. Two calls: 2 x $0.1014295 = $0.202859.
    [reservation] = gateway.records("reservation", "alice")
    [charge] = gateway.records("charge", "alice")
    assert micros(reservation["amount"]) == 213_909
    assert micros(charge["cost"]) == 202_859
    assert body["_meta"]["cost"]["actual"] == charge["cost"]
    assert (charge["chargedBy"], charge["imagesReturned"]) == ("tokens", 2)

    blocked = gateway.generate("alice", provider="google", model="gemini-3-pro-image",
                               prompt="a red fox [stub:blocked]")

    assert blocked.status_code == 400
    assert (blocked.json()["code"], blocked.json()["reason"]) == ("CONTENT_POLICY_VIOLATION", "SAFETY")
    [refused] = [record for record in gateway.records("charge", "alice") if record["httpStatus"] == 400]
    # "a red fox [stub:blocked]": 24 characters, 6 prompt tokens x $2/1M = $0.000012; nothing drawn.
    assert micros(refused["cost"]) == 12
    assert refused["usage"]["usageMetadata"][0]["promptTokenCount"] == 6


def test_vertex_gets_a_bearer_token_fetched_once_and_the_project_and_location(start_gateway, google):
    gateway = start_gateway({"alice": {}}, workers=1, extra_env=google_environment(google.url))

    answers = [gateway.generate("alice", provider="vertex", model="gemini-3-pro-image", prompt=PROMPT, n=2,
                                aspect_ratio="16:9", image_size="4K"),
               gateway.generate("alice", provider="vertex", model="gemini-3-pro-image", prompt=PROMPT),
               gateway.generate("alice", provider="vertex", model="gemini-3-pro-image", prompt=PROMPT)]

    assert [answer.status_code for answer in answers] == [200] * 3, answers[0].text
    assert [png_size(item["b64_json"]) for item in answers[0].json()["data"]] == [("png", 5504, 3072)] * 2
    [token_request] = google.token_requests()  # one worker: its token serves the four calls
    form = {name: values[0] for name, values in parse_qs(token_request.body.decode()).items()}
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    header, claims, signature = form["assertion"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    # Sent to the credentials' token_uri (here), addressed as google-auth always addresses it: to Google's endpoint.
    assert (claims["iss"], claims["aud"]) == (CLIENT_EMAIL, "https://oauth2.googleapis.com/token")
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    token = json.loads(token_request.answer)["access_token"]
    calls = google.calls()
    assert len(calls) == 4
    assert {call.path for call in calls} == {
        f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_LOCATION}/publishers/google/models/"
        "gemini-3-pro-image:generateContent"}
    assert {call.headers["authorization"] for call in calls} == {f"Bearer {token}"}
    assert all("x-goog-api-key" not in call.headers for call in calls)
    assert calls[0].json()["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "4K"}
    assert token not in gateway.process.log() and token not in gateway.ledger_path.read_text()
