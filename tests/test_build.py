"""The Heroku-style build: requirements.txt in step with setup.cfg, .python-version, the Procfile's lines."""

import configparser
import re
from pathlib import Path

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
