"""Start, watch and stop the processes of a benchmark: each in its own session, read from /proc."""

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BENCH_DIR)
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class Children:
    """Every process a run starts, each in its own session, stopped by process group."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.running = []

    def start(self, name, command, env=None, cwd=PROJECT_DIR):
        """Start ``command`` with its output in ``<log_dir>/<name>.log``; return the process."""
        log = open(self.log_path(name), "wb")
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        process.name = name
        self.running.append(process)
        return process

    def log_path(self, name):
        return os.path.join(self.log_dir, f"{name}.log")

    def log_text(self, process):
        """Return everything ``process`` has written so far."""
        with open(self.log_path(process.name), "rb") as log:
            return log.read().decode("utf-8", "replace")

    def log_tail(self, process, size=2000):
        with open(self.log_path(process.name), "rb") as log:
            return log.read()[-size:].decode("utf-8", "replace")

    def stop(self, process, grace=8):
        """Stop ``process`` and its group: SIGTERM, then SIGKILL for whatever outlived ``grace`` seconds."""
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        if group_pids(process.pid):
            _signal_group(process.pid, signal.SIGKILL)  # workers left behind by a master that died
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if process in self.running:
            self.running.remove(process)

    def stop_all(self, grace=3):
        for process in reversed(list(self.running)):
            self.stop(process, grace=grace)


def _signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_open_files_limit():
    """Raise this process's open-files limit as far as allowed; the children inherit it."""
    # 1024 client connections plus 1024 upstream ones per process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def wait_until(children, process, check, what, seconds):
    """Call ``check`` until it returns something true and return that; fail if ``process`` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.returncode}:\n{children.log_tail(process)}")
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not {what} within {seconds}s:\n{children.log_tail(process)}")


def answers(url):
    """Return whether ``url`` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_answers(children, process, url, seconds):
    """Poll ``url`` until it answers 200; return the seconds waited."""
    started = time.monotonic()
    wait_until(children, process, lambda: answers(url), f"answer {url}", seconds)
    return time.monotonic() - started


def group_pids(pgid):
    """Return the pids of the live processes in process group ``pgid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid):
    """Return user + system CPU seconds of the live processes of a process group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def group_memory_mib(pgid):
    """Return (RSS, PSS) in MiB summed over the live processes of a process group."""
    rss = pss = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/statm") as statm:
                rss += int(statm.read().split()[1]) * PAGE_KIB
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except OSError:
            continue
    return rss / 1024, pss / 1024


def group_open_files(pgid):
    """Return the file descriptors held by every process of the group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def peak_memory_mib(pid):
    """Return {VmHWM, VmRSS} of ``pid`` in MiB: its peak and its present resident memory."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                values[name] = int(rest.split()[0]) / 1024
    return values
