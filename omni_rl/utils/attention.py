"""Which attention implementation the recipes ask verl's HF engines for, from what is installed.

verl's FSDP engine defaults to `flash_attention_2` (`override_config.get("attn_implementation",
"flash_attention_2")`) and crashes at model load when flash-attn is missing, which is the normal state
after `make setup` (flash-attn is a long source build, `make setup-flash-attn`). The recipes therefore
pass `actor_rollout_ref.model.override_config.attn_implementation=$(python -m omni_rl.utils.attention)`:
flash-attention when it imports and a GPU is visible, SDPA otherwise, with one warning saying why.

    python -m omni_rl.utils.attention            # prints flash_attention_2 | sdpa (reason on stderr)
    python -m omni_rl.utils.attention --explain  # one human line on stdout (what setup prints)
"""

from __future__ import annotations

import sys
from collections.abc import Callable

FLASH = "flash_attention_2"
SDPA = "sdpa"


def _cuda_available() -> bool:
    """True when torch sees a CUDA device (False when torch itself is missing).

    Without an NVIDIA device node or `nvidia-smi` there is no CUDA device to see, and every recipe launch
    would otherwise pay ~2 s importing torch just to learn that.
    """
    import glob
    import shutil

    if not glob.glob("/dev/nvidia[0-9]*") and shutil.which("nvidia-smi") is None:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _flash_attn_error() -> str | None:
    """None when `flash_attn` imports, else why not (a wheel built for another torch fails here)."""
    try:
        import flash_attn  # noqa: F401
    except Exception as exc:  # ImportError, or an undefined-symbol OSError from a mismatched build
        return f"{type(exc).__name__}: {exc}"
    return None


def choose(
    cuda: Callable[[], bool] = _cuda_available, flash_error: Callable[[], str | None] = _flash_attn_error
) -> tuple[str, str]:
    """(implementation, reason): flash_attention_2 only with a GPU and an importable flash-attn."""
    if not cuda():
        return SDPA, "no CUDA device: using PyTorch SDPA attention (flash-attention needs a GPU)"
    err = flash_error()
    if err is None:
        return FLASH, "flash-attn imports and a CUDA device is visible: using flash_attention_2"
    return SDPA, (
        f"flash-attn is not importable ({err}); using PyTorch SDPA attention, which is slower and uses "
        "more memory on long sequences. Install it with `make setup-flash-attn`."
    )


def main(argv: list[str] | None = None) -> int:
    """Print the implementation (stdout) and one warning line when falling back to SDPA (stderr)."""
    args = sys.argv[1:] if argv is None else argv
    impl, reason = choose()
    if "--explain" in args:
        print(f"attention implementation for the recipes: {impl} ({reason})")
        return 0
    print(impl)
    if impl != FLASH:
        print(f"[omni-rl] warning: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
