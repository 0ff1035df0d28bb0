"""All outbound HTTP: call a provider's images API and translate its failures.

Providers are data: providers.json names each one's type, base URL, credential variable and
auth header, and ``build_providers`` turns it into ``OpenAIProvider`` objects at start-up.
One class serves every OpenAI-compatible endpoint (OpenAI, xAI, anything configured with a
base URL and a key) and Azure OpenAI, which only differs in its URL (a deployment per model,
the API version in the query string) and its ``api-key`` header. Credentials come from the
environment only (or config values named like the variables, for tests), never from a file.

Every call has explicit (connect, read) timeouts and a total deadline, their sum from the
call's start (``deadline.py``), so an answer trickled byte by byte cannot keep it open. It
borrows a ``requests.Session`` that no other call uses meanwhile (sessions are not
thread-safe); the session, with its kept-alive connection, goes back to an idle pool
afterwards, so under gevent (where every request is a new greenlet) calls still reuse
connections instead of paying a TLS handshake each. Every ``requests`` exception or bad
upstream answer becomes a ``ProviderError`` here and nowhere else, with one error mapping for
every provider. ``may_have_billed`` tells the caller whether the provider could have
generated (and charged for) images anyway.
"""

import os
import queue
import re
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import ReadTimeoutError

from . import __version__
from .deadline import DeadlineAdapter
from .deadline import call_deadline
from .errors import ApiError
from .errors import ConfigError
from .settings import load_json_file
from .strict_json import parse_provider_body

# Ten large b64 images are ~40 MB; anything far beyond that is not an images response.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Idle sessions (each with its kept-alive connections) a provider keeps for the next calls.
MAX_IDLE_SESSIONS = 64
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_SECRET_PATTERN = re.compile(r"\b((?:sk|xai)-[A-Za-z0-9_*\-]{6,}|ziri-[A-Za-z0-9_.-]+-[0-9a-f]{16,})")
# Some providers (xAI) answer a wrong key with 400, not 401: the message tells.
_CREDENTIALS_REJECTED = re.compile(r"\b(incorrect|invalid) api key\b", re.IGNORECASE)
# The providers' codes for a prompt or image refused by their safety system.
CONTENT_POLICY_CODES = {"content_policy_violation", "contentFilter", "moderation_blocked"}


