"""Read a provider's Server-Sent Events stream, one event at a time, as it arrives.

``ProviderStream.events()`` yields each event (its name, its decoded JSON data and its bytes,
line endings normalised to ``\\n``) as soon as its blank line has arrived: it reads what the
socket has (``read1``), never waiting for a fixed amount. A read that fails or times out
mid-stream (the call's deadline and the read timeout still apply, ``deadline.py``) becomes a
``ProviderError`` that may have billed; so does a stream larger than MAX_STREAM_BYTES, and an
``error`` event from the provider (its message redacted, never passed on as sent). Every event
loses the credential the gateway sent, wherever the provider repeats it (``redacted_event``).

A 2xx answer's label (``text/event-stream``) may be wrong either way (a proxy that rewrote it,
an endpoint that ignores ``stream``): ``starts_as_events`` reads its first bytes to tell, and
``read_all`` reads an answer that is not a stream (a JSON images body).
"""

import json
from dataclasses import dataclass

from urllib3.exceptions import HTTPError
from urllib3.exceptions import ReadTimeoutError

from ..redaction import REDACTED
from ..strict_json import parse_provider_body
from .answers import answer_secret
from .answers import caused_by
from .answers import redact_document
from .answers import upstream_error

READ_BYTES = 64 * 1024
# The final image and three partial ones, each a few MB of base64, fit many times over.
MAX_STREAM_BYTES = 128 * 1024 * 1024
# What an event stream's first line starts with (after a byte-order mark or blank lines): a field, or a comment.
EVENT_STREAM_STARTS = (b"event:", b"data:", b"id:", b"retry:", b":")


def is_error_event(event):
    """Return True for an event that reports a failure (``event: error``, or data with an ``error``)."""
    return event.type == "error" or (isinstance(event.data, dict) and "error" in event.data)


def is_event_stream(response):
    """Return True when ``response`` is a Server-Sent Events stream."""
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: ``name`` (its ``event:`` field), ``data`` (decoded JSON, or None) and ``raw``."""

    name: str | None
    data: object
    raw: bytes

    @property
    def type(self):
        """Return the event's ``type`` as OpenAI's data carries it, else its ``event:`` name."""
        if isinstance(self.data, dict) and isinstance(self.data.get("type"), str):
            return self.data["type"]
        return self.name


def parse_event(block):
    """Return the Event for one block of lines (without its blank line), or None for a comment-only block."""
    name, data = None, []
    for line in block.split(b"\n"):
        field, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"data":
            data.append(value)
    if name is None and not data:
        return None
    try:
        decoded = parse_provider_body(b"\n".join(data)) if data else None
    except (ValueError, RecursionError):
        decoded = None
    return Event(name, decoded, block + b"\n\n")


def encode_event(name, data):
    """Return the SSE bytes of an event named ``name`` (or unnamed) whose data is the JSON of ``data``."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return (f"event: {name}\n" if name else "").encode("utf-8") + f"data: {text}\n\n".encode("utf-8")


def redacted_event(event, secret):
    """Return ``event`` with ``secret`` replaced in its data and its bytes; the same event when it holds none.

    Only an event whose data holds the secret (escaped or not) is encoded again.
    """
    if secret is None:
        return event
    data = redact_document(event.data, event.raw, secret)
    raw = encode_event(event.name, data) if data is not event.data else event.raw
    if raw is event.raw and secret.encode("utf-8") not in raw:
        return event
    name = event.name.replace(secret, REDACTED) if event.name else event.name
    return Event(name, data, raw.replace(secret.encode("utf-8"), REDACTED.encode("utf-8")))


class ProviderStream:
    """The open event stream of one provider call; ``close()`` ends it and frees its connection."""

    def __init__(self, provider, response, provider_request_id):
        self.provider = provider
        self.response = response
        self.provider_status = response.status_code
        self.provider_request_id = provider_request_id
        self._secret = answer_secret(provider.api_key)
        self._start = b""  # bytes read by starts_as_events, still to be read by events or read_all
        self._closed = False

    def starts_as_events(self, labelled):
        """Return True when the answer is an event stream: it starts as one, or is ``labelled`` one and is not JSON.

        Its label is not enough: a proxy may label a JSON answer as events, or events as JSON.
        """
        needed = 1 if labelled else len(b"retry:")  # what tells it: its first byte, or its first field's name
        while len(self._start.lstrip()) < needed and len(self._start) < READ_BYTES:
            chunk = self._read_more()
            if not chunk:
                break
            self._start += chunk
        if labelled:
            return not self._start.lstrip().startswith(b"{")  # no event stream starts with one
        return self._start.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n").startswith(EVENT_STREAM_STARTS)

    def read_all(self, limit):
        """Return the whole answer (it is not a stream); raise ProviderError past ``limit`` bytes."""
        chunks, size = [], 0
        while chunk := self._read():
            size += len(chunk)
            if size > limit:
                raise self._broken(f"sent an answer larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def events(self):
        """Yield each Event as it completes; raise ProviderError if the stream breaks, stalls or is too large."""
        pending, size, carried_cr = bytearray(), 0, False
        while True:
            chunk = self._read()
            if not chunk:
                return  # an unfinished last event is dropped, as the SSE standard says
            size += len(chunk)
            if size > MAX_STREAM_BYTES:
                raise self._broken(f"sent a stream larger than {MAX_STREAM_BYTES} bytes")
            if carried_cr:
                chunk = b"\r" + chunk
            carried_cr = chunk.endswith(b"\r")
            if carried_cr:
                chunk = chunk[:-1]  # it may be the first half of a \r\n split between two reads
            start = max(0, len(pending) - 1)
            pending += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            while (end := pending.find(b"\n\n", start)) >= 0:
                event = parse_event(bytes(pending[:end]))
                del pending[:end + 2]
                start = 0
                if event is None:
                    continue
                event = redacted_event(event, self._secret)
                if is_error_event(event):
                    raise self._failed(event)
                yield event

    def _read(self):
        if self._start:
            start, self._start = self._start, b""
            return start
        return self._read_more()

    def _read_more(self):
        try:
            return self.response.raw.read1(READ_BYTES, decode_content=True)
        except (HTTPError, OSError) as error:
            if caused_by(error, ReadTimeoutError, TimeoutError):
                raise self._broken("did not finish its stream in time", 504)
            raise self._broken("dropped the connection in the middle of its stream")

    def _failed(self, event):
        """Return the ProviderError for an ``error`` event: never passed on as sent, it may repeat our key."""
        message, upstream = upstream_error(event.data)
        upstream = {name: self.provider.redacted(value) for name, value in upstream.items()}
        return self.provider.error(502, f"Provider '{self.provider.name}' ended its stream with an error: "
                                        f"{message or 'no message'}", may_have_billed=True,
                                   provider_status=self.provider_status, provider_request_id=self.provider_request_id,
                                   providerError={**upstream, "requestId": self.provider_request_id})

    def _broken(self, what, status=502):
        return self.provider.error(status, f"Provider '{self.provider.name}' {what}; the image may still have been "
                                           "generated.", may_have_billed=True, provider_status=self.provider_status,
                                   provider_request_id=self.provider_request_id)

    def close(self):
        """Close the connection (unread events are dropped), once."""
        if not self._closed:
            self._closed = True
            self.response.close()
