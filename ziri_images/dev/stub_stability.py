"""The stub's stand-in for Stability AI's Stable Image API (development and tests only).

``POST /v2beta/stable-image/generate/{ultra|core|sd3}`` takes Stability's multipart form and,
with ``Accept: application/json``, answers ``{"image": <base64 PNG>, "finish_reason", "seed"}``
as Stability does: one image a call. Its errors have Stability's shape (``{"id", "name",
"errors"}``). Prompt directives: ``[stub:filtered]`` (``finish_reason: CONTENT_FILTERED``),
``[stub:moderation]`` (403 ``content_moderation``), ``[stub:status=500]``, ``[stub:delay=2]``.
"""

import base64
import re
import time
import uuid

from flask import jsonify
from flask import request

ENDPOINTS = {"ultra", "core", "sd3"}
SD3_MODELS = {"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"}
ASPECT_RATIOS = {"16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"}
_DIRECTIVE = re.compile(r"\[stub:([a-z_]+)(?:=([^\]]*))?\]")


def stability_error(status, name, *errors):
    """Return a response in Stability's error shape."""
    response = jsonify({"id": uuid.uuid4().hex, "name": name, "errors": list(errors)})
    response.status_code = status
    return response


def add_routes(app, in_flight, png_bytes, delay):
    """Add Stability's generate endpoints to the stub ``app`` (``png_bytes(seed)`` draws each image)."""

    @app.post("/v2beta/stable-image/generate/<endpoint>")
    def stability_generate(endpoint):
        with in_flight:
            return _generate(endpoint, png_bytes, delay)


def _generate(endpoint, png_bytes, delay):
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return stability_error(401, "unauthorized", "authorization: missing or invalid")
    if endpoint not in ENDPOINTS:
        return stability_error(404, "not_found", f"no such endpoint: {endpoint}")
    if request.accept_mimetypes.best != "application/json":
        return stability_error(400, "bad_request", "this stub answers Accept: application/json only")
    form, problems = request.form, []
    if not form.get("prompt"):
        problems.append("prompt: is required")
    if form.get("aspect_ratio", "1:1") not in ASPECT_RATIOS:
        problems.append(f"aspect_ratio: must be one of {', '.join(sorted(ASPECT_RATIOS))}")
    if endpoint == "sd3" and form.get("model", "sd3.5-large") not in SD3_MODELS:
        problems.append("model: unknown")
    if endpoint != "sd3" and "model" in form:
        problems.append("model: not accepted by this endpoint")
    if problems:
        return stability_error(400, "bad_request", *problems)
    directives = dict(_DIRECTIVE.findall(form["prompt"]))
    time.sleep(float(directives.get("delay") or delay))
    if "status" in directives:
        return stability_error(int(directives["status"]), "stub_error", f"Stub error {directives['status']}.")
    if "moderation" in directives:
        return stability_error(403, "content_moderation", "Your request was flagged by our content moderation system.")
    seed = int(form.get("seed") or 0) or int(uuid.uuid4().int % 4294967294)
    image = base64.b64encode(png_bytes(f"{form['prompt']}#{seed}")).decode("ascii")
    finish = "CONTENT_FILTERED" if "filtered" in directives else "SUCCESS"
    return jsonify({"image": image, "finish_reason": finish, "seed": seed})