def redact(text, secrets=()):
    """Return ``text`` with the given secrets and anything shaped like an API key removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERN.sub("[redacted]", text)


class ProviderError(ApiError):
    """A provider call that produced no usable images."""

    def __init__(self, status, message, *, provider_status=None, provider_request_id=None,
                 may_have_billed=False, should_retry=False, headers=None, **details):
        super().__init__(status, "LLM_PROVIDER_ERROR", message, headers=headers, should_retry=should_retry, **details)
        self.provider_status = provider_status
        self.provider_request_id = provider_request_id
        self.may_have_billed = may_have_billed


@dataclass(frozen=True)
class ProviderResult:
    """A successful images response."""

    body: dict
    provider_status: int
    provider_request_id: str | None


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
                 deployments=None, base_url_env=None):
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
        self._idle_sessions = queue.LifoQueue()  # most recently used first: its connection is warmest
        # Proxy and CA-bundle settings are read from the environment once: left to requests,
        # they are looked up (walking all of os.environ) on every call.
        self._proxies = requests.utils.get_environ_proxies(self.base_url or "")
        self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

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
                raise self._error(502, f"Provider '{self.name}' has no deployment for model '{model}'.")
        path = self.path.replace("/images/generations", f"/images/{operation}")
        url = self.base_url + path.format(deployment=quote(deployment, safe=""))
        return f"{url}?{urlencode(self.query)}" if self.query else url

    def auth_headers(self):
        """Return the one header that carries the gateway's credential."""
        value = self.api_key if self.auth_scheme is None else f"{self.auth_scheme} {self.api_key}"
        return {self.auth_header: value}

    def _new_session(self):
        session = requests.Session()
        session.trust_env = False
        for prefix in ("http://", "https://"):
            session.mount(prefix, DeadlineAdapter())
        session.proxies.update(self._proxies)
        session.verify = self._verify
        return session

    @contextmanager
    def _session(self):
        """Lend a session no other call is using; take it back (or close it if enough are idle)."""
        try:
            session = self._idle_sessions.get_nowait()
        except queue.Empty:
            session = self._new_session()
        try:
            yield session
        finally:
            if self._idle_sessions.qsize() < MAX_IDLE_SESSIONS:
                self._idle_sessions.put(session)
            else:
                session.close()

    def _error(self, status, message, **kwargs):
        return ProviderError(status, self._redacted(message), provider=self.name, **kwargs)

    def _redacted(self, value):
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

    def _post(self, url, request_id, content_headers, **body):
        headers = {
            **self.auth_headers(),
            **content_headers,
            "User-Agent": f"ziri-images/{__version__}",
            "X-Client-Request-Id": request_id,
        }
        try:
            with self._session() as session, call_deadline(self.call_deadline):
                response = session.post(url, headers=headers, timeout=self.timeout, stream=True, **body)
                provider_request_id = self._redacted(response.headers.get("x-request-id"))
                raw = self._read_capped(response)
        except requests.exceptions.ConnectTimeout:
            raise self._error(504, f"Timed out connecting to provider '{self.name}'.", should_retry=True)
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as error:
            # A body that stalls after the headers times out too, but requests reports it as a ConnectionError.
            if isinstance(error, requests.exceptions.Timeout) or _caused_by(error, ReadTimeoutError):
                raise self._error(
                    504, f"Provider '{self.name}' did not answer in time; the images may still have been generated.",
                    may_have_billed=True,
                )
            refused = _connection_refused(error)
            message = "could not be reached" if refused else "dropped the connection"
            raise self._error(502, f"Provider '{self.name}' {message}.", may_have_billed=not refused,
                              should_retry=refused)
        except requests.exceptions.ChunkedEncodingError:
            raise self._error(502, f"Provider '{self.name}' dropped the connection in the middle of its answer.",
                              may_have_billed=True)
        except requests.exceptions.RequestException as error:
            raise self._error(502, f"Provider '{self.name}' request failed: {type(error).__name__}.",
                              may_have_billed=True)
        return self._interpret(response.status_code, response.headers, raw, provider_request_id)

    def _read_capped(self, response):
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                response.close()
                raise self._error(502, f"Provider '{self.name}' response exceeds {MAX_RESPONSE_BYTES} bytes.",
                                  provider_status=response.status_code, may_have_billed=True)
            chunks.append(chunk)
        return b"".join(chunks)

    def _interpret(self, status, headers, raw, provider_request_id):
        context = {"provider_status": status, "provider_request_id": provider_request_id}
        try:
            # NaN, Infinity and lone surrogates are not JSON: they never go further than here.
            body = parse_provider_body(raw)
        except (ValueError, RecursionError):  # json gives up on deeply nested arrays with RecursionError
            body = None
        if 200 <= status < 300:
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise self._error(502, f"Provider '{self.name}' returned a response without image data.",
                                  may_have_billed=True, **context)
            return ProviderResult(body=body, provider_status=status, provider_request_id=provider_request_id)
        message, upstream = _upstream_error(body)
        # A provider may repeat the credential it was sent in any field, not only in its message.
        upstream = {name: self._redacted(value) for name, value in upstream.items()}
        message = message or f"Provider '{self.name}' answered HTTP {status}."
        details = {"providerError": {"status": status, **upstream, "requestId": provider_request_id}}
        if upstream.get("code") in CONTENT_POLICY_CODES:
            details["reason"] = "content_policy"
        if status in (401, 403) or (400 <= status < 500 and _CREDENTIALS_REJECTED.search(message)):
            # The provider refused *our* credentials: not the client's fault, and not its key.
            raise self._error(502, f"Provider '{self.name}' rejected the gateway's credentials: {message}",
                              **context, **details)
        if status == 429:
            retry_after = self._redacted(headers.get("retry-after"))
            raise self._error(429, message, headers={"Retry-After": retry_after} if retry_after else None,
                              should_retry=upstream.get("code") != "insufficient_quota", **context, **details)
        if 400 <= status < 500:
            raise self._error(status, message, **context, **details)
        raise self._error(502, message, should_retry=True, **context, **details)


