"""A PostgreSQL server of a test's own, for the tests that stop, restart or cut off the database.

The server at ``ZIRI_TEST_DATABASE_URL`` is shared with every other client of the machine: no
test may stop, restart or reconfigure it. A ``ThrowawayCluster`` is ``initdb`` into a temporary
directory, served by ``pg_ctl`` on a free port of 127.0.0.1 (its unix socket in that directory
too), and removed at the end, whatever happened.

The server binaries come from the newest ``/usr/lib/postgresql/<version>/bin`` (Debian's
layout), else from the directory of ``initdb`` on ``PATH``. ``initdb`` and ``postgres`` refuse to
run as root: as root the cluster belongs to, and runs as, the ``postgres`` user (``runuser``).
Where the binaries (or, as root, that user) are missing the tests are skipped with the reason;
with ``ZIRI_TEST_REQUIRE_DATABASE=1`` (``.ci/run`` sets it) they fail instead.
"""

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from database import database_required

SERVER_BINARIES = "/usr/lib/postgresql/*/bin"
OWNER = "postgres"  # the OS user the cluster runs as when the tests run as root
COMMAND_SECONDS = 60
# A server for one test: its own address and socket, no durability (nothing here outlives the test).
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{directory}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 16MB
"""


def server_binaries():
    """Return the bin directory of the newest PostgreSQL server installed, or None."""
    found = [Path(path) for path in glob.glob(SERVER_BINARIES) if Path(path, "initdb").exists()]
    if found:
        return max(found, key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.name)])
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def owner_account():
    """Return the account the server runs as: None for this user, else ``OWNER``'s (as root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OWNER)
    except KeyError:
        return False


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, on a free port: start, stop, restart, remove."""

    def __init__(self, binaries, account):
        self.binaries = binaries
        self.account = account
        self.directory = Path(tempfile.mkdtemp(prefix="ziri-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if account:
            os.chown(self.directory, account.pw_uid, account.pw_gid)

    def create(self):
        """Create the cluster's files (``initdb``) with the settings above."""
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(SETTINGS.format(port=self.port, directory=self.directory))

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        self._pg_ctl("start", "-l", self.directory / "server.log")

    def stop(self, mode="fast"):
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode="fast"):
        self._pg_ctl("restart", "-m", mode, "-l", self.directory / "server.log")

    def running(self):
        return (self.data / "postmaster.pid").exists()

    def log(self):
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self):
        """Stop the server if it runs (immediately: nothing in it is kept) and remove the directory."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _pg_ctl(self, action, *options):
        self._run("pg_ctl", action, "-D", self.data, "-w", "-t", str(COMMAND_SECONDS), *options)

    def _run(self, program, *arguments):
        command = [str(self.binaries / program), *map(str, arguments)]
        if self.account:
            command = ["runuser", "-u", self.account.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_SECONDS + 30, cwd="/")
        if result.returncode != 0:
            raise RuntimeError(f"{program} {arguments[0]} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{self.log()[-2000:]}")


def unavailable(reason):
    """Skip with ``reason``, or fail when the PostgreSQL tests are required here."""
    if database_required():
        pytest.fail(f"{reason} (ZIRI_TEST_REQUIRE_DATABASE is set)", pytrace=False)
    pytest.skip(reason)


def open_throwaway_cluster():
    """Return a started ThrowawayCluster, or skip (fail, when required) saying what is missing."""
    binaries = server_binaries()
    if binaries is None:
        unavailable(f"needs the PostgreSQL server binaries (initdb, pg_ctl) under {SERVER_BINARIES} or on PATH "
                    "for a throwaway cluster")
    account = owner_account()
    if account is False:
        unavailable(f"runs as root and there is no {OWNER!r} user to run a throwaway PostgreSQL cluster as")
    cluster = ThrowawayCluster(binaries, account)
    try:
        cluster.create()
        cluster.start()
    except BaseException:
        cluster.cleanup()
        raise
    return cluster
