"""Long-running server processes: start in their own process group, poll a health URL, stop the whole group.

One implementation for `make learn` (benchmarks/learn_chain.py), the test fixtures (omni_rl.testing.servers)
and the GPU smoke script. `start()` returns at once and `wait_ready()` polls, so several servers can start
together (`start_all`) and their start-up times overlap.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

LOG_TAIL_CHARS = 4000


class ServerStartError(RuntimeError):
    """A server exited or missed its deadline before its health URL answered; the message has its log tail."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (racy by nature, but fine for loopback servers we start ourselves)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers 200 now (any connection error is "not yet")."""
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status == 200
    return False


def wait_http_ok(url: str, timeout: float, poll_s: float = 0.5) -> None:
    """Poll `url` until it answers 200 (for servers another tool started, e.g. `ray start`)."""
    deadline = time.monotonic() + timeout
    while not http_ok(url):
        if time.monotonic() > deadline:
            raise ServerStartError(f"{url} not healthy after {timeout:.0f} s")
        time.sleep(poll_s)


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a log file, so a start-up failure shows why without opening the file."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there (signal 0 probes without sending)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group `proc` leads (started with start_new_session), SIGKILL what is left after `grace`.

    Servers and training stages alike fork helpers (vLLM's engine core, verl's Ray); killing only the leader
    would leave them running.
    """
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
            time.sleep(0.2)
        if proc.poll() is not None and not _group_alive(proc.pid):
            return


class ServerProcess:
    """One server command run in its own session (process group), ready once `health_url` answers 200."""

    def __init__(
        self,
        command: Sequence[str],
        health_url: str,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        startup_timeout: float = 300.0,
        name: str = "server",
    ) -> None:
        self.command, self.health_url, self.log_path = list(command), health_url, Path(log_path)
        self.env, self.cwd, self.startup_timeout, self.name = env, cwd, startup_timeout, name
        self.proc: subprocess.Popen | None = None
        self.started_in_s = 0.0
        self._log: IO[str] | None = None
        self._t0 = 0.0

    def start(self) -> ServerProcess:
        """Launch the command and return at once; the deadline for `wait_ready` starts now."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed by stop()
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.command, cwd=self.cwd, env=None if self.env is None else dict(self.env),
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        return self

    def ready(self) -> bool:
        """One non-blocking check: True once healthy; raises ServerStartError if it exited or is late."""
        if self.proc is None:
            raise ServerStartError(f"{self.name}: wait_ready() before start()")
        if self.proc.poll() is not None:
            self._fail(f"exited with code {self.proc.returncode} before {self.health_url} was up")
        if http_ok(self.health_url):
            self.started_in_s = time.monotonic() - self._t0
            return True
        if time.monotonic() - self._t0 > self.startup_timeout:
            self._fail(f"not healthy at {self.health_url} after {self.startup_timeout:.0f} s")
        return False

    def wait_ready(self, poll_s: float = 0.5) -> ServerProcess:
        """Block until healthy; on failure the process group is stopped and the log tail is raised."""
        try:
            while not self.ready():
                time.sleep(poll_s)
        except BaseException:  # Ctrl-C while waiting must not leave the server running
            self.stop()
            raise
        return self

    def _fail(self, what: str) -> None:
        self.stop()
        raise ServerStartError(f"{self.name} {what}; log {self.log_path}:\n{log_tail(self.log_path)}")

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the whole process group (vLLM forks an engine core), SIGKILL whatever is left after `grace`."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_all(servers: Sequence[ServerProcess], poll_s: float = 0.5) -> list[ServerProcess]:
    """Start every server at once and wait until all are healthy; if one fails, all are stopped."""
    try:
        for s in servers:
            s.start()
        pending = list(servers)
        while pending:
            pending = [s for s in pending if not s.ready()]
            if pending:
                time.sleep(poll_s)
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return list(servers)
