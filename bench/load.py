"""Send the load: wrk with bench/post.lua, one image generation per request."""

import json
import os
import time

from bench.ledger_bench import SUMMARY
from bench.processes import BENCH_DIR

SLOW_SECONDS = 2.0  # the slow upstream's answer time (figures 3 and 4)
# Connections to the slow upstream send their first request spread over this long: under the
# upstream period (so arrivals are steady) and under gunicorn's 2 s keep-alive, which also
# closes a new connection that has sent nothing yet.
RAMP_SECONDS = 1.5
CLIENT_TIMEOUT = 10
BODY = {"provider": SUMMARY["provider"], "model": SUMMARY["model"], "prompt": "a lighthouse at dawn",
        "size": SUMMARY["size"]}
SLOW_BODY = {**BODY, "prompt": f"{BODY['prompt']} [stub:delay={SLOW_SECONDS:g}]"}


def run_wrk(children, server, connections, seconds, body, pause_ms=0, ramp_ms=0, during=None,
            timeout=CLIENT_TIMEOUT):
    """Run wrk against ``server``; call ``during(started, wrk)`` while it runs; return its summary dict."""
    threads = min(2, connections)
    env = {**os.environ, "BENCH_BODY": json.dumps(body), "BENCH_API_KEY": server.api_key or "",
           "BENCH_PAUSE_MS": str(pause_ms), "BENCH_RAMP_MS": str(ramp_ms),
           "BENCH_CONNECTIONS": str(connections), "BENCH_THREADS": str(threads)}
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", f"{timeout}s", "-s", os.path.join(BENCH_DIR, "post.lua"), server.url]
    process = children.start(f"wrk-{server.name}-{connections}", command, env=env)
    started = time.monotonic()
    try:
        if during is not None:
            during(started, process)
        process.wait(timeout=seconds + timeout + 10)
    finally:
        children.stop(process, grace=1)
    return wrk_result(children, process)


def wrk_result(children, process):
    """Return the summary post.lua printed, with its seconds and its errors of every kind added up."""
    for line in children.log_tail(process, 4000).splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.split(" ", 1)[1])
            result["seconds"] = result["duration_us"] / 1e6
            result["errors"] = sum(result[name] for name in ("connect", "read", "write", "status"))
            return result
    raise RuntimeError(f"wrk printed no result:\n{children.log_tail(process)}")
