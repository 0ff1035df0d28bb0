"""The stub's Google routes: the Gemini API, Vertex AI and the OAuth2 token endpoint, for development and tests only.

``POST /v1beta/models/{model}:generateContent`` is the Gemini API: it wants a key in
``x-goog-api-key`` (or ``?key=``), any key. ``POST /v1/projects/{p}/locations/{l}/publishers/
google/models/{model}:generateContent`` is Vertex AI: it wants a Bearer access token this stub
issued and that has not expired. ``POST /token`` is Google's OAuth2 token endpoint for a service
account (the JWT-bearer grant, a form): it reads the signed assertion's claims, without checking
the signature (the stub knows no public key), and issues a token for an hour.

Both answer ``stub_gemini``'s shapes and refuse as Google does, ``{"error": {"code", "message",
"status"}}``: an unknown model, an aspect ratio or tier the model does not offer, more than one
candidate. Directives in the prompt: ``[stub:delay=S]``, ``[stub:status=429]`` (Google's error
of that status), and ``stub_gemini``'s (``[stub:blocked]``, ``[stub:served=1K]``...).
"""

import base64
import binascii
import json
import re
import secrets
import threading
import time

from flask import jsonify
from flask import request

from .stub_gemini import IMAGE_TOKENS
from .stub_gemini import answer
from .stub_gemini import aspect_ratios
from .stub_gemini import family

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_SECONDS = 3600
MAX_TOKENS = 10_000
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_DIRECTIVE = re.compile(r"\[stub:([a-z_]+)(?:=([^\]]*))?\]")


def google_error(status, message):
    response = jsonify({"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}})
    response.status_code = status
    return response


class IssuedTokens:
    """The access tokens the stub's token endpoint issued, each until it expires."""

    def __init__(self):
        self._lock = threading.Lock()
        self._expiries = {}
        self.issued = 0

    def issue(self):
        token = "ya29.stub-" + secrets.token_urlsafe(24)
        with self._lock:
            self._expiries[token] = time.monotonic() + TOKEN_SECONDS
            self.issued += 1
            if len(self._expiries) > MAX_TOKENS:
                self._expiries.pop(next(iter(self._expiries)))
        return token

    def valid(self, token):
        with self._lock:
            return self._expiries.get(token, 0) > time.monotonic()


def add_google_routes(app, in_flight, delay):
    """Add the Gemini API's, Vertex AI's and the token endpoint's routes to the stub ``app``."""
    tokens = IssuedTokens()
    app.extensions["stub_tokens"] = tokens

    @app.post("/v1beta/models/<model>:generateContent")
    def gemini(model):
        if not (request.headers.get("x-goog-api-key") or request.args.get("key")):
            return google_error(403, "Method doesn't allow unregistered callers (callers without established "
                                     "identity). Please use API Key or other form of API consumer identity.")
        with in_flight:
            return _generate(model, delay)

    @app.post("/v1/projects/<project>/locations/<location>/publishers/google/models/<model>:generateContent")
    def vertex(project, location, model):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not tokens.valid(token):
            return google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                                     "token, login cookie or other valid authentication credential.")
        with in_flight:
            return _generate(model, delay)

    @app.post("/token")
    def token():
        if request.form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {request.form.get('grant_type')}")
        claims = _claims(request.form.get("assertion", ""))
        if claims is None:
            return _oauth_error("invalid_grant", "Invalid JWT: not a signed assertion with iss, aud, iat and exp.")
        if claims["exp"] < time.time():
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token and in a "
                                                 "reasonable timeframe.")
        return {"access_token": tokens.issue(), "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}


def _oauth_error(error, description):
    response = jsonify({"error": error, "error_description": description})
    response.status_code = 400
    return response


def _claims(assertion):
    """Return the claims of a JWT assertion (header, claims, signature), or None when it is not one."""
    parts = assertion.split(".")
    if len(parts) != 3 or not parts[2]:
        return None
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in parts[:2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(claims, dict):
        return None
    if not all(isinstance(claims.get(name), str) for name in ("iss", "aud")) or not all(
            isinstance(claims.get(name), int) for name in ("iat", "exp")):
        return None
    return claims


def _generate(model, delay):
    """Answer one ``generateContent`` as Google would, or refuse it as Google does."""
    body = request.get_json(silent=True)
    contents = body.get("contents") if isinstance(body, dict) else None
    parts = [part for content in contents if isinstance(content, dict)
             for part in content.get("parts") or () if isinstance(part, dict)] if isinstance(contents, list) else []
    prompt = " ".join(part["text"] for part in parts if isinstance(part.get("text"), str))
    if not prompt:
        return google_error(400, "* GenerateContentRequest.contents: contents is not specified")
    if not model.startswith("gemini-") or "image" not in model:
        return google_error(404, f"models/{model} is not found for API version v1beta, or is not supported "
                                 "for generateContent.")
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    image_config = config.get("imageConfig") if isinstance(config.get("imageConfig"), dict) else {}
    ratio, tier = image_config.get("aspectRatio", "1:1"), image_config.get("imageSize", "1K")
    if ratio not in aspect_ratios(model):
        return google_error(400, f"Unsupported aspect ratio: {ratio}.")
    if tier not in IMAGE_TOKENS[family(model)]:
        return google_error(400, f"Unsupported image size: {tier}.")
    if config.get("candidateCount", 1) != 1:
        return google_error(400, "Multiple candidates is not enabled for this model.")
    directives = dict(_DIRECTIVE.findall(prompt))
    time.sleep(float(directives.get("delay") or delay))
    if "status" in directives:
        status = int(directives["status"].partition(":")[0])
        return google_error(status, f"Stub error {status}.")
    if "IMAGE" not in config.get("responseModalities", ["TEXT", "IMAGE"]):
        directives["noimage"] = ""
    images = sum(1 for part in parts if isinstance(part.get("inlineData"), dict))
    return answer(model, prompt, images, ratio, tier, directives)
