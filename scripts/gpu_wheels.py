"""Which wheels a borrowed GPU machine (torch only, no index, <=64 MiB per call) lacks for the no-vLLM smoke.

    python scripts/gpu_wheels.py [--present torch==2.11.0 ...] [--glibc 2.28] [--out-md M] [--out-json J]

The set is `verl[verl-core]` plus pyproject's [project].dependencies, resolved by pip's own resolver for
manylinux x86_64 / cp311 from PyPI (this machine's pip config is bypassed: it adds local mirrors that give
file:// URLs). `--present` pins are what the machine already has: each is pinned into the resolve and its own
closure (resolved alone, the same way) is subtracted, so the default means "torch 2.11.0 with its nvidia-*
wheels and triton". A package the machine has at a version the set rejects (transformers 5.17: verl wants
<5.11) is not "present": it stays lacking. PyPI sdist-only packages are built into wheels here (`pip wheel`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import ssl
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
CARRY_LIMIT = 64 * MIB
CHUNK_OPTION = (
    "Option, not a fact: split those into chunks (`split -b`), carry them into an ignored path and re-join "
    "them with `cat` on the machine. That works only if files a run leaves in ignored paths persist between "
    "calls while the machine stays warm (a fresh machine starts bare)."
)
TABLE_HEAD = "| # | package | version | MiB | bytes | pure | file | flags |\n" + "|---" * 8 + "|"
NOTES = {
    "torchcodec": "optional: scripts/setup.sh uninstalls it on CPU (needs libnvrtc and system FFmpeg)",
    "transformers": "machine has 5.17, verl 0.9.1 wants >=5.5.3,!=5.6.0,<5.11",
}


def platform_args(glibc: str) -> list[str]:
    """pip does not expand `manylinux_2_28` to older glibc tags itself, so list every one the machine runs."""
    minor = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{m}_x86_64" for m in range(minor, 4, -1)]
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    target = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--only-binary=:all:"]
    return [a for t in tags for a in ("--platform", t)] + target


def project_deps(pyproject: Path, drop: set[str]) -> list[str]:
    """pyproject's runtime deps minus those a --present pin replaces (`torch>=2.6` would only repeat it)."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if canonicalize_name(Requirement(d).name) not in drop]


def requirements(present: list[str], extra: list[str], pyproject: Path) -> list[str]:
    """Present pins first, then the extra top-level specs and project deps, each once."""
    drop = {canonicalize_name(Requirement(p).name) for p in present}
    return list(dict.fromkeys([*present, *extra, *project_deps(pyproject, drop)]))


ENV_SKIP = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX")


def pip_env() -> dict[str, str]:
    """PyPI only: no config file (local mirrors, torch cap) and no find-links/index from the environment."""
    return {k: v for k, v in os.environ.items() if k not in ENV_SKIP} | {"PIP_CONFIG_FILE": os.devnull}


def shell_line(cmd: list[str]) -> str:
    """The command as one pasteable shell line, with the environment pip_env() gives it."""
    unset = " ".join(f"-u {k}" for k in ENV_SKIP)
    return f"env {unset} PIP_CONFIG_FILE=/dev/null {shlex.join(cmd)}"


def resolve_cmd(reqs: list[str], report: Path, target: list[str], links: Path | None = None) -> list[str]:
    """The `pip install --dry-run --report` line; no `target`: for this interpreter, sdists allowed."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--report", str(report), *target]
    return cmd + (["--find-links", str(links)] if links else []) + reqs


def run_resolve(cmd: list[str]) -> dict:
    """Run one resolve and read its report; pip's own error is the message when it fails."""
    proc = subprocess.run(cmd, env=pip_env(), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"[gpu-wheels] resolve failed:\n{shell_line(cmd)}\n{proc.stderr[-4000:]}")
    return json.loads(Path(cmd[cmd.index("--report") + 1]).read_text())


def sdists(report: dict) -> list[str]:
    """`name==version` of items pip would take as source archives (no wheel at all on the index)."""
    items = [i for i in report["install"] if not i["download_info"]["url"].endswith(".whl")]
    return [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items]


