"""The Procfile's web: line started the way honcho (and heroku local) start it: a shell, no activated venv."""

import os
import shutil
import sys

import pytest

from .conftest import PROJECT_DIR
from .conftest import Process
from .conftest import answers
from .conftest import clean_environment
from .conftest import free_port

pytestmark = pytest.mark.real_http


def gateway_env(tmp_path, path):
    port = free_port()
    shutil.copyfile(PROJECT_DIR / "pricing.json", tmp_path / "pricing.json")
    return port, clean_environment(
        PATH=path, PORT=port, HOST="127.0.0.1", WEB_CONCURRENCY=1, GUNICORN_WORKER_CLASS="gthread",
        ZIRI_KEYS_FILE=PROJECT_DIR / "keys.json", ZIRI_PRICING_FILE=tmp_path / "pricing.json",
        ZIRI_PROVIDERS_FILE=PROJECT_DIR / "providers.json", ZIRI_LEDGER_PATH=tmp_path / "var" / "ledger.jsonl",
        VIRTUAL_ENV="",
    )


def system_path():
    """Return $PATH without any virtualenv's bin directory (as a shell that never activated one)."""
    venv_bin = os.path.dirname(sys.executable)
    return os.pathsep.join(part for part in os.environ.get("PATH", os.defpath).split(os.pathsep)
                           if part and os.path.abspath(part) != os.path.abspath(venv_bin)) or os.defpath


def start_with_honcho(tmp_path, app_dir, path):
    port, env = gateway_env(tmp_path, path)
    honcho = [sys.executable, "-m", "honcho", "start", "-f", str(app_dir / "Procfile"), "-d", str(app_dir), "web"]
    process = Process(honcho, tmp_path / "honcho.log", env, cwd=app_dir)
    try:
        process.wait_until(answers(f"http://127.0.0.1:{port}/health"), "Procfile web: under honcho", seconds=30)
    finally:
        process.stop(sig=15)


def test_web_line_runs_from_the_readme_venv_without_activating_it(tmp_path):
    if not (PROJECT_DIR / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout (the README's set-up)")
    start_with_honcho(tmp_path, PROJECT_DIR, system_path())


def test_web_line_runs_with_the_buildpack_python_on_path(tmp_path):
    # A slug: the checkout without .venv, and a `python` on PATH that has requirements.txt installed.
    slug = tmp_path / "slug"
    shutil.copytree(PROJECT_DIR, slug, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "var", "*.egg-info"),
                    symlinks=True)
    buildpack_bin = tmp_path / "buildpack-bin"
    buildpack_bin.mkdir()
    python = buildpack_bin / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    start_with_honcho(tmp_path, slug, os.pathsep.join([str(buildpack_bin), system_path()]))
