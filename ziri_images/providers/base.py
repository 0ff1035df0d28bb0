"""The adapter every provider implements: one call in, one result (or one error) out.

A provider module subclasses ``Provider`` and implements ``send(call)``: build its request from
the ``ProviderCall`` (a generation already validated, priced and reserved: ``catalog/quoting.py``
made its payload), send it within ``call_deadline`` (``deadline.py``; a call may be several HTTP
requests, a submit and its polls, or one request per image), and read the answer into a
``ProviderResult``, or raise a ``ProviderError`` (``answers.py`` maps transport failures and
redacts). An adapter that can stream sets ``supports_stream`` and answers a ``stream`` call with
an object that yields its events (``streams.ProviderStream``). Adding a provider is one module
beside ``openai.py`` (``google.py`` reads another API's shape), its type in ``entries.py`` and
``config.py``, and its models in the catalog. A provider that makes one image a call answers
``n`` images with that many calls at once (``fanout.py``).
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from ..errors import ApiError
from ..redaction import redact
from .deadline import Transport

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(slots=True)
class ProviderCall:
    """One call of a provider: ``operation`` generations or edits; ``files`` an edit's uploads."""

    operation: str
    payload: dict  # the priced generation: model, prompt, n and the priced parameters, as quoting.py built them
    request_id: str
    files: list | None = None  # [(field, (name, stream, type))]
    stream: bool = False


@dataclass(frozen=True)
class ProviderResult:
    """A successful answer, in the gateway's (OpenAI's) images shape whatever the provider's own.

    ``body["data"]`` holds the images (``b64_json`` or ``url``), ``body["usage"]`` the tokens in
    OpenAI's usage shape (what ``catalog/tokens.py`` prices); ``provider_billed`` is what the
    provider says it charged (USD), when it says so.
    """

    body: dict
    provider_status: int
    provider_request_id: str | None
    provider_billed: float | None = None
    # Images the provider billed but did not deliver (one of ``n`` calls refused for safety after it
    # generated: Stability's CONTENT_FILTERED): charged at the price per image beside those delivered.
    billed_undelivered: int = 0

    @property
    def images(self):
        """Return the images delivered: dicts with ``b64_json`` or ``url``."""
        return self.body["data"]

    @property
    def usage(self):
        """Return the usage the provider reported, or None."""
        return self.body.get("usage")


class ProviderError(ApiError):
    """A provider call that produced no usable images.

    ``billed_usage`` / ``billed_amount`` / ``billed_images``: what the provider says it billed for
    the call anyway (a prompt its safety system refused after reading it: Google's usage, a fixed
    amount, or a number of images at the request's price per image, which only the quote knows:
    Stability bills a filtered image): the charge is then that, not the reservation or nothing.
    """

    def __init__(self, status, message, *, provider_status=None, provider_request_id=None,
                 may_have_billed=False, should_retry=False, headers=None, code="LLM_PROVIDER_ERROR",
                 billed_usage=None, billed_amount=None, billed_images=None, **details):
        super().__init__(status, code, message, headers=headers, should_retry=should_retry, **details)
        self.provider_status = provider_status
        self.provider_request_id = provider_request_id
        self.may_have_billed = may_have_billed
        self.billed_usage = billed_usage
        self.billed_amount = billed_amount
        self.billed_images = billed_images

    @property
    def charges_reservation(self):
        """True when the provider accepted the call (a 2xx status) but its answer could not be used.

        It may have generated, and billed, everything asked: the reservation is the charge.
        """
        return self.provider_status is not None and 200 <= self.provider_status < 300

    def charge_fields(self, reserved, token_prices=None, price_per_image=None):
        """Return the charge record's fields for this failure.

        What the provider says it billed (its usage, priced by ``token_prices``; its amount; or its
        images at ``price_per_image``, the quote's); else ``reserved`` after a 2xx; else nothing.
        """
        usage_cost = token_prices.cost(self.billed_usage) if token_prices and self.billed_usage else None
        amount = self.billed_amount
        if amount is None and self.billed_images and price_per_image is not None:
            amount = round(self.billed_images * price_per_image, 6)
        if amount is not None:
            charged = {"imagesReturned": 0, "cost": amount, "chargedBy": "provider"}
            if self.billed_amount is not None:
                charged["providerBilled"] = self.billed_amount  # the provider's own figure (BFL's cost)
            if self.billed_images:
                charged["imagesBilled"] = self.billed_images
        elif usage_cost is not None:
            charged = {"imagesReturned": 0, "cost": min(usage_cost, reserved), "tokenCost": usage_cost,
                       "chargedBy": "tokens", "usage": self.billed_usage}
        elif self.charges_reservation or self.billed_usage is not None:
            charged = {"imagesReturned": None, "cost": reserved, "chargedBy": "reservation"}
        else:
            charged = {"imagesReturned": 0, "cost": 0.0}
        return {**charged, "providerStatus": self.provider_status, "providerRequestId": self.provider_request_id,
                "mayHaveBilled": self.may_have_billed, "shouldRetry": self.should_retry}