def build_wheels(pins: list[str], out: Path) -> None:
    """Build wheels for sdist-only pins, so the target-platform resolve (binary only) can use them."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), *pins]
    subprocess.run(cmd, env=pip_env(), check=True, timeout=1800)


def closure(report: dict) -> dict[str, str]:
    """Canonical name -> version of everything a report installs."""
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}


def is_pure(filename: str) -> bool:
    """A wheel with no ABI and platform `any` runs anywhere: no compiled code."""
    if not filename.endswith(".whl"):
        return False
    tags = parse_wheel_filename(filename)[3]
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def lacking(full: dict, present: dict[str, str], built: set[str]) -> list[dict]:
    """Items of the full set not in the present closure at the same version, with their flags."""
    rows = []
    for item in full["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        key = canonicalize_name(name)
        if present.get(key) == version:
            continue
        url = item["download_info"]["url"]
        flags = [NOTES[key]] if key in NOTES else []
        if key in present:
            flags.append(f"present closure has {present[key]}, the set needs {version}")
        if key in built or not url.endswith(".whl"):
            flags.append("sdist-only on PyPI: wheel built here, carry it (no build on the machine)")
        filename = url.rsplit("/", 1)[-1]
        rows.append({"name": name, "version": version, "filename": filename, "url": url,
                     "pure": is_pure(filename), "flags": flags})  # fmt: skip
    return rows


def url_size(url: str, ctx: ssl.SSLContext, tries: int = 3) -> int:
    """Content-Length of a HEAD on the download URL (PyPI's files host sends it); file:// from disk."""
    if url.startswith("file://"):
        return Path(urllib.request.url2pathname(url[7:])).stat().st_size
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60, context=ctx) as r:
            return int(r.headers["Content-Length"])
    except OSError:
        if tries <= 1:
            raise
        return url_size(url, ctx, tries - 1)


def add_sizes(rows: list[dict]) -> list[dict]:
    """Size every row (HEADs in parallel) and sort by size, largest first."""
    ctx = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda r: url_size(r["url"], ctx), rows))
    return sorted(({**r, "size": s} for r, s in zip(rows, sizes, strict=True)), key=lambda r: -r["size"])


