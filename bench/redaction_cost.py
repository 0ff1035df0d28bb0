"""What removing the provider key from answers costs: a large JSON answer and a large stream event.

    python -m bench.redaction_cost                 # ten 3 MB images, a 3 MB event
    python -m bench.redaction_cost --images 1 --image-mb 8

An answer that does not repeat the key is checked on its bytes only (two scans at memory
speed) and passed on as it is; one that does is walked and, for an event, encoded again. For
scale it also times what every answer costs anyway: parsing the JSON answer and encoding it
for the client. Each figure is the median of ``--rounds`` runs, in milliseconds.
"""

import argparse
import base64
import json
import os
import statistics
import time

from ziri_images.providers.answers import redact_document
from ziri_images.providers.streams import parse_event
from ziri_images.providers.streams import redacted_event
from ziri_images.strict_json import parse_provider_body

KEY = "sk-proj-" + "x" * 156  # as long as OpenAI's project keys


def median_ms(work, rounds):
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def answer(images, image_bytes, echo):
    prompt = f"a lighthouse (sent with {KEY})" if echo else "a lighthouse"
    data = [{"b64_json": base64.b64encode(os.urandom(image_bytes)).decode(), "revised_prompt": prompt}
            for _ in range(images)]
    return json.dumps({"created": 1, "data": data}).encode()


def event(image_bytes, echo):
    data = {"type": "image_generation.partial_image", "b64_json": base64.b64encode(os.urandom(image_bytes)).decode(),
            "partial_image_index": 0, **({"note": KEY} if echo else {})}
    return parse_event(f"event: image_generation.partial_image\ndata: {json.dumps(data)}".encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--image-mb", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    size = int(args.image_mb * 1024 * 1024)
    print(f"JSON answer: {args.images} images of {args.image_mb} MB ({args.images * size * 4 // 3 >> 20} MB of "
          f"base64); event: one {args.image_mb} MB image; median of {args.rounds} runs")
    for echo in (False, True):
        raw = answer(args.images, size, echo)
        body = parse_provider_body(raw)
        one = event(size, echo)
        label = "repeats the key" if echo else "without the key"
        print(f"  {label:16} redact answer {median_ms(lambda: redact_document(body, raw, KEY), args.rounds):8.2f} ms"
              f"   redact event {median_ms(lambda: redacted_event(one, KEY), args.rounds):8.2f} ms")
    raw = answer(args.images, size, False)
    body = parse_provider_body(raw)
    print(f"  for scale:       parse answer  {median_ms(lambda: parse_provider_body(raw), args.rounds):8.2f} ms"
          f"   encode answer {median_ms(lambda: json.dumps(body), args.rounds):8.2f} ms")


if __name__ == "__main__":
    main()
