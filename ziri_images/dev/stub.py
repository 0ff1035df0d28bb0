"""A local stand-in for OpenAI's images API (and Google's, ``stub_google.py``; Stability's,
``stub_stability.py``), for development and tests only.

It answers ``POST /v1/images/generations`` and ``POST /v1/images/edits`` (multipart: ``image``
or ``image[]`` files, an optional ``mask``; the images' input tokens in ``usage``) in OpenAI's
shapes (``url`` or ``b64_json`` with a real PNG, ``revised_prompt`` for dall-e-3,
``size``/``quality`` and ``usage`` for GPT image models, with the output token counts the real
models report for each quality (``stub_usage.py``); xAI's
grok-imagine-image, which refuses ``size`` and ``quality``, and grok-imagine-image-2.0, which takes
``quality``; Recraft's models, which take ``style``) and never generates anything
real. It only listens where it is told (127.0.0.1 by default) and the gateway treats it like
any other provider: nothing falls back to it.

With ``stream: true`` (GPT image models) it answers Server-Sent Events as OpenAI does
(``stub_stream.py``): ``partial_images`` ``image_generation.partial_image`` events
(``image_edit.*`` for an edit), then ``image_generation.completed`` with the image and ``usage``
(each partial image adds 100 output tokens, as OpenAI bills them).

Directives in the prompt drive faults for tests: ``[stub:delay=2]``, ``[stub:status=500]``,
``[stub:status=400:content_policy_violation]``, ``[stub:fewer]``, ``[stub:nonjson]``,
``[stub:nodata]``, ``[stub:image_bytes=N]`` (each image, partial ones too, padded to N bytes:
a large answer); for streams ``[stub:event_delay=0.5]`` (seconds before each event),
``[stub:nocompleted]`` (ends after the partial images), ``[stub:stall=30]`` (stops sending
after the first event for that long), ``[stub:break]`` (drops the connection after the
first event), ``[stub:nostream]`` (answers with the JSON body, as an endpoint that ignores
``stream`` does) and ``[stub:mislabel]`` (the events labelled ``application/json``). Black Forest Labs' asynchronous
jobs are answered under ``/bfl/v1`` (``stub_bfl.py``).
"""

import base64
import hashlib
import re
import struct
import threading
import time
import uuid
import zlib

from flask import Flask
from flask import Response
from flask import jsonify
from flask import request

from ..uploads.imageinfo import NotAnImage
from ..uploads.imageinfo import image_info
from .stub_bfl import register_bfl
from .stub_google import add_google_routes
from .stub_stability import add_routes as add_stability_routes
from .stub_stream import event_stream
from .stub_tokens import image_input_tokens
from .stub_usage import gpt_image_fields

GPT_IMAGE_PREFIX = "gpt-image"
# xAI's current model: priced per image, sized by resolution and aspect_ratio, no usage.
XAI_IMAGE_MODELS = {"grok-imagine-image": ("size", "quality", "style"), "grok-imagine-image-2.0": ("size", "style")}
RECRAFT_PREFIX = "recraftv"  # Recraft's models (recraftv4_1, recraftv4_1_vector, ...): OpenAI's shape
KNOWN_MODELS = {"dall-e-2", "dall-e-3", *XAI_IMAGE_MODELS}
MAX_STORED_IMAGES = 1000
_DIRECTIVE = re.compile(r"\[stub:([a-z_]+)(?:=([^\]]*))?\]")


def png_bytes(seed, size=16, at_least=0):
    """Return a valid ``size``x``size`` solid-colour PNG whose colour is derived from ``seed``.

    ``at_least`` pads it to that many bytes with a comment (a large answer for tests).
    """
    red, green, blue = hashlib.sha256(seed.encode("utf-8")).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * size
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    pixels = zlib.compress(row * size)
    image = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", pixels), chunk(b"IEND", b"")]
    padding = at_least - sum(map(len, image)) - len(chunk(b"tEXt", b"Comment\x00"))
    if padding > 0:
        image.insert(2, chunk(b"tEXt", b"Comment\x00" + b" " * padding))
    return b"".join(image)


def _openai_error(status, message, error_type="invalid_request_error", code=None, param=None):
    response = jsonify({"error": {"message": message, "type": error_type, "param": param, "code": code}})
    response.status_code = status
    response.headers["x-request-id"] = "req_stub_" + uuid.uuid4().hex[:16]
    return response


class InFlight:
    """Count requests being answered (to show how many a client holds open at once)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.current = self.peak = self.total = 0

    def __enter__(self):
        with self._lock:
            self.current += 1
            self.total += 1
            self.peak = max(self.peak, self.current)

    def __exit__(self, *exc):
        with self._lock:
            self.current -= 1


def create_stub_app(delay=0.0):
    """Return the stub's Flask app; ``delay`` seconds are added to every generation."""
    app = Flask("ziri_images.dev.stub")
    images = {}
    in_flight = InFlight()

    @app.post("/v1/images/generations")
    def generate():
        with in_flight:
            return _generate(request, images, delay)

    @app.post("/v1/images/edits")
    def edit():
        with in_flight:
            return _edit(request, images, delay)

    @app.get("/v1/files/<image_id>.png")
    def image_file(image_id):
        data = images.get(image_id)
        if data is None:
            return _openai_error(404, "No such image.")
        return Response(data, mimetype="image/png")

    add_google_routes(app, in_flight, delay)
    add_stability_routes(app, in_flight, png_bytes, delay)
    register_bfl(app, images, lambda prompt: png_bytes(prompt))  # Black Forest Labs' jobs (stub_bfl.py)

    @app.get("/stats")
    def stats():
        return {"inFlight": in_flight.current, "peakInFlight": in_flight.peak, "requests": in_flight.total,
                "tokensIssued": app.extensions["stub_tokens"].issued}

    return app


