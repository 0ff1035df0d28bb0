"""All outbound HTTP: call a provider's images API (``provider_answers`` reads its answer).

One class serves every OpenAI-compatible endpoint (OpenAI, xAI, anything configured with a
base URL and a key) and Azure OpenAI, which only differs in its URL (a deployment per model,
the API version in the query string) and its ``api-key`` header. ``provider_config`` builds
them from providers.json.

Every call has explicit (connect, read) timeouts and a total deadline, their sum from the
call's start (``deadline.py``), so an answer trickled byte by byte cannot keep it open. Every
call of a provider goes through its one transport adapter, whose connection pools (urllib3's)
are safe to share between threads and greenlets: a call takes an idle kept-alive connection,
or opens one, and gives it back once its answer is read, so calls reuse connections instead of
paying a TLS handshake each. The request is prepared by requests' own steps and handed to the
adapter directly: a ``Session`` would only merge defaults the gateway does not use (cookies,
environment settings, redirects) on every call.
"""

from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit

import requests

from .._version import __version__
from ..errors import ApiError
from .answers import ProviderError
from .answers import interpret_answer
from .answers import redact
from .answers import translate_failure
from .deadline import DeadlineAdapter
from .deadline import call_deadline
from .streams import ProviderStream
from .streams import is_event_stream

__all__ = ["MAX_RESPONSE_BYTES", "OpenAIProvider", "ProviderError", "redact"]