def _upstream_error(body):
    """Return (message, {type, code, param}) from an error body of any supported shape.

    OpenAI and Azure: ``{"error": {"message", "type", "code", "param"}}``; xAI:
    ``{"code": "...", "error": "<message>"}``.
    """
    if not isinstance(body, dict):
        return None, {}
    error = body.get("error")
    if isinstance(error, str):
        code = body.get("code")
        return error, ({"code": code} if isinstance(code, (str, int)) else {})
    error = error if isinstance(error, dict) else {}
    upstream = {key: error.get(key) for key in ("type", "code", "param") if error.get(key) is not None}
    message = error.get("message")
    return (str(message) if message else None), upstream


def _connection_refused(error):
    """Return True when nothing was sent (the connection was never established)."""
    return _caused_by(error, ConnectionRefusedError, NewConnectionError)


def _caused_by(error, *types):
    """Return True when ``error`` or any exception in its chain of causes is one of ``types``."""
    seen, pending = set(), [error]
    while pending:
        cause = pending.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, types):
            return True
        pending.extend([cause.__cause__, cause.__context__, getattr(cause, "reason", None)])
        pending.extend(arg for arg in cause.args if isinstance(arg, BaseException))
    return False


PROVIDER_TYPES = {
    # Any OpenAI-compatible endpoint: POST {base_url}/images/generations, "Authorization: Bearer <key>".
    "openai": {"path": "/images/generations", "auth_header": "Authorization", "auth_scheme": "Bearer"},
    # Azure OpenAI: a deployment per model, the API version in the query string, "api-key: <key>".
    "azure": {"path": "/openai/deployments/{deployment}/images/generations", "auth_header": "api-key",
              "auth_scheme": None},
}
_ENTRY_FIELDS = {"type", "description", "base_url", "base_url_env", "api_key_env", "auth_header", "auth_scheme",
                 "api_version", "deployments"}
