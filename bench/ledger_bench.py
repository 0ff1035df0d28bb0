"""Ledger fixtures for the benchmarks (bench/run.py, bench/limits_overhead.py): pre-filled ledgers.

``write_ledger`` fills a file with settled requests (a ``reservation`` and its ``charge``), shaped
exactly as the file store writes them for ``api.create_generation``, spread over
the current month for a few keys. Every line goes through the ledger's own encoder once, as a
template, so a million lines take seconds.

The durable-append throughput (figure 6) is bench/store_throughput.py's, for every store.
"""

import os
import socket
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from ziri_images.ledger.money import format_ts
from ziri_images.ledger.records import encode_record

#: The request every bench line and every bench call describes: DALL-E 2, 256x256, one image.
PRICE = 0.016
SUMMARY = {"provider": "openai", "model": "dall-e-2", "quality": "standard", "size": "256x256",
           "imagesRequested": 1, "pricePerImage": PRICE, "currency": "USD"}
# The reservation lifetime the gateway uses by default: connect + read timeout + grace.
RESERVATION_TTL = 5.0 + 180.0 + 60.0


def _template(record):
    """Return a %-format of the encoded ``record`` whose ``@@name@@`` strings become %s slots."""
    line = encode_record(record).decode("utf-8").replace("%", "%%")
    for name in ("ts", "request", "expires", "reserved_at", "latency"):
        line = line.replace(f'"@@{name}@@"', f'"%({name})s"' if name != "latency" else f"%({name})s")
    return line


def _templates(key_id, user):
    worker = f"{socket.gethostname()}:1:0badc0de"  # pid 1 is never a gunicorn worker
    reservation = {"ts": "@@ts@@", "type": "reservation", "requestId": "@@request@@", **SUMMARY,
                   "keyId": key_id, "user": user, "amount": PRICE, "expiresAt": "@@expires@@", "worker": worker}
    charge = {"ts": "@@ts@@", "type": "charge", "requestId": "@@request@@", **SUMMARY, "user": user,
              "keyId": key_id, "status": "succeeded", "httpStatus": 200, "imagesReturned": 1, "cost": PRICE,
              "providerStatus": 200, "providerRequestId": "req_bench_0123456789abcdef", "latencyMs": "@@latency@@",
              "reservedAt": "@@reserved_at@@", "reserved": PRICE}
    return _template(reservation), _template(charge)


def ledger_window(now):
    """Return (first, last) times for pre-filled lines: this month, ending two minutes ago."""
    last = now - timedelta(minutes=2)
    first = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    if last - first < timedelta(hours=1):
        first = last - timedelta(days=1)  # early on the 1st: still replayed (the day before is kept)
    return first, last


def write_ledger(path, lines, keys, now):
    """Write ``lines`` ledger lines (settled request pairs, oldest first) for ``keys`` [(id, user)]."""
    templates = [_templates(key_id, user) for key_id, user in keys]
    first, last = ledger_window(now)
    pairs = lines // 2
    step = (last - first).total_seconds() / max(pairs, 1)
    start = first.timestamp()
    with open(path, "w", encoding="utf-8") as file:
        chunk = []
        for index in range(pairs):
            reservation, charge = templates[index % len(templates)]
            reserved_epoch = start + index * step
            reserved_at = format_ts(datetime.fromtimestamp(reserved_epoch, timezone.utc))
            latency = step / 2
            values = {
                "request": f"req_{index:032x}",
                "reserved_at": reserved_at,
                "expires": format_ts(datetime.fromtimestamp(reserved_epoch + RESERVATION_TTL, timezone.utc)),
                "latency": round(latency * 1000),
            }
            chunk.append(reservation % {**values, "ts": reserved_at})
            charged_at = format_ts(datetime.fromtimestamp(reserved_epoch + latency, timezone.utc))
            chunk.append(charge % {**values, "ts": charged_at})
            if len(chunk) >= 20000:
                file.write("".join(chunk))
                chunk = []
        file.write("".join(chunk))
        # On disk before the gateway starts, as a ledger that already existed would be: otherwise
        # the gateway's first fsync would also write back the whole freshly generated file.
        file.flush()
        os.fsync(file.fileno())
