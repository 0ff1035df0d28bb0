"""The bare forwarder: the gateway's stack (gunicorn, Flask, requests) with none of the gateway.

It sends ``POST /api/images/generations`` on, body unchanged, to ``$OPENAI_BASE_URL`` and returns
the answer as it came, holding its outbound sessions the way ``ziri_images.providers`` does.
bench/run.py runs it under the same gunicorn.conf.py to price the stack apart from the gateway.
"""

import os
import threading

import requests
from flask import Flask
from flask import Response
from flask import request

app = Flask(__name__)
upstream_url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/images/generations"
upstream_headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"}
sessions = threading.local()


@app.post("/api/images/generations")
def forward():
    session = getattr(sessions, "session", None)
    if session is None:
        session = sessions.session = requests.Session()
    answer = session.post(upstream_url, data=request.get_data(), headers=upstream_headers, timeout=(5, 180))
    return Response(answer.content, status=answer.status_code, content_type=answer.headers.get("Content-Type"))
