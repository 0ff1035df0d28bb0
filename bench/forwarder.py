"""The bare forwarder: the gateway's stack (gunicorn, Flask, requests) with none of the gateway.

It sends ``POST /api/images/generations`` on, body unchanged, to ``$OPENAI_BASE_URL`` and returns
the answer as it came, holding its outbound sessions the way ``ziri_images.providers.openai`` does.
bench/run.py runs it under the same gunicorn.conf.py to price the stack apart from the gateway.
"""

import os
import queue

import requests
from flask import Flask
from flask import Response
from flask import request

app = Flask(__name__)
# gunicorn.conf.py wraps every worker's app in the send deadline, whose grace it reads from the app's
# config: the gateway's default reservation grace, so the forwarder's answers are sent as the gateway's are.
app.config["RESERVATION_GRACE_SECONDS"] = 60.0
upstream_url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/images/generations"
upstream_headers = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"}
idle_sessions = queue.LifoQueue()


@app.post("/api/images/generations")
def forward():
    try:
        session = idle_sessions.get_nowait()
    except queue.Empty:
        session = requests.Session()
    try:
        answer = session.post(upstream_url, data=request.get_data(), headers=upstream_headers, timeout=(5, 180))
        return Response(answer.content, status=answer.status_code, content_type=answer.headers.get("Content-Type"))
    finally:
        idle_sessions.put(session)
