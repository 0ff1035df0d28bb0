"""Black Forest Labs' FLUX models: one asynchronous job an image, submitted, polled and fetched.

``POST {base_url}/{model}`` with the key in ``x-key`` submits a job; BFL answers at once with
``{id, polling_url, cost, input_mp, output_mp}``, and bills the job then (``cost``, in credits
of $0.01). The job is polled at the ``polling_url`` BFL returned (never a URL the gateway
builds: it may be another host, e.g. a region's) until ``Ready``, and the image fetched from
``result.sample``, a signed URL that expires 10 minutes later (``bfl_jobs.py``). ``n`` images
are ``n`` jobs at once under the one reservation (``fanout.py``); the charge is the sum of
what BFL reported billing (``charged_by: "provider"`` in the catalog).

The request: ``size`` as ``width``/``height`` (the catalog checked it: multiples of 16, within
the model's megapixels) or, for models that take a ratio, the ``aspect_ratio`` the catalog
mapped it to; ``seed``, ``output_format``, ``safety_tolerance`` (and any other catalog
``params``) as given; an edit's images as ``input_image``, ``input_image_2``, ... (base64).
``response_format`` stays here: ``b64_json`` fetches the image, ``url`` answers BFL's signed URL.

Where the key goes: the polling URL comes in BFL's own answer, but it is still a URL the gateway
did not choose, and the key goes with every poll. It is sent only over https, or over plain http
to a loopback address or to the base URL's own host and port (where the key already goes: a local
stub, an operator's own endpoint). Anything else is refused (502, charged what BFL billed).
Redirects are never followed. The result's signed URL is fetched without the key.
"""

import base64
from urllib.parse import quote
from urllib.parse import urlsplit

from ..catalog.sizes import parse_size
from .base import LOOPBACK_HOSTS
from .base import HttpProvider
from .bfl_jobs import Job
from .fanout import fan_out
from .fanout import merge

# Fields of the priced payload that are the gateway's, not BFL's: never sent as they are.
GATEWAY_FIELDS = frozenset(("model", "prompt", "n", "size", "response_format", "stream", "partial_images",
                            "max_output_tokens"))
# Seconds before the first poll, and the most between two: BFL's jobs take a few seconds.
FIRST_POLL_SECONDS = 0.25
MAX_POLL_SECONDS = 2.0


def build_submit(payload, files=None):
    """Return the JSON body of a job's submit for the priced ``payload`` (an edit's ``files`` as input images)."""
    body = {"prompt": payload["prompt"]}
    size = parse_size(payload.get("size"))
    if size is not None:
        body["width"], body["height"] = size
    body.update((name, value) for name, value in payload.items() if name not in GATEWAY_FIELDS)
    for index, (_field, (_name, content, _type)) in enumerate(files or ()):
        body["input_image" if index == 0 else f"input_image_{index + 1}"] = base64.b64encode(content).decode("ascii")
    return body


class BflProvider(HttpProvider):
    """Black Forest Labs' API: ``POST {base_url}/{model}`` with ``x-key``, then the job's polling URL."""

    api_key_env = "BFL_API_KEY"

    def __init__(self, *args, poll_seconds=(FIRST_POLL_SECONDS, MAX_POLL_SECONDS), **kwargs):
        super().__init__(*args, **kwargs)
        self.poll_seconds = poll_seconds

    def url_for(self, model):
        return f"{self.base_url}/{quote(model, safe='')}"

    def may_send_key(self, url):
        """Return whether the key may go to ``url`` (a polling URL): https; http to loopback or the base's origin."""
        parts, base = urlsplit(url), urlsplit(self.base_url or "")
        if parts.scheme == "https" and parts.hostname:
            return True
        if parts.scheme != "http" or not parts.hostname:
            return False
        try:
            same_origin = (parts.scheme, parts.hostname, parts.port) == (base.scheme, base.hostname, base.port)
        except ValueError:  # a port that is not a number
            return False
        return parts.hostname in LOOPBACK_HOSTS or same_origin

    def send(self, call):
        """Run ``n`` jobs at once; return one ProviderResult of their images, or raise ProviderError."""
        body = build_submit(call.payload, call.files)
        url = self.url_for(call.payload["model"])
        as_url = call.payload.get("response_format") == "url"
        result = merge(fan_out(lambda index: Job(self, url, body, call.request_id, as_url).run(),
                               call.payload["n"]))
        if not result.body.get("usage"):
            del result.body["usage"]  # BFL reports no tokens: its bill is provider_billed
        return result
