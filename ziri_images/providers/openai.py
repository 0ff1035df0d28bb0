"""OpenAI's images API, the first provider adapter: OpenAI, Azure OpenAI, xAI and compatible servers.

One class serves every OpenAI-compatible endpoint (OpenAI, xAI, anything configured with a
base URL and a key) and Azure OpenAI, which only differs in its URL (a deployment per model,
the API version in the query string) and its ``api-key`` header. ``config`` builds them from
providers.json. The payload quoting.py built is OpenAI's request already: it is sent as it is
(as JSON, or as an edit's form), and the answer read by ``answers.interpret_answer``.

Every call has explicit (connect, read) timeouts and a total deadline, their sum from the
call's start (``deadline.py``), so an answer trickled byte by byte cannot keep it open. Every
call of a provider goes through its one ``Transport``, so calls reuse kept-alive connections
instead of paying a TLS handshake each.
"""

from urllib.parse import quote
from urllib.parse import urlencode

from .._version import __version__
from .answers import exchange
from .answers import failure
from .answers import interpret_answer
from .answers import read_capped
from .base import HttpProvider
from .base import ProviderError
from .deadline import call_deadline
from .streams import ProviderStream
from .streams import is_event_stream

__all__ = ["MAX_RESPONSE_BYTES", "OpenAIProvider", "ProviderError"]

# Ten large b64 images are ~40 MB; anything far beyond that is not an images response.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# What a requests.Session would send by default (the User-Agent is the gateway's own).
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}
JSON_CONTENT = {"Content-Type": "application/json"}


def _form_value(value):
    """Return a form field's text as OpenAI reads it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class OpenAIProvider(HttpProvider):
    """An OpenAI-compatible images endpoint: ``POST {base_url}{path}``, authenticated by one header.

    ``path`` may name the model's ``{deployment}`` (Azure) and ``query`` is added to every URL;
    ``auth_scheme`` None sends the key alone (``api-key: <key>``), otherwise ``<scheme> <key>``.
    """

    supports_stream = True
    api_key_env = "OPENAI_API_KEY"

    def __init__(self, name, base_url, api_key, connect_timeout, read_timeout, api_key_env=None, *,
                 auth_header="Authorization", auth_scheme="Bearer", path="/images/generations", query=None,
                 deployments=None, base_url_env=None, ca_bundle=None):
        super().__init__(name, base_url, api_key, connect_timeout, read_timeout, api_key_env,
                         base_url_env=base_url_env, ca_bundle=ca_bundle)
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self.path = path
        self.query = dict(query or {})
        self.deployments = dict(deployments) if deployments is not None else None

    @classmethod
    def from_entry(cls, entry, connect_timeout, read_timeout, ca_bundle=None):
        """Return the provider providers.json's ``entry`` (type openai or azure) describes."""
        return cls(entry.name, entry.base_url, entry.api_key, connect_timeout, read_timeout, entry.api_key_env,
                   auth_header=entry.auth_header, auth_scheme=entry.auth_scheme, path=entry.path,
                   query=entry.query or None, deployments=entry.deployments, base_url_env=entry.base_url_env,
                   ca_bundle=ca_bundle)

    def url_for(self, model, operation="generations"):
        """Return the ``operation`` URL (generations or edits) for ``model`` (its deployment's, for Azure)."""
        # Every catalog model of a provider with deployments has one (config.check_catalog), and
        # nothing outside the catalog is sent.
        deployment = model if self.deployments is None else self.deployments[model]
        path = self.path.replace("/images/generations", f"/images/{operation}")
        url = self.base_url + path.format(deployment=quote(deployment, safe=""))
        return f"{url}?{urlencode(self.query)}" if self.query else url

    def auth_headers(self):
        """Return the one header that carries the gateway's credential."""
        value = self.api_key if self.auth_scheme is None else f"{self.auth_scheme} {self.api_key}"
        return {self.auth_header: value}

    def send(self, call):
        """POST ``call`` (as JSON, or an edit as multipart/form-data); return its ProviderResult or ProviderStream."""
        if call.stream:
            return self._open_stream(call)
        if call.files is None:
            return self._post(self.url_for(call.payload["model"], call.operation), call.request_id, JSON_CONTENT,
                              json=call.payload)
        form = {name: _form_value(value) for name, value in call.payload.items()}
        return self._post(self.url_for(call.payload["model"], call.operation), call.request_id, {}, data=form,
                          files=call.files)

    def _open_stream(self, call):
        """POST a ``stream: true`` call; return its ProviderStream, or raise ProviderError.

        The connection stays with the stream until it is closed. Its reads keep the call's
        deadline (set when the answer's headers arrived) and the read timeout, the longest
        gap allowed between two events. A 2xx answer is a stream if its first bytes say so
        (``starts_as_events``); any other is read as a JSON answer, and returned as its
        ProviderResult when it is one (an endpoint that ignores ``stream``).
        """
        url = self.url_for(call.payload["model"], call.operation)
        if call.files is None:
            body, content = {"json": call.payload}, JSON_CONTENT
        else:
            body, content = {"data": {name: _form_value(value) for name, value in call.payload.items()},
                             "files": call.files}, {}
        # Uncompressed, so each event is passed on as it arrives.
        headers = self._headers(call.request_id, {**content, "Accept": "text/event-stream",
                                                  "Accept-Encoding": "identity"})
        response = None
        try:
            with call_deadline(self.call_deadline):
                response = self.transport.send("POST", url, headers, **body)
            provider_request_id = self.redacted(response.headers.get("x-request-id"))
            if not 200 <= response.status_code < 300:
                interpret_answer(self, response.status_code, response.headers,
                                 read_capped(self, response, MAX_RESPONSE_BYTES),
                                 provider_request_id)  # raises the error the answer means
            stream = ProviderStream(self, response, provider_request_id)
            if stream.starts_as_events(labelled=is_event_stream(response)):
                return stream
            raw = stream.read_all(MAX_RESPONSE_BYTES)
            return interpret_answer(self, response.status_code, response.headers, raw, provider_request_id)
        except BaseException as error:
            raise failure(self, response, error)

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
        with call_deadline(self.call_deadline):
            status, answer_headers, raw = exchange(self, "POST", url, headers, MAX_RESPONSE_BYTES, **body)
        return interpret_answer(self, status, answer_headers, raw, self.redacted(answer_headers.get("x-request-id")))