def ls_bytes(repo: Path, *args: str) -> int:
    """Bytes a run carries anyway: files `git ls-files ARGS` names (tracked; untracked not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", *args], cwd=repo, capture_output=True, check=True).stdout
    paths = (repo / p for p in out.decode().split("\0") if p)
    return sum(p.stat().st_size for p in paths if p.is_file())


def binpack(sizes: dict[str, int], cap: int) -> tuple[list[list[str]], list[str]]:
    """First-fit decreasing into calls of `cap` bytes; wheels bigger than `cap` come back apart."""
    bins: list[list[str]] = []
    room: list[int] = []
    for name, size in sorted(((n, s) for n, s in sizes.items() if s <= cap), key=lambda kv: -kv[1]):
        i = next((i for i, r in enumerate(room) if r >= size), len(bins))
        if i == len(bins):
            bins, room = [*bins, []], [*room, cap]
        bins[i].append(name)
        room[i] -= size
    return bins, [n for n, s in sizes.items() if s > cap]


def chunked(sizes: dict[str, int], cap: int) -> dict[str, int]:
    """Items bigger than `cap` replaced by `cap`-sized parts (what `split -b` would make)."""
    out = {}
    for name, size in sizes.items():
        n = math.ceil(size / cap)
        parts = {f"{name} (part {i + 1}/{n})": min(cap, size - i * cap) for i in range(n)} if n > 1 else {}
        out |= parts or {name: size}
    return out


def verdict(rows: list[dict], tree: int, limit: int = CARRY_LIMIT) -> dict:
    """Fit in one carry beside the working tree? If not: the offenders and a per-call plan."""
    cap = limit - tree
    total = sum(r["size"] for r in rows)
    sizes = {r["name"]: r["size"] for r in rows}
    bins, over = binpack(sizes, cap)
    split_bins = binpack(chunked(sizes, cap), cap)[0]
    loads = [sum(chunked(sizes, cap)[n] for n in b) for b in split_bins]
    return {"total": total, "cap": cap, "fits": total <= cap, "offenders": [r["name"] for r in rows[:5]],
            "too_big": over, "calls_whole": len(bins), "bins_whole": bins,
            "calls_split": len(split_bins), "bins_split": split_bins, "loads_split": loads}  # fmt: skip


def mib(n: int) -> str:
    """Bytes as MiB with two decimals."""
    return f"{n / MIB:.2f}"


def verdict_lines(v: dict, sizes: dict[str, int]) -> list[str]:
    """The verdict in words: fits, or the offenders, the per-call packing and the chunk option."""
    head = f"**Verdict:** {mib(v['total'])} MiB of wheels vs {mib(v['cap'])} MiB of room per call"
    if v["fits"]:
        return [head + " (64 MiB minus the working tree): **fits in one carry**."]
    big = ", ".join(f"{n} ({mib(sizes[n])} MiB)" for n in v["offenders"])
    lines = [head + " (64 MiB minus the working tree): **does not fit in one carry**.", ""]
    lines += [f"Largest offenders: {big}.", ""]
    if v["too_big"]:
        rest = f"The rest packs (greedy first-fit decreasing) into **{v['calls_whole']} call(s)**."
        lines.append(f"Too big for one call, cannot travel whole: {', '.join(v['too_big'])}. {rest}")
        lines[-1] += " " + CHUNK_OPTION
    bound = math.ceil(v["total"] / v["cap"])
    lines += ["", f"Greedy plan with chunks: **{v['calls_split']} call(s)** (lower bound {bound}); any "
              "multi-call plan relies on that same persistence:", ""]  # fmt: skip
    for i, (b, load) in enumerate(zip(v["bins_split"], v["loads_split"], strict=True)):
        lines.append(f"- call {i + 1} ({mib(load)} MiB, {len(b)} files): {', '.join(b)}")
    return lines


def render_md(s: dict) -> str:
    """Markdown report: provenance, the table (largest first), the total and the verdict."""
    tree, rows = s["tree"], s["rows"]
    out = ["# Wheels a torch-only GPU machine lacks for the no-vLLM smoke", "",
           f"Date: {s['date']}  ", f"pip: {s['pip_version']}  ",
           f"Present (subtracted): {', '.join(s['present'])} "
           f"(closure of {len(s['present_closure'])} packages)  ",
           f"Full set: {s['full_count']} packages", "",
           "Resolve command (the present closure: the same with only the --present pins):", "",
           "```", s["command"], "```", "",
           f"Working tree carried each call: {mib(tree['tracked'])} MiB tracked + "
           f"{mib(tree['untracked'])} MiB untracked-not-ignored.", "", TABLE_HEAD]  # fmt: skip
    for i, r in enumerate(rows, 1):
        pure, flags = "yes" if r["pure"] else "no", "; ".join(r["flags"])
        out.append(f"| {i} | {r['name']} | {r['version']} | {mib(r['size'])} | {r['size']} | {pure} "
                   f"| `{r['filename']}` | {flags} |")  # fmt: skip
    out += ["", f"**Total:** {len(rows)} wheels, {mib(s['verdict']['total'])} MiB", ""]
    return "\n".join(out + verdict_lines(s["verdict"], {r["name"]: r["size"] for r in rows})) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--present", action="append", help="pin the GPU machine already has (repeatable; its "
                    "closure is subtracted). Default: torch==2.11.0")  # fmt: skip
    ap.add_argument("--spec", action="append", help="extra top-level spec. Default: verl[verl-core]==0.9.1")
    ap.add_argument("--glibc", default="2.28", help="the machine's glibc: newest manylinux tag accepted")
    ap.add_argument("--build-dir", type=Path, default=Path(tempfile.gettempdir()) / "omni-rl-gpu-wheels")
    ap.add_argument("--out-md", type=Path, default=REPO / "benchmarks/results/gpu_smoke/wheels.md")
    ap.add_argument("--out-json", type=Path, default=REPO / "benchmarks/results/gpu_smoke/wheels.json")
    args = ap.parse_args(argv)
    args.present = args.present or ["torch==2.11.0"]
    args.spec = args.spec or ["verl[verl-core]==0.9.1"]
    return args


def main(argv: list[str]) -> int:
    """Resolve, subtract, size, pack, and write the report."""
    a = parse_args(argv)
    reqs = requirements(a.present, a.spec, REPO / "pyproject.toml")
    target, work = platform_args(a.glibc), a.build_dir
    work.mkdir(parents=True, exist_ok=True)
    native = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and os.uname().machine == "x86_64"
    src = sdists(run_resolve(resolve_cmd(reqs, work / "native.json", []))) if native else []  # sdists allowed
    if src:
        print(f"[gpu-wheels] sdist-only, building wheels: {src}")
        build_wheels(src, work / "built")
    cmd = resolve_cmd(reqs, work / "full.json", target, work / "built" if src else None)
    full = run_resolve(cmd)
    present = closure(run_resolve(resolve_cmd(a.present, work / "present.json", target)))
    rows = add_sizes(lacking(full, present, {canonicalize_name(Requirement(p).name) for p in src}))
    tree = {"tracked": ls_bytes(REPO), "untracked": ls_bytes(REPO, "--others", "--exclude-standard")}
    s = {"date": datetime.date.today().isoformat(), "pip_version": full["pip_version"],
         "present": a.present, "present_closure": present, "full_count": len(full["install"]),
         "command": shell_line(cmd), "tree": tree, "rows": rows,
         "verdict": verdict(rows, tree["tracked"] + tree["untracked"])}  # fmt: skip
    md = render_md(s)
    a.out_md.parent.mkdir(parents=True, exist_ok=True)
    a.out_md.write_text(md)
    a.out_json.write_text(json.dumps(s, indent=1) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
