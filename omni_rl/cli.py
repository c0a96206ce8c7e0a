"""The single `omni-rl` command: a thin dispatcher so each subcommand lives beside its code."""

from __future__ import annotations

import importlib
import sys

# name -> (module, help). Each module exposes `main(argv: list[str]) -> int`; arguments after the
# subcommand are Hydra overrides (key=value) plus the subcommand's own flags.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("omni_rl.doctor", "report torch/verl/ray/vllm versions, CUDA and the vLLM server venv"),
    "data": ("omni_rl.data.cli", "prepare | stats | hard-samples: build verl parquet from preference data"),
    "eval": ("omni_rl.eval.cli", "benchmark a reward model (GenRM endpoint, scalar RM, baselines)"),
    "bon": ("omni_rl.bon.cli", "best-of-N: sample N candidates from a policy and pick with an RM"),
    "synth": (
        "omni_rl.curate.synth",
        "preference pairs from candidate models + a teacher judging both orders",
    ),
    "train-bt": ("omni_rl.bt.cli", "train a Bradley-Terry reward model"),
    "merge": ("omni_rl.merge", "turn a verl FSDP checkpoint into an HF model folder"),
    "serve": ("omni_rl.serve", "start a vLLM OpenAI server for a reward model or policy"),
}

# (command, subcommand) -> module, for a subcommand that lives above its command's package: dispatching it
# here keeps `omni_rl.data` free of any import (or import string) of the judge stack.
NESTED: dict[tuple[str, str], str] = {("data", "hard-samples"): "omni_rl.curate.hard_samples"}


def _usage() -> str:
    """Usage text listing the subcommands."""
    from omni_rl import __version__

    lines = [f"omni-rl {__version__}", "usage: omni-rl <command> [hydra overrides...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `omni-rl` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V"):
        from omni_rl import __version__

        print(f"omni-rl {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"omni-rl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if rest and (name, rest[0]) in NESTED:
        return _run_nested(name, rest[0], rest[1:])
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


def _run_nested(name: str, sub: str, rest: list[str]) -> int:
    """Run a NESTED subcommand, or say plainly that its module is not installed."""
    target = NESTED[(name, sub)]
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name != target:
            raise
        print(f"omni-rl {name} {sub}: {target} is not installed", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
