"""Measure a gateway worker's peak memory while one key floods it with large edit uploads.

    python -m bench.upload_attack                         # this checkout's gateway
    python -m bench.upload_attack --project /tmp/before   # another checkout's (e.g. an older commit)
    python -m bench.upload_attack --attacker-limits none  # an attacker key with no limits at all
    python -m bench.upload_attack --keys 16               # the uploads spread over 16 attacker keys
    python -m bench.upload_attack --env GUNICORN_WORKER_CLASS=gthread   # any gateway setting

Starts, on 127.0.0.1, the stub upstream (every answer 2 s late) and the gateway under gunicorn
with the project's gunicorn.conf.py: one gevent worker (``--env`` to change), the file ledger.
The attacker key has ``requests_per_minute: 1`` and ``max_concurrent_requests: 1`` (or no
limits; ``--keys`` such keys take the uploads in turns); the bystander key has none.
``--uploads`` clients (16) each send one edit of ``--size-mib`` (60 MiB: two 30 MiB images) at
the same moment, all but its last KiB at once, then hold the rest for ``--hold`` seconds (6)
before finishing it: whatever the gateway reads of a body it holds meanwhile. Midway, the
bystander sends a small edit. Printed: the worker's peak RSS (``VmHWM`` in /proc/<pid>/status)
after start-up and a warm-up edit, and after the attack; the answers' statuses and codes; the
bystander's. Every process started here is stopped, by process group, at the end.
"""

import argparse
import json
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections import Counter

from bench.processes import PROJECT_DIR
from bench.processes import PYTHON
from bench.processes import Children
from bench.processes import answers
from bench.processes import free_port
from bench.processes import peak_memory_mib
from bench.processes import wait_until
from bench.servers import key_entry
from bench.servers import raw_key

STUB_DELAY = 2.0
TAIL_BYTES = 1024
ENV_PREFIXES = ("ZIRI_", "OPENAI_", "GUNICORN_")
ENV_NAMES = ("PORT", "HOST", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "DATABASE_URL", "PYTHONPATH")
LIMITS = {"limited": {"requests_per_minute": 1, "max_concurrent_requests": 1}, "none": {}}


def png_of_size(size):
    """Return a PNG header (1024x1024 RGB) padded with zeros to ``size`` bytes: read by header, never decoded."""
    ihdr = struct.pack(">IIBBBBB", 1024, 1024, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    head = b"\x89PNG\r\n\x1a\n" + chunk
    return head + bytes(size - len(head))


def multipart(fields, files):
    """Return (content type, body) of a multipart form: text ``fields``, ``files`` [(field, bytes)]."""
    boundary = "ziriBenchBoundary" + os.urandom(8).hex()
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for index, (name, data) in enumerate(files):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{index}.png"\r\n'
                     "Content-Type: image/png\r\n\r\n".encode())
        parts.append(data)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def edit_body(total_bytes, prompt):
    half = total_bytes // 2
    return multipart({"model": "gpt-image-1", "prompt": prompt}, [("image[]", png_of_size(half))] * 2)


def clean_environment(**settings):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(ENV_PREFIXES) and name not in ENV_NAMES}
    env.update({name: str(value) for name, value in settings.items()})
    return env


