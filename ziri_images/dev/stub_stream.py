"""The stub's streamed answers (``stream: true``), in OpenAI's Server-Sent Events shapes.

``partial_images`` ``<prefix>.partial_image`` events, then ``<prefix>.completed`` with the
image and ``usage``; the prefix is ``image_generation``, or ``image_edit`` for an edit. Each
partial image adds PARTIAL_IMAGE_TOKENS output tokens to the usage, as OpenAI bills them.
Prompt directives make faults: ``[stub:event_delay=S]`` before each event,
``[stub:nocompleted]``, ``[stub:stall=S]`` and ``[stub:break]`` after the first event.
"""

import base64
import json
import time

from flask import Response

PARTIAL_IMAGE_TOKENS = 100


def _event(name, data):
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode("utf-8")


def event_stream(response, body, directives, prefix, partial_png):
    """Return the streamed answer: partial images (``partial_png(index)``), then completed with usage, or a fault."""
    partial_images = int(body.get("partial_images") or 0)
    shape = {name: response[name] for name in ("size", "quality", "background", "output_format")}
    usage = json.loads(json.dumps(response["usage"]))
    usage["output_tokens"] += PARTIAL_IMAGE_TOKENS * partial_images
    usage["output_tokens_details"]["image_tokens"] += PARTIAL_IMAGE_TOKENS * partial_images
    usage["total_tokens"] += PARTIAL_IMAGE_TOKENS * partial_images
    event_delay = float(directives.get("event_delay") or 0)

    def events():
        for index in range(partial_images):
            time.sleep(event_delay)
            partial = base64.b64encode(partial_png(index)).decode("ascii")
            yield _event(f"{prefix}.partial_image", {"type": f"{prefix}.partial_image", "b64_json": partial,
                                                     "created_at": int(time.time()), **shape,
                                                     "partial_image_index": index})
            if index == 0 and "stall" in directives:
                time.sleep(float(directives["stall"] or 60))
            if index == 0 and "break" in directives:
                raise ConnectionAbortedError("the stub drops the connection mid-stream")
        if "nocompleted" in directives:
            return
        time.sleep(event_delay)
        yield _event(f"{prefix}.completed", {"type": f"{prefix}.completed", "b64_json": response["data"][0]["b64_json"],
                                             "created_at": int(time.time()), **shape, "usage": usage})

    return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
