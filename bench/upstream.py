"""A cheap stand-in for OpenAI's images API that holds thousands of slow requests at once.

bench/run.py points the direct load, the bare forwarder and the gateway at it. It answers every
``POST /v1/images/generations`` with a one-image ``url`` response after ``--delay`` seconds, or
after the prompt's ``[stub:delay=N]`` directive (as ``ziri_images.dev.stub`` does). It is one
asyncio process speaking HTTP/1.1 with keep-alive and nothing else, so a request costs it a
small fraction of a millisecond and a waiting one only a coroutine: it is never the bottleneck.

``GET /stats`` reports ``inFlight``, ``peakInFlight``, ``requests`` and ``completed`` like
``ziri_images.dev.stub``; ``POST /stats/reset`` zeroes the peak and the counters between runs.
"""

import argparse
import asyncio
import json
import re
import signal
import uuid

_DELAY = re.compile(rb"\[stub:delay=([0-9.]+)\]")


class Upstream:
    """Answer image generations after a delay and count the requests held at once."""

    def __init__(self, delay, port):
        self.delay = delay
        self.in_flight = self.peak = self.requests = self.completed = 0
        self.images = json.dumps({
            "created": 1767225600,
            "data": [{"url": f"http://127.0.0.1:{port}/v1/files/bench.png"}],
        }).encode()

    def stats(self):
        return json.dumps({"inFlight": self.in_flight, "peakInFlight": self.peak,
                           "requests": self.requests, "completed": self.completed}).encode()

    async def answer(self, method, path, body):
        """Return (status, body) for one request."""
        if method == b"POST" and path.endswith(b"/images/generations"):
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                directive = _DELAY.search(body)
                delay = float(directive.group(1)) if directive else self.delay
                if delay:
                    await asyncio.sleep(delay)
            finally:
                self.in_flight -= 1
            self.completed += 1
            return 200, self.images
        if method == b"GET" and path == b"/stats":
            return 200, self.stats()
        if method == b"POST" and path == b"/stats/reset":
            self.peak = self.in_flight
            self.requests = self.completed = 0
            return 200, self.stats()
        return 404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}'

    async def serve_connection(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, header_block = head.partition(b"\r\n")
                method, path, _ = request_line.split(b" ", 2)
                length, close = 0, False
                for line in header_block.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection":
                        close = value.strip().lower() == b"close"
                body = await reader.readexactly(length) if length else b""
                status, payload = await self.answer(method, path, body)
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    b"x-request-id: req_bench_%s\r\n\r\n%s"
                    % (status, b"OK" if status == 200 else b"Not Found", len(payload),
                       uuid.uuid4().hex[:16].encode(), payload)
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass  # the client went away or sent something this stub does not speak
        finally:
            writer.close()


async def main(host, port, delay):
    upstream = Upstream(delay, port)
    server = await asyncio.start_server(upstream.serve_connection, host, port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(f"bench upstream on http://{host}:{port}/v1 (delay {delay}s)", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.delay))