def post(port, key, content_type, body, hold=0.0, timeout=60):
    """Send an edit over a raw socket, all but its last KiB at once, the rest ``hold`` seconds later.

    Return (status, code, seconds). The answer is read beside the sending: a gateway may answer
    (and close) before the body is complete.
    """
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = (f"POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {raw_key(key)}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    received = []
    reader = threading.Thread(target=read_all, args=(sock, received), daemon=True)
    reader.start()
    try:
        view = memoryview(body)
        sock.sendall(head)
        sock.sendall(view[:-TAIL_BYTES])
        time.sleep(hold)
        sock.sendall(view[-TAIL_BYTES:])
    except OSError:
        pass  # answered (and closed) before the whole body was sent
    reader.join(timeout)
    sock.close()
    status, code = parse_answer(b"".join(received))
    return status, code, time.monotonic() - started


def read_all(sock, received):
    try:
        while chunk := sock.recv(65536):
            received.append(chunk)
    except OSError:
        pass


def parse_answer(data):
    if not data.startswith(b"HTTP/1.1 "):
        return None, "no answer"
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        document = json.loads(body)
    except ValueError:
        return status, "-"
    error = document.get("error")
    return status, (error.get("code") if isinstance(error, dict) else document.get("code")) or "-"


def attacker_names(keys):
    return [f"attacker{index}" for index in range(keys)]


def start_servers(children, project, directory, attacker_limits, extra_env, options):
    shutil.copyfile(os.path.join(project, "pricing.json"), os.path.join(directory, "pricing.json"))
    with open(os.path.join(directory, "keys.json"), "w") as keys:
        entries = [key_entry(name, attacker_limits) for name in attacker_names(options.keys)]
        json.dump({"keys": [*entries, key_entry("bystander", {})]}, keys)
    stub_port, port = free_port(), free_port()
    stub = children.start("stub", [PYTHON, "-m", "ziri_images.cli", "stub", "--host", "127.0.0.1", "--port",
                                   str(stub_port), "--delay", str(STUB_DELAY)],
                          clean_environment(PYTHONPATH=project), project)
    wait_until(children, stub, lambda: answers(f"http://127.0.0.1:{stub_port}/stats"), "answer", 30)
    env = clean_environment(
        PYTHONPATH=project, HOST="127.0.0.1", PORT=port, WEB_CONCURRENCY=1, GUNICORN_WORKER_CLASS="gevent",
        ZIRI_KEYS_FILE=os.path.join(directory, "keys.json"), ZIRI_PRICING_FILE=os.path.join(directory, "pricing.json"),
        ZIRI_LEDGER_PATH=os.path.join(directory, "ledger.jsonl"), OPENAI_BASE_URL=f"http://127.0.0.1:{stub_port}/v1",
        OPENAI_API_KEY="sk-local-stub-not-a-real-key", ZIRI_LOG_LEVEL="WARNING")
    env.update(extra_env)  # --env wins, e.g. GUNICORN_WORKER_CLASS=gthread
    command = [PYTHON, "-m", "gunicorn", "--config", os.path.join(project, "gunicorn.conf.py"),
               "--access-logfile", "/dev/null", "app:app"]
    gateway = children.start("gateway", command, env, project)
    wait_until(children, gateway, lambda: answers(f"http://127.0.0.1:{port}/health"), "answer", 30)
    pids = wait_until(children, gateway, lambda: [int(pid) for pid in re.findall(
        r"Booting worker with pid: (\d+)", children.log_text(gateway))], "boot a worker", 30)
    return port, pids[0]


def attack(port, worker, options):
    content_type, body = edit_body(options.size_mib * 1024 * 1024, "a hat")
    small_type, small_body = edit_body(64 * 1024, "a small hat")
    warm = post(port, "bystander", small_type, small_body)
    baseline = peak_memory_mib(worker)
    results = []
    barrier = threading.Barrier(options.uploads)
    names = attacker_names(options.keys)

    def client(name):
        barrier.wait()
        results.append(post(port, name, content_type, body, hold=options.hold))

    clients = [threading.Thread(target=client, args=(names[index % len(names)],)) for index in range(options.uploads)]
    for thread in clients:
        thread.start()
    time.sleep(options.hold / 2)
    bystander = post(port, "bystander", small_type, small_body)
    for thread in clients:
        thread.join(120)
    return warm, baseline, results, bystander, peak_memory_mib(worker)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default=PROJECT_DIR, help="the checkout whose gateway runs (default: this one)")
    parser.add_argument("--uploads", type=int, default=16, help="concurrent attacker edits (default 16)")
    parser.add_argument("--size-mib", type=int, default=60, help="each edit's body in MiB (default 60)")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds each client holds its last KiB (default 6)")
    parser.add_argument("--attacker-limits", choices=sorted(LIMITS), default="limited",
                        help="limited: 1 request/minute and 1 in flight (default); none: no limits")
    parser.add_argument("--keys", type=int, default=1, help="attacker keys taking the uploads in turns (default 1)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a gateway setting")
    options = parser.parse_args()
    project = os.path.abspath(options.project)
    extra_env = dict(item.split("=", 1) for item in options.env)
    directory = tempfile.mkdtemp(prefix="ziri-upload-attack-")
    children = Children(directory)
    try:
        port, worker = start_servers(children, project, directory, LIMITS[options.attacker_limits], extra_env,
                                     options)
        started = time.monotonic()
        warm, baseline, results, bystander, after = attack(port, worker, options)
        seconds = time.monotonic() - started
    finally:
        children.stop_all(grace=8)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"project {project}")
    print(f"attacker: {options.uploads} concurrent edits of {options.size_mib} MiB over {options.keys} key(s), limits "
          f"{json.dumps(LIMITS[options.attacker_limits])}, last KiB held {options.hold:g} s; "
          f"one {extra_env.get('GUNICORN_WORKER_CLASS', 'gevent')} worker; {seconds:.1f} s")
    print(f"warm-up edit: {warm[0]} {warm[1]}")
    print(f"worker peak RSS (VmHWM) before the attack: {baseline['VmHWM']:.0f} MiB")
    print(f"worker peak RSS (VmHWM) after the attack:  {after['VmHWM']:.0f} MiB "
          f"(+{after['VmHWM'] - baseline['VmHWM']:.0f} MiB; RSS now {after['VmRSS']:.0f} MiB)")
    answers_seen = Counter(f"{status} {code}" for status, code, _seconds in results)
    print("attacker answers: " + ", ".join(f"{count} x {answer}" for answer, count in sorted(answers_seen.items())))
    print(f"bystander's edit during the attack: {bystander[0]} {bystander[1]} in {bystander[2]:.1f} s")


if __name__ == "__main__":
    main()