# Ten large b64 images are ~40 MB; anything far beyond that is not an images response.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Kept-alive connections a provider keeps per host for the next calls: one for every request a gevent
# worker holds at once (gunicorn.conf.py), so a burst never reconnects; more may be open meanwhile.
MAX_IDLE_CONNECTIONS = 1000
# What a requests.Session would send by default (the User-Agent is the gateway's own).
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _form_value(value):
    """Return a form field's text as OpenAI reads it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class OpenAIProvider:
    """An OpenAI-compatible images endpoint: ``POST {base_url}{path}``, authenticated by one header.

    ``path`` may name the model's ``{deployment}`` (Azure) and ``query`` is added to every URL;
    ``auth_scheme`` None sends the key alone (``api-key: <key>``), otherwise ``<scheme> <key>``.
    """

    def __init__(self, name, base_url, api_key, connect_timeout, read_timeout, api_key_env="OPENAI_API_KEY", *,
                 auth_header="Authorization", auth_scheme="Bearer", path="/images/generations", query=None,
                 deployments=None, base_url_env=None, ca_bundle=None):
        self.name = name
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.base_url_env = base_url_env
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self.path = path
        self.query = dict(query or {})
        self.deployments = dict(deployments) if deployments is not None else None
        self.timeout = (connect_timeout, read_timeout)
        # The whole call, however its answer arrives; a reservation must outlive it (gateway.py).
        self.call_deadline = connect_timeout + read_timeout
        self._adapter = DeadlineAdapter(pool_maxsize=MAX_IDLE_CONNECTIONS)
        # Proxy and CA-bundle settings are taken once (the bundle from config.py): left to requests,
        # they are looked up (walking the whole environment) on every call.
        self._proxies = requests.utils.get_environ_proxies(self.base_url or "")
        self._verify = ca_bundle or True
        self._prepared_urls = {}  # URL -> as requests checks and quotes it: one per model and operation

    @property
    def is_loopback(self):
        """True when the provider is a local process (the development stub), not a paid API."""
        return bool(self.base_url) and urlsplit(self.base_url).hostname in LOOPBACK_HOSTS

    @property
    def missing_setting(self):
        """Return (what, variable) for the credential or endpoint still to be set, or None when usable."""
        if not self.api_key:
            return "API key", self.api_key_env
        if not self.base_url:
            return "endpoint", self.base_url_env
        return None

    def require_credentials(self):
        """Raise PROVIDER_KEY_MISSING unless a provider key (and endpoint) is configured."""
        missing = self.missing_setting
        if missing is not None:
            what, variable = missing
            raise ApiError(
                500,
                "PROVIDER_KEY_MISSING",
                f"No {what} configured for provider '{self.name}' (set {variable}).",
            )

    def url_for(self, model, operation="generations"):
        """Return the ``operation`` URL (generations or edits) for ``model`` (its deployment's, for Azure)."""
        deployment = model
        if self.deployments is not None:
            deployment = self.deployments.get(model)
            if deployment is None:
                raise self.error(502, f"Provider '{self.name}' has no deployment for model '{model}'.")
        path = self.path.replace("/images/generations", f"/images/{operation}")
        url = self.base_url + path.format(deployment=quote(deployment, safe=""))
        return f"{url}?{urlencode(self.query)}" if self.query else url

    def auth_headers(self):
        """Return the one header that carries the gateway's credential."""
        value = self.api_key if self.auth_scheme is None else f"{self.auth_scheme} {self.api_key}"
        return {self.auth_header: value}

    def _prepare(self, url, headers, **body):
        """Return the POST as requests prepares it (``body``: json=, or data= and files=)."""
        request = requests.PreparedRequest()
        request.prepare_method("POST")
        prepared_url = self._prepared_urls.get(url)
        if prepared_url is None:
            request.prepare_url(url, None)
            prepared_url = self._prepared_urls[url] = request.url
        request.url = prepared_url
        request.prepare_headers(headers)
        request.prepare_body(body.get("data"), body.get("files"), body.get("json"))
        return request

    def _send(self, url, headers, **body):
        """Send the POST on a pooled connection; return the response with its body still to be read."""
        return self._adapter.send(self._prepare(url, headers, **body), stream=True, timeout=self.timeout,
                                  verify=self._verify, proxies=self._proxies)

    def error(self, status, message, **kwargs):
        """Return a ProviderError naming this provider, its message redacted."""
        return ProviderError(status, self.redacted(message), provider=self.name, **kwargs)

    def redacted(self, value):
        """Return a text the provider sent with our credential (or anything key-shaped) removed."""
        return redact(value, (self.api_key,)) if isinstance(value, str) else value

    def generate(self, payload, request_id):
        """POST ``payload`` as JSON to the generations endpoint; return a ProviderResult, or raise ProviderError."""
        return self._post(self.url_for(payload["model"]), request_id, {"Content-Type": "application/json"},
                          json=payload)

    def edit(self, payload, files, request_id):
        """POST ``payload`` and ``files`` [(field, (name, stream, type))] as multipart/form-data to the edits URL."""
        form = {name: _form_value(value) for name, value in payload.items()}
        return self._post(self.url_for(payload["model"], "edits"), request_id, {}, data=form, files=files)

    def open_stream(self, payload, request_id, files=None):
        """POST a ``stream: true`` request (an edit with ``files``); return its ProviderStream, or raise ProviderError.

        The connection stays with the stream until it is closed. Its reads keep the call's
        deadline (set when the answer's headers arrived) and the read timeout, the longest
        gap allowed between two events. A 2xx answer is a stream if its first bytes say so
        (``starts_as_events``); any other is read as a JSON answer, and returned as its
        ProviderResult when it is one (an endpoint that ignores ``stream``).
        """
        if files is None:
            url, body, content = self.url_for(payload["model"]), {"json": payload}, {"Content-Type": "application/json"}
        else:
            form = {name: _form_value(value) for name, value in payload.items()}
            url, body, content = self.url_for(payload["model"], "edits"), {"data": form, "files": files}, {}
        # Uncompressed, so each event is passed on as it arrives.
        headers = self._headers(request_id, {**content, "Accept": "text/event-stream", "Accept-Encoding": "identity"})
        response = None
        try:
            with call_deadline(self.call_deadline):
                response = self._send(url, headers, **body)
            provider_request_id = self.redacted(response.headers.get("x-request-id"))
            if not 200 <= response.status_code < 300:
                interpret_answer(self, response.status_code, response.headers, self._read_capped(response),
                                 provider_request_id)  # raises the error the answer means
            stream = ProviderStream(self, response, provider_request_id)
            if stream.starts_as_events(labelled=is_event_stream(response)):
                return stream
            raw = stream.read_all(MAX_RESPONSE_BYTES)
            return interpret_answer(self, response.status_code, response.headers, raw, provider_request_id)
        except BaseException as error:
            raise self._failed(response, error)

    def _headers(self, request_id, content_headers):
        return {
            **DEFAULT_HEADERS,
            **self.auth_headers(),
            **content_headers,
            "User-Agent": f"ziri-images/{__version__}",
            "X-Client-Request-Id": request_id,
        }

    def _post(self, url, request_id, content_headers, **body):
        headers = self._headers(request_id, content_headers)
        response = None
        try:
            with call_deadline(self.call_deadline):
                response = self._send(url, headers, **body)
                provider_request_id = self.redacted(response.headers.get("x-request-id"))
                raw = self._read_capped(response)
        except BaseException as error:
            raise self._failed(response, error)
        return interpret_answer(self, response.status_code, response.headers, raw, provider_request_id)

    def _failed(self, response, error):
        """Close an answer not passed on; return what to raise for ``error`` (requests' own errors translated).

        Whatever the failure, an interrupted call (its greenlet killed) included, the answer's
        connection goes back to the pool, closed if its body was not read.
        """
        if response is not None:
            response.close()
        if not isinstance(error, requests.exceptions.RequestException):
            return error
        failure = translate_failure(self, error)
        if response is not None:  # its status arrived: a 2xx whose body broke charges the reservation
            failure.provider_status = response.status_code
        return failure

    def _read_capped(self, response):
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                response.close()
                raise self.error(502, f"Provider '{self.name}' response exceeds {MAX_RESPONSE_BYTES} bytes.",
                                 provider_status=response.status_code, may_have_billed=True)
            chunks.append(chunk)
        return b"".join(chunks)
