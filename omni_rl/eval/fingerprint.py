"""Fingerprints that keep the eval cache honest: what was judged (item content) and by whom (the judge).

A cached judgment is reused only when both still match. The item hash covers everything the judge
sees or the label depends on (texts, media files, label, tie, criteria, task); the judge fingerprint
covers the resolved model id and its path on the server, the endpoint, the sampling, template and
parse mode, and — when the weights are on this machine — a hash of the config and weight files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omni_rl.data.schema import PreferencePair

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx")
_CONFIG_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "chat_template.jinja")
_EDGE = 1 << 20  # hash the first and last MiB of each weight file (a new checkpoint differs there)


def _digest(obj: Any, n: int = 16) -> str:
    """Stable short sha256 of a json-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


@functools.lru_cache(maxsize=65536)
def _file_sig(path: str, size: int, mtime_ns: int) -> str:
    """Size plus a hash of the first 64 KiB: a replaced media file is noticed without reading videos whole."""
    del mtime_ns  # part of the lru key only: an edited file is re-read
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return f"{size}:{hashlib.sha256(head).hexdigest()[:16]}"


def media_sig(path: str) -> str:
    """Signature of one media file ("missing" when it is not there; the loader decides whether that is ok)."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return _file_sig(path, st.st_size, st.st_mtime_ns)


def item_hash(pair: PreferencePair) -> str:
    """Content hash of a benchmark item: a changed row (text, media, label) gets a new hash."""
    d = pair.to_dict()
    d["media_sigs"] = [
        media_sig(p)
        for m in (pair.prompt_media, pair.chosen.media, pair.rejected.media)
        for _, p in m.paths()
    ]
    return _digest(d)


def weights_hash(folder: str | Path) -> str | None:
    """Hash of a local model folder's config files and the edges of its weight files (None if no such folder)."""
    root = Path(folder)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(root.iterdir()):
        if f.name in _CONFIG_FILES:
            h.update(f.name.encode() + f.read_bytes())
        elif f.suffix in _WEIGHT_SUFFIXES:
            size = f.stat().st_size
            h.update(f"{f.name}:{size}".encode())
            with f.open("rb") as fh:
                h.update(fh.read(_EDGE))
                if size > 2 * _EDGE:
                    fh.seek(size - _EDGE)
                    h.update(fh.read(_EDGE))
    return h.hexdigest()[:16]


async def served_model(
    base_url: str, model: str, api_key: str | None, timeout: float = 15.0
) -> dict[str, Any]:
    """The server's own entry for `model` from GET /models (vLLM reports its `root`, the weights' path)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            resp = await http.get(f"{base_url.rstrip('/')}/models", headers=headers)
            resp.raise_for_status()
            data = resp.json().get("data") or []
    except (httpx.HTTPError, ValueError) as exc:
        return {"id": model, "listing_error": f"{type(exc).__name__}: {exc}"}
    entry = next((m for m in data if m.get("id") == model), None)
    if entry is None:
        served = [m.get("id") for m in data]
        return {"id": model, "listing_error": f"server does not list {model!r} (serves {served})"}
    return {k: entry.get(k) for k in ("id", "root", "parent", "max_model_len") if entry.get(k) is not None}


async def judge_identity(judge: Any) -> dict[str, Any]:
    """Everything that changes a verdict, with `fingerprint` = its hash (listing errors stay out of the hash)."""
    desc = judge.describe()
    ident: dict[str, Any] = {
        "name": judge.name,
        "describe": {k: v for k, v in desc.items() if k != "api_key_set"},
    }
    client = getattr(judge, "client", None) or getattr(getattr(judge, "scorer", None), "client", None)
    local = desc.get("path")
    if client is not None and getattr(client, "base_url", None):
        served = await served_model(client.base_url, client.model, getattr(client, "api_key", None))
        ident["served_model"] = served
        local = local or served.get("root")
    if local:
        ident["weights_hash"] = weights_hash(local)
    hashed = {k: v for k, v in ident.items() if k != "served_model"}
    hashed["served_model"] = {k: v for k, v in ident.get("served_model", {}).items() if k != "listing_error"}
    ident["fingerprint"] = _digest(hashed)
    return ident