def _edit(req, images, delay):
    uploads = [*req.files.getlist("image"), *req.files.getlist("image[]"), *req.files.getlist("mask")]
    if not req.files.getlist("image") and not req.files.getlist("image[]"):
        return _openai_error(400, "'image' is a required property", param="image")
    try:
        infos = [image_info(upload.stream) for upload in uploads]
    except NotAnImage:
        return _openai_error(400, "Invalid image file.", code="invalid_image_format", param="image")
    body = dict(req.form)
    for name in ("n", "output_compression", "partial_images"):
        if name in body:
            body[name] = int(body[name])
    if "stream" in body:
        body["stream"] = body["stream"] == "true"
    tokens = sum(image_input_tokens(info.width, info.height, body.get("input_fidelity")) for info in infos)
    return _generate(req, images, delay, body, tokens, "image_edit")


def _generate(req, images, delay, body=None, image_input=0, event_prefix="image_generation"):
    """Answer a generation (or an edit, its form read into ``body``) as OpenAI would, with its faults."""
    if not req.headers.get("Authorization", "").startswith("Bearer "):
        return _openai_error(401, "You didn't provide an API key.", code="missing_api_key")
    body = req.get_json(silent=True) if body is None else body
    refusal = _refusal(body)
    if refusal is not None:
        return refusal
    directives = dict(_DIRECTIVE.findall(body["prompt"]))
    time.sleep(float(directives.get("delay") or delay))
    fault = _fault(directives)
    if fault is not None:
        return fault
    count = int(body.get("n", 1))
    if "fewer" in directives and count > 1:
        count -= 1
    model = body.get("model", "dall-e-2")
    gpt_image = model.startswith(GPT_IMAGE_PREFIX)
    if body.get("stream") is True and not gpt_image:
        return _openai_error(400, "Streaming is only supported for the GPT image models.", param="stream")
    image_bytes = int(directives.get("image_bytes") or 0)
    response = {"created": int(time.time()), "data": _images(req, images, body, count, image_bytes)}
    if gpt_image:
        response.update(gpt_image_fields(body, model, count, image_input))
    return _answer(response, body, directives, event_prefix, image_bytes)


def _refusal(body):
    """Return OpenAI's error for a body without a prompt, an unknown model or a field xAI refuses, else None."""
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return _openai_error(400, "'prompt' is a required property", param="prompt")
    model = body.get("model", "dall-e-2")
    if model not in KNOWN_MODELS and not model.startswith((GPT_IMAGE_PREFIX, RECRAFT_PREFIX)):
        return _openai_error(404, f"The model '{model}' does not exist.", code="model_not_found", param="model")
    refused = [name for name in XAI_IMAGE_MODELS.get(model, ()) if name in body]
    if refused:
        return _openai_error(400, f"Argument not supported: {refused[0]}", param=refused[0])
    return None


def _fault(directives):
    """Return the answer a fault directive asks for (an error, HTML, no data), else None."""
    if "status" in directives:
        status, _, code = directives["status"].partition(":")
        return _openai_error(int(status), f"Stub error {status}.", code=code or None)
    if "nonjson" in directives:
        return Response("<html>upstream exploded</html>", status=200, mimetype="text/html")
    if "nodata" in directives:
        return {"created": int(time.time())}
    return None


def _images(req, images, body, count, image_bytes):
    """Return ``count`` images of the prompt: base64 data, or URLs to the PNGs kept in ``images``."""
    model = body.get("model", "dall-e-2")
    data = []
    for index in range(count):
        png = png_bytes(f"{body['prompt']}#{index}", at_least=image_bytes)
        if model.startswith(GPT_IMAGE_PREFIX) or body.get("response_format") == "b64_json":
            item = {"b64_json": base64.b64encode(png).decode("ascii")}
        else:
            image_id = uuid.uuid4().hex
            images[image_id] = png
            if len(images) > MAX_STORED_IMAGES:
                images.pop(next(iter(images)))
            item = {"url": f"{req.host_url}v1/files/{image_id}.png"}
        if model == "dall-e-3":
            item["revised_prompt"] = f"{body['prompt']} (revised by the local stub)"
        data.append(item)
    return data


def _answer(response, body, directives, event_prefix, image_bytes):
    """Return ``response`` as JSON, or as Server-Sent Events when the body asks for a stream."""
    if body.get("stream") is True and "nostream" not in directives:
        result = event_stream(response, body, directives, event_prefix,
                              lambda index: png_bytes(f"{body['prompt']}#partial{index}", at_least=image_bytes))
        if "mislabel" in directives:
            result.mimetype = "application/json"
    else:
        result = jsonify(response)
    result.headers["x-request-id"] = "req_stub_" + uuid.uuid4().hex[:16]
    return result
