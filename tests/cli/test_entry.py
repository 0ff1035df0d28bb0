"""The one entry: every command failure is one ``CliError``, printed as one line with exit code 1."""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from ziri_images.cli import dev
from ziri_images.cli import entry as cli
from ziri_images.cli.errors import CliError
from ziri_images.errors import ConfigError
from ziri_images.keys.keyfile import KeyFileError

CLI_DIR = Path(cli.__file__).parent
MODULES = {path.name: ast.parse(path.read_text()) for path in CLI_DIR.glob("*.py")}


def test_the_command_line_has_one_error_type():
    errors = sorted(f"{name}:{node.name}" for name, tree in MODULES.items() for node in ast.walk(tree)
                    if isinstance(node, ast.ClassDef) and any(getattr(base, "id", "").endswith(("Error", "Exception"))
                                                              for base in node.bases))
    assert errors == ["errors.py:CliError"]


@pytest.mark.parametrize("failure, message", [
    pytest.param(CliError("nothing to change"), "nothing to change", id="cli-error"),
    pytest.param(ConfigError("pricing file p.json: not JSON"), "pricing file p.json: not JSON", id="config"),
    pytest.param(KeyFileError("no key 'key_x'"), "no key 'key_x'", id="key-file"),
    pytest.param(FileNotFoundError(2, "No such file or directory", "k.json"), "k.json: No such file or directory",
                 id="os-error"),
])
def test_every_failure_reaches_main_as_one_cli_error(failure, message):
    def handler(args):
        raise failure

    with pytest.raises(CliError) as raised:
        cli.run_command(SimpleNamespace(handler=handler))
    assert str(raised.value) == message


def test_the_dev_stub_failing_to_start_is_one_error_line(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    exited = SimpleNamespace(poll=lambda: 3, returncode=3, terminate=lambda: None, wait=lambda timeout=None: 3)
    monkeypatch.setattr(dev.subprocess, "Popen", lambda *args, **kwargs: exited)

    assert cli.main(["dev", "--stub-port", "1"]) == 1
    assert capsys.readouterr().err == "ziri-images: error: the stub exited with code 3\n"


def test_the_command_line_modules_stay_small():
    too_long = {name: len(Path(CLI_DIR / name).read_text().splitlines()) for name in MODULES}
    assert {name: lines for name, lines in too_long.items() if lines > 250} == {}
    functions = {f"{name}:{node.name}": node.end_lineno - node.lineno + 1 for name, tree in MODULES.items()
                 for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert {name: lines for name, lines in functions.items() if lines > 50} == {}
