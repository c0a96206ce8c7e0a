"""omni_rl.utils.procs with real processes: concurrent start, clear start-up errors, whole-group stop."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from omni_rl.utils.procs import ServerProcess, ServerStartError, free_port, http_ok, start_all

# a /health server that becomes healthy after DELAY seconds and forks a child that shares its group
SERVER = """
import http.server, subprocess, sys, time
delay, port = float(sys.argv[1]), int(sys.argv[2])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _server(tmp_path: Path, name: str, delay: float = 0.0, timeout: float = 30.0) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, "-c", SERVER, str(delay), str(port)]
    return ServerProcess(cmd, f"http://127.0.0.1:{port}/health", tmp_path / f"{name}.log",
                         startup_timeout=timeout, name=name)  # fmt: skip


def _child_pid(server: ServerProcess) -> int:
    deadline = time.monotonic() + 10
    while "child" not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return int(server.log_path.read_text().split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_all_overlaps_startups_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    servers = [_server(tmp_path, f"s{i}", delay=3.0) for i in range(2)]
    t0 = time.monotonic()
    start_all(servers)
    assert time.monotonic() - t0 < 5.9  # two 3 s start-ups waited for together, not one after the other
    assert all(http_ok(s.health_url) for s in servers) and all(s.started_in_s >= 3.0 for s in servers)
    children = [_child_pid(s) for s in servers]
    for s in servers:
        s.stop(grace=5)
    assert not any(_alive(pid) for pid in children)
    assert not any(http_ok(s.health_url) for s in servers)


def test_a_server_that_exits_raises_with_its_log_tail(tmp_path: Path) -> None:
    server = ServerProcess([sys.executable, "-c", "print('no model here'); raise SystemExit(3)"],
                           f"http://127.0.0.1:{free_port()}/health", tmp_path / "dead.log", name="dead")  # fmt: skip
    with pytest.raises(ServerStartError, match=r"(?s)dead exited with code 3.*no model here"):
        server.start().wait_ready(poll_s=0.1)
    assert server.proc is None  # stopped


def test_a_server_past_its_deadline_is_stopped_and_named(tmp_path: Path) -> None:
    server = _server(tmp_path, "slow", delay=60.0, timeout=1.0)
    server.start()
    child = _child_pid(server)
    with pytest.raises(ServerStartError, match=r"slow not healthy at .* after 1 s"):
        server.wait_ready(poll_s=0.1)
    assert not _alive(child)
