"""Answer ``stream: true``: pass the provider's Server-Sent Events on as they arrive, and settle once.

SSE framing and the relay only: the money is the request's ``billing.Bill``, settled through it.
The request was validated, priced and reserved like any other (``api.serve``); the events are
relayed to the client one by one, unbuffered (``X-Accel-Buffering: no`` for nginx). The
charge comes from the ``completed`` event's ``usage`` (``image_generation.completed``, or
``image_edit.completed`` for an edit), settled before that event is passed on, with the
gateway's ``_meta`` (request id, cost) added to it as to a JSON answer. Whatever
happens, the request is settled exactly once (the Bill's invariant):

- the client goes away (the server closes the generator): the provider's stream is still
  read, up to its ``completed`` event (or its end, within the call's deadline), and charged
  from that event; nothing after ``completed`` is waited for. A client that stops reading is
  one: at its answer's send deadline (``server/send_deadline.py``) the server closes the generator;
- the stream ends, breaks or stalls without ``completed``: the reservation is charged
  (``chargedBy: reservation``, ``mayHaveBilled``) and the client gets an ``error`` event in
  OpenAI's shape, ``{"type": "error", "error": {"message", "type", "param", "code"}}``;
- anything unexpected: the reservation is charged, as for a call whose outcome is unknown.

A provider that answers with a JSON images body instead (it ignores ``stream``) is charged
from it as a JSON answer is, before the client hears back, and its image is served as the one
``completed`` event OpenAI would have streamed (``answered_events``).
"""

import json
import logging

from flask import Response
from flask import g
from flask import request
from flask import stream_with_context

from .errors import ApiError
from .errors import error_param
from .errors import error_type
from .providers.answers import ProviderError
from .providers.answers import ProviderResult
from .providers.streams import Event
from .providers.streams import encode_event

log = logging.getLogger("ziri_images")

COMPLETED = {"generations": "image_generation.completed", "edits": "image_edit.completed"}
IMAGE_FIELDS = ("size", "quality", "background", "output_format")
# An image's fields a JSON answer may carry, passed on in its completed event (OpenAI's has b64_json).
ANSWER_IMAGE_FIELDS = ("b64_json", "url", "revised_prompt")


def event_stream_response(events):
    """Return the streamed HTTP response for an iterable of SSE bytes."""
    response = Response(stream_with_context(events), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def stream_response(upstream, endpoint, bill):
    """Return the streamed answer to ``upstream``: its events relayed, or the JSON answer it was, as events."""
    if isinstance(upstream, ProviderResult):
        return event_stream_response(answered_events(upstream.body, endpoint, charged_meta(bill, upstream)))
    return event_stream_response(relay(upstream, endpoint, bill))


def charged_meta(bill, result):
    """Charge the stream's answer ``result`` (a ProviderResult) to ``bill``; return its ``_meta``, or raise ApiError."""
    return bill.meta(result, bill.charge(result))


def answered_events(body, endpoint, meta):
    """Yield the ``completed`` event of an images ``body`` (already charged: ``meta``), or an error without an image."""
    image = body["data"][0] if body["data"] else None  # a stream asks for one image
    if not isinstance(image, dict):
        yield error_event(ProviderError(502, f"Provider '{meta['provider']}' answered without an image.",
                                        may_have_billed=True))
        return
    name = COMPLETED[endpoint]
    delivered = {field: image[field] for field in ANSWER_IMAGE_FIELDS if isinstance(image.get(field), str)}
    shape = {field: body[field] for field in IMAGE_FIELDS if isinstance(body.get(field), str)}
    data = {"type": name, **delivered, "created_at": body.get("created"), **shape, "usage": body.get("usage")}
    yield with_meta(Event(name, data, b""), meta)


def completed_body(data):
    """Return the images body a ``completed`` event stands for, so it is charged like a non-stream answer."""
    image = data.get("b64_json")
    body = {name: data[name] for name in IMAGE_FIELDS if isinstance(data.get(name), str)}
    return {"created": data.get("created_at"), "data": [{"b64_json": image}] if isinstance(image, str) else [],
            **body, "usage": data.get("usage")}


def with_meta(event, meta):
    """Return the ``completed`` event with the gateway's ``_meta`` (its cost) added, as a JSON answer has it."""
    return encode_event(event.name, {**event.data, "_meta": meta})


def error_event(error):
    """Return an SSE ``error`` event for ``error`` (an ApiError), in the body shape of the request's path."""
    if request.path.startswith("/v1/"):
        detail = {"message": error.message, "type": error_type(error.status, error.code),
                  "param": error_param(error), "code": error.code, "requestId": g.request_id}
    else:
        detail = {"message": error.message, "code": error.code, "requestId": g.request_id}
    payload = json.dumps({"type": "error", "error": {**detail, **error.details}}, separators=(",", ":"))
    return f"event: error\ndata: {payload}\n\n".encode("utf-8")


def completed_result(upstream, event):
    """Return the ProviderResult a ``completed`` event stands for, so it is charged like a non-stream answer."""
    return ProviderResult(body=completed_body(event.data), provider_status=upstream.provider_status,
                          provider_request_id=upstream.provider_request_id)


def relay(upstream, endpoint, bill):
    """Yield the provider's events to the client as they arrive, settling ``bill`` once (see the module)."""
    completed = COMPLETED[endpoint]
    events = upstream.events()
    try:
        for event in events:
            if is_completed(event, completed):
                yield with_meta(event, charged_meta(bill, completed_result(upstream, event)))
                return  # the answer is complete: nothing after it is waited for
            yield event.raw
        if not bill.settled:
            bill.charge_reservation("no_completed_event", upstream)
            yield error_event(ProviderError(502, f"Provider '{upstream.provider.name}' ended its stream without "
                                                 "a completed event; the reservation was charged.",
                                            may_have_billed=True))
    except GeneratorExit:
        if not bill.settled:
            drain(events, completed, upstream, bill)
    except ApiError as error:  # a broken stream, or a charge the ledger refused
        bill.charge_reservation("broken" if isinstance(error, ProviderError) else "not_charged", upstream)
        yield error_event(error)
    except Exception:
        log.exception("stream failed requestId=%s", g.request_id)
        bill.charge_reservation("gateway_error", upstream, "gateway_error", 500)
        yield error_event(ApiError(500, "INTERNAL_ERROR", "Internal server error."))
    finally:
        bill.charge_reservation("closed", upstream, "gateway_error", 500)  # only if nothing settled it yet
        upstream.close()


def drain(events, completed, upstream, bill):
    """Read the rest of a stream the client left, and settle it: from ``completed``, else at the reservation."""
    try:
        for event in events:
            if is_completed(event, completed):
                bill.charge(completed_result(upstream, event))
                return
    except ApiError:
        pass  # settled at the reservation below (a ledger refusal leaves the reservation to expire)
    except Exception:
        log.exception("stream left by the client failed requestId=%s", g.request_id)
    bill.charge_reservation("client_gone", upstream)


def is_completed(event, completed):
    """Return True for the stream's ``completed`` event (the one whose usage is the charge)."""
    return event.type == completed and isinstance(event.data, dict)
