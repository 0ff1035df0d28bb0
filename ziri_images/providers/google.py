"""Google's image models: the Gemini API (``GeminiProvider``) and Vertex AI (``VertexProvider``).

Both speak ``generateContent`` (``gemini.py`` builds the request and reads the answer) and make
one image a call: ``n`` images are ``n`` calls at once under the one reservation
(``fanout.py``). They differ in their URL and their credential: the Gemini API takes the key
itself (``x-goog-api-key``); Vertex AI a project and location in the path and an OAuth2 access
token for a service account (``vertex_auth.py``), cached until shortly before it expires.
"""

import json
from urllib.parse import quote
from urllib.parse import urlsplit

from .._version import __version__
from ..errors import ConfigError
from ..redaction import redact
from .answers import exchange
from .base import HttpProvider
from .deadline import call_deadline
from .fanout import fan_out
from .fanout import merge
from .gemini import build_request
from .gemini import read_answer
from .vertex_auth import TokenSource

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a 4K image is ~20 MB as base64; far beyond that is not an answer
GLOBAL_VERTEX_HOST = "aiplatform.googleapis.com"


class GeminiProvider(HttpProvider):
    """The Gemini API: ``POST {base_url}/models/{model}:generateContent`` with ``x-goog-api-key``."""

    path = "/models/{model}:generateContent"
    api_key_env = "GEMINI_API_KEY"

    def url_for(self, model):
        return self.base_url + self.path.format(model=quote(model, safe=""))

    def credential_headers(self):
        """Return the header that carries the gateway's credential."""
        return {"x-goog-api-key": self.api_key}

    def send(self, call):
        """Make ``n`` calls at once; return one ProviderResult of their images, or raise ProviderError."""
        request = build_request(call.payload, call.files)
        url = self.url_for(call.payload["model"])
        return merge(fan_out(lambda index: self._call(url, request, call.request_id), call.payload["n"]))

    def _call(self, url, request, request_id):
        """POST one ``generateContent`` within the call's deadline; return its ProviderResult or raise."""
        with call_deadline(self.call_deadline):
            headers = {"Content-Type": "application/json", "Accept": "application/json",
                       "Accept-Encoding": "gzip, deflate", "Connection": "keep-alive",
                       "User-Agent": f"ziri-images/{__version__}",
                       "X-Client-Request-Id": request_id, **self.credential_headers()}
            status, answer_headers, raw = exchange(self, "POST", url, headers, MAX_RESPONSE_BYTES, json=request)
        return read_answer(self, status, answer_headers, raw)


class VertexProvider(GeminiProvider):
    """Vertex AI: ``{base_url}/projects/{project}/locations/{location}/publishers/google/models/{model}``.

    The model is called with ``:generateContent``, as on the Gemini API.

    The credential is a service account's: its JSON in ``api_key_env``'s variable (Heroku config
    vars hold no files) or a file ``credentials_file_env``'s variable names. The published base URL
    is the global endpoint; a regional location is reached at its own host.
    """

    path = "/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent"

    def __init__(self, name, base_url, credentials, connect_timeout, read_timeout, *, project, location,
                 api_key_env="VERTEX_CREDENTIALS_JSON", credentials_file_env="GOOGLE_APPLICATION_CREDENTIALS",
                 project_env="VERTEX_PROJECT", base_url_env=None, ca_bundle=None):
        location = location or "global"
        if base_url and urlsplit(base_url).hostname == GLOBAL_VERTEX_HOST and location != "global":
            base_url = base_url.replace(GLOBAL_VERTEX_HOST, f"{location}-{GLOBAL_VERTEX_HOST}", 1)
        super().__init__(name, base_url, "", connect_timeout, read_timeout, api_key_env,
                         base_url_env=base_url_env, ca_bundle=ca_bundle)
        self.project, self.location = project, location
        self.credentials_variables = f"{api_key_env} or {credentials_file_env}"
        self.project_env = project_env
        self.tokens = TokenSource(credentials, (connect_timeout, read_timeout), ca_bundle) if credentials else None

    @classmethod
    def from_entry(cls, entry, connect_timeout, read_timeout, ca_bundle=None):
        """Return the provider providers.json's ``entry`` (type vertex) describes; its credentials read once."""
        return cls(entry.name, entry.base_url, service_account_info(entry), connect_timeout, read_timeout,
                   project=entry.setting("project"), location=entry.setting("location"),
                   api_key_env=entry.api_key_env,
                   credentials_file_env=(entry.settings or {}).get("credentials_file", ("-",))[0],
                   project_env=(entry.settings or {}).get("project", ("-",))[0], base_url_env=entry.base_url_env,
                   ca_bundle=ca_bundle)

    def url_for(self, model):
        return self.base_url + self.path.format(project=quote(self.project, safe=""),
                                                location=quote(self.location, safe=""), model=quote(model, safe=""))

    def credential_headers(self):
        return {"Authorization": f"Bearer {self.tokens.token(self)}"}

    def sent_secret(self):
        return self.tokens.current() if self.tokens else None

    def redacted(self, value):
        """Return a text with the access token (and anything key-shaped) removed."""
        return redact(value, (self.sent_secret(),)) if isinstance(value, str) else value

    @property
    def missing_setting(self):
        if self.tokens is None:
            return "service account credentials", self.credentials_variables
        if not self.project:
            return "project", self.project_env
        if not self.base_url:
            return "endpoint", self.base_url_env
        return None


def service_account_info(entry):
    """Return the service account credentials (a dict) the entry gives, or None; ConfigError if unreadable."""
    text, where = entry.api_key, f"environment variable {entry.api_key_env}"
    path = entry.setting("credentials_file")
    if not text and path:
        where = f"credentials file {path} ({entry.settings['credentials_file'][0]})"
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as error:
            raise ConfigError(f"{where}: cannot be read ({error.strerror})")
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(f"{where}: not JSON (expected a service account key file's content)")
    if not isinstance(info, dict) or info.get("type") != "service_account" or not all(
            isinstance(info.get(field), str) for field in ("client_email", "private_key", "token_uri")):
        raise ConfigError(f"{where}: expected a service account key (type service_account, with client_email, "
                          "private_key and token_uri)")
    return info
