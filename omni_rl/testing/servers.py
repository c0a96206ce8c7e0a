"""Start and stop real local servers (vLLM OpenAI server, Ray head) for tests, demos and benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omni_rl.serving import REPO_ROOT, vllm_cpu_args, vllm_python  # the one command builder (re-exported)
from omni_rl.utils.procs import ServerProcess, free_port, start_all, wait_http_ok

__all__ = ["REPO_ROOT", "RayHead", "VLLMServer", "free_port", "start_all", "vllm_cpu_args", "vllm_python"]


def multimodal_args(limits: dict[str, int]) -> list[str]:
    """Flags for a multimodal server: how many images / videos / audio clips one prompt may carry."""
    return ["--limit-mm-per-prompt", json.dumps(limits)]


@dataclass
class VLLMServer:
    """A real `vllm.entrypoints.openai.api_server` process on loopback, serving one local model."""

    model: str
    served_model_name: str = "tiny"
    port: int = 0
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    startup_timeout: float = 300.0
    process: ServerProcess | None = None

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def address(self) -> str:
        """host:port, the form verl's reward router address takes."""
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The exact server command line (also printed by `omni-rl serve --dry-run`)."""
        py = vllm_python()
        if py is None:
            raise FileNotFoundError(
                "vLLM server venv not found: run `make setup` (or scripts/setup_vllm_cpu.sh), "
                "or point OMNI_RL_VLLM_PYTHON at a python with vllm installed"
            )
        return [
            str(py), "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", "4096", "--max-logprobs", "-1",
            *vllm_cpu_args(4096), "--disable-log-stats", "--seed", "0",
            *self.extra_args,
        ]  # fmt: skip

    @property
    def started_in_s(self) -> float:
        """Seconds from launch to a healthy /health (0 until ready)."""
        return self.process.started_in_s if self.process else 0.0

    def launch(self) -> ServerProcess:
        """Start the server process and return at once (`start_all([s.launch() ...])` starts several)."""
        self.port = self.port or free_port()
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1")
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env.pop("PYTHONPATH", None)  # keep the main venv's packages out of the server venv
        self.log_path = self.log_path or Path(f"/tmp/omni-rl-vllm-{self.port}.log")
        self.process = ServerProcess(
            self.command(), f"http://{self.host}:{self.port}/health", self.log_path, env=env,
            startup_timeout=self.startup_timeout, name=f"vLLM server {self.served_model_name}",
        ).start()  # fmt: skip
        return self.process

    def start(self) -> VLLMServer:
        """Launch, then block until /health answers; raises with the server log if it dies."""
        self.launch().wait_ready()
        return self

    def stop(self) -> None:
        """Terminate the server and its engine process by process group."""
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RayHead:
    """A real `ray start --head` on loopback with the dashboard (job API) on 127.0.0.1."""

    num_cpus: int = 2
    num_gpus: int = 0  # logical; verl's resource pools need >= 1 even on a CPU-only machine (omni_rl.cpu)
    dashboard_port: int = 0
    gcs_port: int = 0
    temp_dir: str | None = None

    @property
    def dashboard_address(self) -> str:
        """Address for `ray job submit --address`."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        """Address for `ray.init(address=...)`."""
        return f"127.0.0.1:{self.gcs_port}"

    def _ray(self, *args: str) -> subprocess.CompletedProcess:
        ray_bin = Path(sys.executable).with_name("ray")
        # A plain local ray.init() anywhere on the machine writes ~/.ray/auth_token, after which `ray start`
        # turns token auth on and the job API answers 401; this head is loopback-only, so keep auth off.
        env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
        return subprocess.run([str(ray_bin), *args], capture_output=True, text=True, timeout=180, env=env)

    def start(self) -> RayHead:
        """Start the head node and wait for the job API to answer."""
        self.dashboard_port = self.dashboard_port or free_port()
        self.gcs_port = self.gcs_port or free_port()
        if self.temp_dir is None:
            import tempfile

            self.temp_dir = tempfile.mkdtemp(prefix="omni-rl-ray-")
        args = [
            "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--num-cpus={self.num_cpus}", f"--num-gpus={self.num_gpus}", "--include-dashboard=true", "--disable-usage-stats",
            # the agent's HTTP port defaults to 52365 for every head: a second head on the machine would lose
            # its agent and answer job submissions with "No available agent"
            f"--dashboard-agent-listen-port={free_port()}",
            # likewise the Ray client server defaults to 10001 for every head
            f"--ray-client-server-port={free_port()}",
        ]  # fmt: skip
        if self.temp_dir:
            args.append(f"--temp-dir={self.temp_dir}")
        res = self._ray(*args)
        if res.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{res.stdout}\n{res.stderr}")
        try:
            wait_http_ok(f"{self.dashboard_address}/api/version", 120)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill only this head's processes (`ray stop` would kill every Ray cluster on the machine)."""
        import psutil

        marks = [f":{self.gcs_port}", *([self.temp_dir] if self.temp_dir else [])]
        procs = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if proc.pid != os.getpid() and any(m in cmd for m in marks):
                procs.append(proc)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
