"""scripts/gpu_wheels.py's pure parts, offline: the present closure subtracted from a pip report, the flags,
the bin-packing into 64 MiB calls, and the Markdown report. No resolve and no HEAD here (tests stay on
loopback); sizes come from file:// URLs, which the script reads from disk."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_wheels.py"
MIB = 1 << 20


def _load() -> ModuleType:
    """Import the script from its path, without putting scripts/ on sys.path."""
    spec = importlib.util.spec_from_file_location("gpu_wheels_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gw = _load()
PYPI = "https://files.pythonhosted.org/packages/aa/bb"


def _item(name: str, version: str, filename: str) -> dict:
    """One `install` entry shaped like pip's --report."""
    return {"metadata": {"name": name, "version": version}, "download_info": {"url": f"{PYPI}/{filename}"}}


def _report(*items: dict) -> dict:
    return {"version": "1", "pip_version": "26.3", "install": list(items)}


PRESENT = _report(
    _item("torch", "2.11.0", "torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
    _item("triton", "3.6.0", "triton-3.6.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"),
    _item("typing_extensions", "4.16.0", "typing_extensions-4.16.0-py3-none-any.whl"),
    _item("setuptools", "81.0.0", "setuptools-81.0.0-py3-none-any.whl"),
)
FULL = _report(
    *PRESENT["install"][:3],
    _item("setuptools", "79.0.0", "setuptools-79.0.0-py3-none-any.whl"),
    _item("verl", "0.9.1", "verl-0.9.1-py3-none-any.whl"),
    _item("transformers", "5.10.4", "transformers-5.10.4-py3-none-any.whl"),
    _item("torchcodec", "0.17.0", "torchcodec-0.17.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
    _item("ray", "2.60.0", "ray-2.60.0-cp311-cp311-manylinux2014_x86_64.whl"),
    _item("antlr4-python3-runtime", "4.9.3", "antlr4-python3-runtime-4.9.3.tar.gz"),
)


def _rows(full: dict = FULL, built: set[str] | None = None) -> dict[str, dict]:
    rows = gw.lacking(full, gw.closure(PRESENT), built or set())
    return {r["name"]: r for r in rows}


def test_the_present_closure_is_subtracted_by_name_and_version() -> None:
    rows = _rows()
    assert set(rows) == {"setuptools", "verl", "transformers", "torchcodec", "ray", "antlr4-python3-runtime"}
    assert rows["setuptools"]["flags"] == ["present closure has 81.0.0, the set needs 79.0.0"]
    assert rows["verl"]["flags"] == [] and rows["verl"]["pure"]
    assert "verl 0.9.1 wants" in rows["transformers"]["flags"][0]  # kept although the machine has 5.17


def test_names_are_compared_canonically() -> None:
    full = _report(_item("Typing-Extensions", "4.16.0", "typing_extensions-4.16.0-py3-none-any.whl"))
    assert gw.lacking(full, gw.closure(PRESENT), set()) == []


def test_flags_torchcodec_and_sdist_only() -> None:
    rows = _rows()
    assert "uninstalls it on CPU" in rows["torchcodec"]["flags"][0] and not rows["torchcodec"]["pure"]
    assert any("sdist-only" in f for f in rows["antlr4-python3-runtime"]["flags"])
    assert gw.sdists(FULL) == ["antlr4-python3-runtime==4.9.3"]
    built = _report(_item("antlr4-python3-runtime", "4.9.3", "antlr4_python3_runtime-4.9.3-py3-none-any.whl"))
    row = _rows(built, {"antlr4-python3-runtime"})["antlr4-python3-runtime"]  # resolved from the built wheel
    assert row["pure"] and any("wheel built here" in f for f in row["flags"])


@pytest.mark.parametrize(
    ("filename", "pure"),
    [
        ("six-1.17.0-py2.py3-none-any.whl", True),
        ("psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.manylinux_2_12_x86_64.whl", False),
        ("py_spy-0.4.3-py2.py3-none-manylinux1_x86_64.whl", False),
        ("antlr4-python3-runtime-4.9.3.tar.gz", False),
    ],
)
def test_pure_python_is_read_from_the_wheel_tags(filename: str, pure: bool) -> None:
    assert gw.is_pure(filename) is pure


def test_requirements_drop_the_pins_present_replaces(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n'
        'dependencies = ["verl[verl-core]==0.9.1", "torch>=2.6", "torchvision>=0.21"]\n'
    )
    reqs = gw.requirements(["torch==2.11.0"], ["verl[verl-core]==0.9.1"], tmp_path / "pyproject.toml")
    assert reqs == ["torch==2.11.0", "verl[verl-core]==0.9.1", "torchvision>=0.21"]


def test_resolve_targets_every_older_manylinux_tag_and_bypasses_local_config(monkeypatch) -> None:
    args = gw.platform_args("2.28")
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms and "manylinux_2_29_x86_64" not in platforms
    assert "--only-binary=:all:" in args and args[args.index("--abi") + 1] == "cp311"
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    env = gw.pip_env()
    assert "PIP_FIND_LINKS" not in env and env["PIP_CONFIG_FILE"] == "/dev/null"
    cmd = gw.resolve_cmd(["torch==2.11.0"], Path("r.json"), args)
    assert gw.shell_line(cmd).startswith("env -u PIP_FIND_LINKS") and "--report r.json" in gw.shell_line(cmd)


def test_binpack_first_fit_decreasing_and_oversize() -> None:
    bins, over = gw.binpack({"a": 50, "b": 40, "c": 30, "d": 20, "e": 10, "huge": 101}, 100)
    assert over == ["huge"]
    assert bins == [["a", "b", "e"], ["c", "d"]]
    assert gw.chunked({"huge": 250, "a": 5}, 100) == {
        "huge (part 1/3)": 100, "huge (part 2/3)": 100, "huge (part 3/3)": 50, "a": 5,
    }  # fmt: skip


def test_verdict_fits_or_plans_calls() -> None:
    rows = [{"name": "x", "size": 10 * MIB}, {"name": "y", "size": 5 * MIB}]
    assert gw.verdict(rows, tree=2 * MIB)["fits"]
    rows = [
        {"name": "ray", "size": 75 * MIB},
        {"name": "pyarrow", "size": 52 * MIB},
        {"name": "av", "size": 9 * MIB},
    ]
    v = gw.verdict(rows, tree=2 * MIB)
    assert not v["fits"] and v["cap"] == 62 * MIB and v["too_big"] == ["ray"]
    assert v["calls_whole"] == 1  # pyarrow + av
    assert v["calls_split"] == 3 and sum(v["loads_split"]) == v["total"]
    assert max(v["loads_split"]) <= v["cap"]


def _summary(rows: list[dict]) -> dict:
    return {"date": "2026-01-01", "pip_version": "26.3", "present": ["torch==2.11.0"],
            "present_closure": gw.closure(PRESENT), "full_count": 9, "command": "pip install --dry-run X",
            "tree": {"tracked": 2 * MIB, "untracked": 0}, "rows": rows,
            "verdict": gw.verdict(rows, 2 * MIB)}  # fmt: skip


def test_sizes_from_disk_sorted_and_rendered(tmp_path: Path) -> None:
    rows = []
    for name, size in [("small", 100), ("big", 3000), ("mid", 2000)]:
        (tmp_path / f"{name}-1.0-py3-none-any.whl").write_bytes(b"0" * size)
        url = (tmp_path / f"{name}-1.0-py3-none-any.whl").as_uri()
        rows.append({"name": name, "version": "1.0", "filename": url.rsplit("/", 1)[-1], "url": url,
                     "pure": True, "flags": ["f"] if name == "mid" else []})  # fmt: skip
    sized = gw.add_sizes(rows)
    assert [(r["name"], r["size"]) for r in sized] == [("big", 3000), ("mid", 2000), ("small", 100)]
    md = gw.render_md(_summary(sized))
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert [ln.split(" | ")[1] for ln in table] == ["big", "mid", "small"]
    assert table[1].endswith("| f |") and "| yes |" in table[0]
    assert "pip: 26.3" in md and "pip install --dry-run X" in md and "Date: 2026-01-01" in md
    assert "**Total:** 3 wheels, 0.00 MiB" in md and "**fits in one carry**" in md


def _row(name: str, size: int) -> dict:
    return {"name": name, "version": "1", "filename": f"{name}.whl", "url": "", "pure": False, "flags": [],
            "size": size}  # fmt: skip


def test_render_md_when_it_does_not_fit() -> None:
    rows = [_row("ray", 75 * MIB), _row("av", 30 * MIB)]
    md = gw.render_md(_summary(rows))
    assert (
        "**does not fit in one carry**" in md and "Largest offenders: ray (75.00 MiB), av (30.00 MiB)" in md
    )
    assert "cannot travel whole: ray" in md and "Option, not a fact" in md and "`cat`" in md
    assert "- call 1 (62.00 MiB, 1 files): ray (part 1/2)" in md
    assert "- call 2 (43.00 MiB, 2 files): av, ray (part 2/2)" in md
