"""The Heroku-style build: requirements.txt in step with setup.cfg, .python-version, the Procfile, bin/ on a dyno."""

import configparser
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_DIR = Path(__file__).resolve().parent.parent


def install_requires():
    config = configparser.ConfigParser()
    config.read(PROJECT_DIR / "setup.cfg")
    return [Requirement(line) for line in config["options"]["install_requires"].split("\n") if line.strip()]


def pins():
    found = {}
    for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not pinned: {line}"
            found[canonicalize_name(requirement.name)] = specifiers[0].version
    return found


def test_every_dependency_is_pinned_within_setup_cfg_bounds():
    pinned = pins()
    for requirement in install_requires():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is in setup.cfg but not in requirements.txt"
        assert requirement.specifier.contains(pinned[name]), \
            f"requirements.txt pins {name}=={pinned[name]}, outside setup.cfg's {requirement.specifier}"


def test_python_version_satisfies_python_requires():
    config = configparser.ConfigParser()
    config.read(PROJECT_DIR / "setup.cfg")
    version = (PROJECT_DIR / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), "the buildpack takes a major.minor version"
    minimum = config["options"]["python_requires"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


def test_procfile_lines_run_python_through_the_resolver():
    lines = dict(line.split(":", 1) for line in (PROJECT_DIR / "Procfile").read_text().splitlines() if line.strip())
    assert lines["web"].split()[:3] == ["bin/run-python", "-m", "gunicorn"]
    assert lines["release"].split() == ["bin/run-python", "-m", "ziri_images.cli", "db", "migrate"]
    assert (PROJECT_DIR / "bin" / "run-python").stat().st_mode & 0o111


@pytest.fixture(scope="module")
def buildpack_python(tmp_path_factory):
    """Return a directory holding ``python3`` and ``python`` with the dependencies but not the project.

    As the buildpack leaves it after ``pip install -r requirements.txt``: a fresh virtualenv that sees
    this one's site-packages as a plain path (so the editable install's hook is not loaded).
    """
    base = tmp_path_factory.mktemp("buildpack")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", base / "venv"], check=True, timeout=120)
    site = next((base / "venv" / "lib").glob("python3*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    tools = base / "bin"
    tools.mkdir()
    for name in ("python", "python3"):
        # A script, not a symlink: the interpreter finds its virtualenv from the path it was started by.
        (tools / name).write_text(f'#!/bin/sh\nexec "{base / "venv" / "bin" / "python3"}" "$@"\n')
        (tools / name).chmod(0o755)
    (tools / "dirname").symlink_to(shutil.which("dirname"))
    return tools


@pytest.fixture
def slug(tmp_path):
    """Return a copy of the checkout as the buildpack ships it: no virtualenv, no installed project."""
    app = tmp_path / "app"
    shutil.copytree(PROJECT_DIR, app, ignore=shutil.ignore_patterns(
        ".venv", ".git", "var", "__pycache__", "*.egg-info", "node_modules", ".pytest_cache", "tests", "bench"))
    return app


def dyno(slug, path, command):
    """Run ``command`` as a dyno would: HOME is the app, its .profile sourced first, PATH only ``path``."""
    env = {"HOME": str(slug), "PATH": str(path), "LANG": "C.UTF-8"}
    setup = 'cd "$HOME"; if [ -f .profile ]; then . ./.profile; fi'
    return subprocess.run(["/bin/bash", "-c", f"{setup}; {command}"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_run_python_falls_back_to_python3(slug, buildpack_python, tmp_path):
    only_python3 = tmp_path / "only-python3"
    only_python3.mkdir()
    for name in ("python3", "dirname"):
        (only_python3 / name).symlink_to(buildpack_python / name)

    ran = subprocess.run([slug / "bin" / "run-python", "-c", "import flask, ziri_images; print('ok')"], cwd=slug,
                         env={"PATH": str(only_python3)}, capture_output=True, text=True, timeout=60, check=False)

    assert (ran.returncode, ran.stdout) == (0, "ok\n"), ran.stderr


def test_the_documented_command_runs_on_a_heroku_style_install(slug, buildpack_python, tmp_path):
    assert dyno(slug, buildpack_python, "cd / && python3 -c 'import ziri_images'").returncode == 1  # not installed

    listed = dyno(slug, buildpack_python, "ziri-images keys list --format json")
    reported = dyno(slug, buildpack_python, f"cd /tmp && ziri-images report --ledger {tmp_path / 'none.jsonl'}")

    assert listed.returncode == 0, listed.stderr
    assert [record["id"] for record in json.loads(listed.stdout)] == ["key_demo"]
    assert reported.returncode == 1 and "none.jsonl" in reported.stderr  # the command ran, from any directory


def test_the_key_files_lock_is_not_committed():
    if shutil.which("git") is None or not (PROJECT_DIR / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "--quiet", "keys.json.lock"], cwd=PROJECT_DIR, timeout=30,
                             check=False)
    assert ignored.returncode == 0, "keys.json.lock (the key commands' lock file) is not in .gitignore"