class Provider:
    """A configured provider: ``name``, its credential ``api_key`` (from ``api_key_env``), its ``base_url``.

    ``call_deadline`` bounds a whole call in seconds; a reservation must outlive it (gateway.py).
    """

    supports_stream = False
    name = api_key = api_key_env = base_url = base_url_env = deployments = None
    call_deadline = 0.0

    def error(self, status, message, **kwargs):
        """Return a ProviderError naming this provider, its message redacted."""
        return ProviderError(status, self.redacted(message), provider=self.name, **kwargs)

    def redacted(self, value):
        """Return a text the provider sent with our credential (or anything key-shaped) removed."""
        return redact(value, (self.api_key,)) if isinstance(value, str) else value

    def send(self, call):
        """Return the ProviderResult for ``call`` (a stream's: its ProviderStream), or raise ProviderError."""
        raise NotImplementedError

    def generate(self, payload, request_id):
        """Generate images from ``payload``; return a ProviderResult, or raise ProviderError."""
        return self.send(ProviderCall("generations", payload, request_id))

    def edit(self, payload, files, request_id):
        """Edit the uploaded ``files`` as ``payload`` asks; return a ProviderResult, or raise ProviderError."""
        return self.send(ProviderCall("edits", payload, request_id, files))

    def open_stream(self, payload, request_id, files=None):
        """Return the open ProviderStream (or the ProviderResult of an answer that is not a stream)."""
        return self.send(ProviderCall("generations" if files is None else "edits", payload, request_id, files, True))

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
            raise ApiError(500, "PROVIDER_KEY_MISSING", f"No {what} configured for provider '{self.name}' "
                                                        f"(set {variable}).")


class HttpProvider(Provider):
    """A provider reached at one base URL with one key, its calls sent through one pooled ``Transport``.

    What every adapter is built from (OpenAI's, Google's, Stability AI's, Black Forest Labs'):
    providers.json's entry (``from_entry``), the (connect, read) timeouts and the call's deadline,
    their sum. Proxy settings are read once: left to requests, they are looked up on every call.
    """

    def __init__(self, name, base_url, api_key, connect_timeout, read_timeout, api_key_env=None, *,
                 base_url_env=None, ca_bundle=None):
        self.name = name
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.api_key_env = api_key_env or type(self).api_key_env  # the adapter's own variable by default
        self.base_url_env = base_url_env
        self.timeout = (connect_timeout, read_timeout)
        # The whole call (for an asynchronous provider: submit, polls and fetch) ends by then; the
        # reservation outlives it (gateway.py).
        self.call_deadline = connect_timeout + read_timeout
        self.transport = Transport(self.timeout, ca_bundle or True,
                                   requests.utils.get_environ_proxies(self.base_url or ""))

    @classmethod
    def from_entry(cls, entry, connect_timeout, read_timeout, ca_bundle=None):
        """Return the provider providers.json's ``entry`` describes."""
        return cls(entry.name, entry.base_url, entry.api_key, connect_timeout, read_timeout, entry.api_key_env,
                   base_url_env=entry.base_url_env, ca_bundle=ca_bundle)

    def sent_secret(self):
        """Return the credential a call sends (an answer that repeats it is redacted)."""
        return self.api_key
