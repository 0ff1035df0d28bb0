"""ReloadingFile: the content of a config file, kept current with the file on disk."""

import json
import logging
import os

import pytest

from ziri_images.errors import ConfigError
from ziri_images.keys.reloading import ReloadingFile
from ziri_images.keys.reloading import file_signature


def load_number(path):
    """A loader in the shape of load_key_file: the file's one number, or ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)["number"]
    except (ValueError, KeyError) as error:
        raise ConfigError(f"number file {path}: {error}")


def replace(path, text):
    temporary = f"{path}.new"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "number.json")
    replace(path, '{"number": 1}')
    return path


def test_the_content_follows_the_file(path):
    number = ReloadingFile(path, load_number, "number file")
    assert number.current() == 1

    replace(path, '{"number": 2}')

    assert number.current() == 2


def test_a_broken_file_at_start_up_raises(path):
    replace(path, "{")

    with pytest.raises(ConfigError, match="number file"):
        ReloadingFile(path, load_number, "number file")


def test_a_broken_edit_keeps_the_previous_content_and_is_logged_once(path, caplog):
    number = ReloadingFile(path, load_number, "number file")
    replace(path, '{"numbr": 2}')

    with caplog.at_level(logging.INFO, logger="ziri_images"):
        assert [number.current() for _ in range(3)] == [1, 1, 1]
        replace(path, '{"number": 3}')
        assert number.current() == 3

    assert [record.getMessage() for record in caplog.records] == [
        f"number file change ignored, keeping the previous version: number file {path}: 'number'",
        f"number file reloaded: {path}",
    ]


def test_a_missing_file_keeps_the_previous_content(path):
    number = ReloadingFile(path, load_number, "number file")
    os.unlink(path)

    assert number.current() == 1
    assert file_signature(path) is None
