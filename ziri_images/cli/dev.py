"""The commands that start processes: ``serve`` (gunicorn), ``dev`` (the development setup), ``stub``."""

import os
import signal
import subprocess
import sys
import time

import requests

from .errors import CliError

DEFAULT_GATEWAY_PORT = 3100
DEFAULT_STUB_PORT = 3199


def add_commands(commands):
    """Add ``serve``, ``dev`` and ``stub`` to the command line."""
    serve_parser = commands.add_parser("serve", help="run the gateway under gunicorn (production)")
    serve_parser.add_argument("--config", default="gunicorn.conf.py", help="gunicorn config file")
    serve_parser.set_defaults(handler=serve)

    dev_parser = commands.add_parser(
        "dev", help="run the gateway locally, with the stub as each provider whose key is not set")
    dev_parser.add_argument("--config", default="gunicorn.conf.py", help="gunicorn config file")
    dev_parser.add_argument("--port", type=int, help="gateway port (default: $PORT, else 3100)")
    dev_parser.add_argument("--stub-port", type=int, default=DEFAULT_STUB_PORT, help="stub port (default 3199)")
    dev_parser.set_defaults(handler=dev)

    stub_parser = commands.add_parser("stub", help="run the local stub of OpenAI's and Google's image APIs")
    stub_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    stub_parser.add_argument("--port", type=int, default=DEFAULT_STUB_PORT, help="port (default 3199)")
    stub_parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    stub_parser.set_defaults(handler=stub)


def _gunicorn_command(args):
    return [sys.executable, "-m", "gunicorn", "--config", args.config, "app:app"]


def serve(args):
    """Run the gateway under gunicorn with the project's gunicorn.conf.py."""
    os.execv(sys.executable, _gunicorn_command(args))


def stub(args):
    """Run the local stand-in for every provider's API (OpenAI, Google, Stability AI, Recraft, Black Forest Labs)."""
    from werkzeug.serving import run_simple

    from ..dev.stub import create_stub_app

    print(f"local stub of the providers' APIs (OpenAI, Google, Stability AI, Recraft, BFL; development only) on "
          f"http://{args.host}:{args.port}", flush=True)
    run_simple(args.host, args.port, create_stub_app(delay=args.delay), threaded=True)


def _wait_until_up(url, process, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(f"the stub exited with code {process.returncode}")
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise CliError(f"the stub did not answer at {url}")


def _token_switched_lines(env, port):
    """Return the start-up lines saying whether /admin/ and /metrics are served, and which setting switches them on."""
    lines = []
    for path, what, setting in (("/admin/", "/admin/ (the spend dashboard)", "ZIRI_ADMIN_TOKEN"),
                                ("/metrics", "/metrics", "ZIRI_METRICS_TOKEN")):
        # Off, they answer a bare 404 on purpose (no hint to the outside): say it here instead.
        if env.get(setting, "").strip():
            lines.append(f"ziri-images dev: {what} is on at http://localhost:{port}{path} ({setting})")
        else:
            lines.append(f"ziri-images dev: {what} is off (404): set {setting} to serve it")
    return lines


def dev(args):
    """Run the gateway; a provider without a credential of its own (OpenAI, Gemini, Vertex) goes to the local stub."""
    from ..dev.stub_credentials import CREDENTIAL_VARIABLES
    from ..dev.stub_credentials import stub_environment
    from ..dev.stub_credentials import without_credentials

    env = dict(os.environ)
    children = []
    stubbed = without_credentials(env)
    for provider, variables in CREDENTIAL_VARIABLES.items():
        if provider not in stubbed:
            given = next(variable for variable in variables if env.get(variable))
            print(f"ziri-images dev: {given} is set: provider '{provider}' goes to the real API.", flush=True)
    if stubbed:
        stub_url = f"http://127.0.0.1:{args.stub_port}"
        stub_command = [sys.executable, "-m", "ziri_images.cli", "stub", "--port", str(args.stub_port)]
        children.append(subprocess.Popen(stub_command))
        _wait_until_up(stub_url + "/stats", children[0])
        for provider in stubbed:
            env.update(stub_environment(provider, stub_url))
            print(f"ziri-images dev: no {' or '.join(CREDENTIAL_VARIABLES[provider])} set: provider '{provider}' "
                  f"uses the LOCAL STUB at {stub_url} (no real images, no real cost).", flush=True)
    # An explicit --port wins over $PORT (which honcho and `heroku local` always set); else $PORT, else 3100.
    env["PORT"] = str(args.port) if args.port is not None else env.get("PORT", str(DEFAULT_GATEWAY_PORT))
    print("\n".join(_token_switched_lines(env, env["PORT"])), flush=True)
    gateway = subprocess.Popen(_gunicorn_command(args), env=env)
    children.append(gateway)
    signal.signal(signal.SIGTERM, lambda *_: gateway.terminate())
    try:
        return gateway.wait()
    except KeyboardInterrupt:
        gateway.terminate()
        return gateway.wait()
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=10)