_AZURE_FIELDS = ("api_version", "deployments")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _is_http_url(text):
    parts = urlsplit(text) if isinstance(text, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _from_environment(name, settings, environ):
    """Return the value of variable ``name``: a config value of that name wins (tests), else the environment."""
    value = settings.get(name)
    if value is None:
        value = environ.get(name)
    return (value or "").strip()


def _check_entry(name, entry, where):
    """Raise ConfigError unless ``entry`` is a valid providers.json entry."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected an object")
    if "api_key" in entry or "key" in entry:
        raise ConfigError(f"{where}: credentials are never read from files; name the environment variable "
                          "that holds the key in 'api_key_env'")
    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kind = entry.get("type")
    if kind not in PROVIDER_TYPES:
        raise ConfigError(f"{where}.type: expected one of {', '.join(PROVIDER_TYPES)}")
    for field in ("api_key_env", "base_url_env"):
        value = entry.get(field)
        if (field == "api_key_env" or value is not None) and not (isinstance(value, str) and _ENV_NAME.match(value)):
            raise ConfigError(f"{where}.{field}: expected an environment variable name, e.g. XAI_API_KEY")
    if "base_url" in entry and not _is_http_url(entry["base_url"]):
        raise ConfigError(f"{where}.base_url: expected an http(s) URL")
    if "base_url" not in entry and "base_url_env" not in entry:
        raise ConfigError(f"{where}: needs base_url, base_url_env or both")
    header = entry.get("auth_header", PROVIDER_TYPES[kind]["auth_header"])
    if not (isinstance(header, str) and _HEADER_NAME.match(header)):
        raise ConfigError(f"{where}.auth_header: expected an HTTP header name")
    scheme = entry.get("auth_scheme", PROVIDER_TYPES[kind]["auth_scheme"])
    if scheme is not None and not (isinstance(scheme, str) and _HEADER_NAME.match(scheme)):
        raise ConfigError(f"{where}.auth_scheme: expected a word such as Bearer, or null for the key alone")
    if kind == "azure":
        if not isinstance(entry.get("api_version"), str) or not entry["api_version"]:
            raise ConfigError(f"{where}.api_version: required for type azure, e.g. \"2025-04-01-preview\"")
        deployments = entry.get("deployments")
        if (not isinstance(deployments, dict) or not deployments
                or not all(isinstance(value, str) and value for value in deployments.values())):
            raise ConfigError(f"{where}.deployments: required for type azure: {{model: deployment name}}")
    else:
        for field in _AZURE_FIELDS:
            if field in entry:
                raise ConfigError(f"{where}.{field}: only for type azure")


def _provider(name, entry, where, settings, environ):
    """Return the OpenAIProvider for a checked providers.json entry."""
    kind = PROVIDER_TYPES[entry["type"]]
    base_url = entry.get("base_url")
    if entry.get("base_url_env"):
        override = _from_environment(entry["base_url_env"], settings, environ)
        if override and not _is_http_url(override):
            raise ConfigError(f"environment variable {entry['base_url_env']} (provider '{name}' in {where}): "
                              "expected an http(s) URL")
        base_url = override or base_url
    azure = entry["type"] == "azure"
    return OpenAIProvider(
        name,
        base_url,
        _from_environment(entry["api_key_env"], settings, environ),
        settings["UPSTREAM_CONNECT_TIMEOUT"],
        settings["UPSTREAM_READ_TIMEOUT"],
        entry["api_key_env"],
        auth_header=entry.get("auth_header", kind["auth_header"]),
        auth_scheme=entry.get("auth_scheme", kind["auth_scheme"]),
        path=kind["path"],
        query={"api-version": entry["api_version"]} if azure else None,
        deployments=entry["deployments"] if azure else None,
        base_url_env=entry.get("base_url_env"),
    )


def build_providers(settings, environ=None):
    """Return {name: provider} for the providers in the ``PROVIDERS_FILE``, or raise ConfigError naming it."""
    environ = os.environ if environ is None else environ
    path = settings.get("PROVIDERS_FILE", "providers.json")
    document = load_json_file(path, "providers file")
    if not isinstance(document, dict) or not isinstance(document.get("providers"), dict) or not document["providers"]:
        raise ConfigError(f"providers file {path}: expected an object with a non-empty 'providers' object")
    providers = {}
    for name, entry in document["providers"].items():
        where = f"providers file {path}: providers.{name}"
        _check_entry(name, entry, where)
        providers[name] = _provider(name, entry, f"providers file {path}", settings, environ)
    return providers


def check_catalog(providers, book, path):
    """Raise ConfigError unless providers.json and the catalog name the same providers and deployments."""
    where = f"providers file {path}"
    for name in book.providers:
        if name not in providers:
            raise ConfigError(f"{where}: provider '{name}' is in the catalog {book.path} but not configured here")
    for name, provider in providers.items():
        if name not in book.providers:
            raise ConfigError(f"{where}: providers.{name}: not in the catalog {book.path}; add its models there "
                              "or remove it here")
        if provider.deployments is None:
            continue
        models = {model.name for model in book.image_models() if model.provider == name}
        missing, extra = sorted(models - set(provider.deployments)), sorted(set(provider.deployments) - models)
        if missing:
            raise ConfigError(f"{where}: providers.{name}.deployments: no deployment for {', '.join(missing)}")
        if extra:
            raise ConfigError(f"{where}: providers.{name}.deployments: {', '.join(extra)} is not an image model "
                              f"of '{name}' in the catalog {book.path}")
