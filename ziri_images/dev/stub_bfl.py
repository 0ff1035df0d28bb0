"""The stub's Black Forest Labs: FLUX jobs submitted, polled and fetched in BFL's shapes, offline.

``POST /bfl/v1/{model}`` (``x-key``) answers ``{id, polling_url, cost, input_mp, output_mp}`` at
once, ``cost`` in credits by BFL's published formula (``PRICES``, cents: the first megapixel, then
each further one, out and in, by exact megapixels; FLUX.1 per image), kept here rather than read
from the gateway's catalog so that the two can disagree as BFL and the catalog may. The job is
``Pending`` for its first poll at ``GET /bfl/v1/get_result?id=...``, then ``Ready`` with
``result.sample``, a URL of this stub serving a PNG (``/bfl/results/{id}.png``).

Directives in the prompt: ``[stub:bfl_status=Error]`` (or ``Failed``, ``Content Moderated``, ...)
ends the job so; ``[stub:polls=N]`` keeps it pending for N polls; ``[stub:expired]`` makes its
result URL answer 403, as an expired signed URL does.
"""

import base64
import binascii
import io
import re
import uuid

from flask import Response
from flask import jsonify
from flask import request

from ..uploads.imageinfo import NotAnImage
from ..uploads.imageinfo import image_info

# Cents: (first megapixel, each further megapixel) for FLUX.2; (per image, None) for FLUX.1.
PRICES = {"flux-2-pro": (3, 1.5), "flux-2-max": (7, 3), "flux-2-flex": (5, 5), "flux-2-klein-4b": (1.4, 0.1),
          "flux-2-klein-9b": (1.5, 0.2), "flux-kontext-pro": (4, None), "flux-kontext-max": (8, None),
          "flux-pro-1.1": (4, None), "flux-pro-1.1-ultra": (6, None)}
MAX_JOBS = 1000
_DIRECTIVE = re.compile(r"\[stub:([a-z_]+)(?:=([^\]]*))?\]")


def _detail(status, detail):
    response = jsonify({"detail": detail})
    response.status_code = status
    return response


def _input_megapixels(body):
    """Return the megapixels of the submit's input images (undecodable ones count as none)."""
    total = 0.0
    for name, value in body.items():
        if name == "input_image" or re.fullmatch(r"input_image_[2-8]", name):
            try:
                info = image_info(io.BytesIO(base64.b64decode(value, validate=True)))
            except (NotAnImage, binascii.Error, TypeError, ValueError):
                continue
            total += info.width * info.height / 1_000_000
    return total


def cost_in_credits(model, output_mp, input_mp):
    """Return what BFL's formula bills a job (credits, $0.01 each), by exact megapixels."""
    first, each = PRICES[model]
    if each is None:
        return first
    return round(first + max(0.0, output_mp - 1) * each + input_mp * each, 2)


def register_bfl(app, images, png):
    """Add BFL's routes to the stub ``app``; results are kept in ``images``, made by ``png(seed)``."""
    jobs = {}

    @app.post("/bfl/v1/<model>")
    def bfl_submit(model):
        if not request.headers.get("x-key"):
            return _detail(401, "Not authenticated")
        body = request.get_json(silent=True)
        if model not in PRICES:
            return _detail(404, "Not Found")
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return _detail(422, [{"loc": ["body", "prompt"], "msg": "Field required"}])
        width, height = body.get("width", 1024), body.get("height", 1024)
        output_mp, input_mp = round(width * height / 1_000_000, 2), round(_input_megapixels(body), 2)
        job_id = uuid.uuid4().hex
        jobs[job_id] = {"polls": 0, "directives": dict(_DIRECTIVE.findall(body["prompt"])), "prompt": body["prompt"]}
        if len(jobs) > MAX_JOBS:
            jobs.pop(next(iter(jobs)))
        return {"id": job_id, "polling_url": f"{request.host_url}bfl/v1/get_result?id={job_id}",
                "cost": cost_in_credits(model, output_mp, input_mp), "input_mp": input_mp, "output_mp": output_mp}

    @app.get("/bfl/v1/get_result")
    def bfl_result():
        if not request.headers.get("x-key"):
            return _detail(401, "Not authenticated")
        job_id = request.args.get("id", "")
        job = jobs.get(job_id)
        if job is None:
            return {"id": job_id, "status": "Task not found"}
        job["polls"] += 1
        directives = job["directives"]
        if job["polls"] <= int(directives.get("polls") or 1):
            return {"id": job_id, "status": "Pending", "progress": None}
        if "bfl_status" in directives:
            return {"id": job_id, "status": directives["bfl_status"], "details": "stub"}
        if job_id not in images:
            images[job_id] = b"expired" if "expired" in directives else png(job["prompt"])
        return {"id": job_id, "status": "Ready",
                "result": {"sample": f"{request.host_url}bfl/results/{job_id}.png", "seed": 1}}

    @app.get("/bfl/results/<job_id>.png")
    def bfl_sample(job_id):
        data = images.get(job_id)
        if data is None or data == b"expired":
            return Response("<Error><Code>AuthenticationFailed</Code></Error>", status=403, mimetype="text/xml")
        return Response(data, mimetype="image/png")
