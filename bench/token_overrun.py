"""How far past its daily limit a key's spend can go when a provider bills more tokens than reserved.

Token bills are the one charge that may exceed its reservation, capped at the model's
``token_charge_cap`` (2 by default) times it. This runs the gateway in this process (Flask's test client, one thread per
client) against a loopback provider that answers every gpt-image-2 request (low, 1024x1024,
reserved $0.00598) with a usage of a million output tokens ($30, so every charge hits the cap),
after ``--delay`` seconds so that requests overlap. A key with a daily limit is driven by
``--clients`` concurrent clients until every one of them is refused; the spend is then compared
with the limit and with the bound limit + the reservations in flight (at most 2 x limit).

    python -m bench.token_overrun --limit 0.10 --clients 16 --max-concurrent 0 4 1
"""

import argparse
import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

from ziri_images import create_app
from ziri_images.keys.store import hash_key

PROJECT = Path(__file__).resolve().parent.parent
KEY = "ziri-bench-" + "0123456789abcdef" * 2
BODY = {"provider": "openai", "model": "gpt-image-2", "quality": "low", "size": "1024x1024",
        "prompt": "a lighthouse at dusk"}
ANSWER = json.dumps({"created": 1, "data": [{"b64_json": "AA=="}], "quality": "low", "size": "1024x1024",
                     "usage": {"input_tokens": 9, "input_tokens_details": {"text_tokens": 9, "image_tokens": 0},
                               "output_tokens": 1_000_000, "total_tokens": 1_000_009}}).encode()


def provider(delay):
    """Start the loopback provider; return its server."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            threading.Event().wait(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(limit, clients, max_concurrent, upstream, directory):
    """Drive one key until refused; return (spend, largest reservations in flight, charges)."""
    limits = {"daily_spend_limit": limit}
    if max_concurrent:
        limits["max_concurrent_requests"] = max_concurrent
    keys = directory / f"keys-{max_concurrent}.json"
    keys.write_text(json.dumps({"keys": [{"id": "key_bench", "user": "bench", "hash": hash_key(KEY),
                                          "status": "active", "limits": limits}]}))
    ledger = directory / f"ledger-{max_concurrent}.jsonl"
    app = create_app({"KEYS_FILE": str(keys), "PRICING_FILE": str(PROJECT / "pricing.json"),
                      "PROVIDERS_FILE": str(PROJECT / "providers.json"), "LEDGER_PATH": str(ledger),
                      "LEDGER_DURABLE": False, "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream.server_port}/v1",
                      "OPENAI_API_KEY": "sk-bench-provider-key-000000", "LOG_LEVEL": "ERROR"})

    def client():
        test_client = app.test_client()
        while True:
            status = test_client.post("/api/images/generations", json=BODY, headers={"X-API-Key": KEY}).status_code
            if status == 402:
                return

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    charges = [record for record in records if record["type"] == "charge"]
    in_flight, peak = 0, 0
    for record in records:
        in_flight += {"reservation": 1, "charge": -1}.get(record["type"], 0)
        peak = max(peak, in_flight)
    return sum(charge["cost"] for charge in charges), peak, charges


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=0.10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--max-concurrent", type=int, nargs="+", default=[0, 4, 1])
    args = parser.parse_args()
    upstream = provider(args.delay)
    print("| max_concurrent_requests | charges | reserved each | charged each | spend | spend / limit |"
          " peak in flight |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        for max_concurrent in args.max_concurrent:
            spend, peak, charges = run(args.limit, args.clients, max_concurrent, upstream, Path(directory))
            print(f"| {max_concurrent or 'none'} | {len(charges)} | {charges[0]['reserved']} | {charges[0]['cost']} "
                  f"| {spend:.6f} | {spend / args.limit:.2f} | {peak} |")
    upstream.shutdown()


if __name__ == "__main__":
    main()
