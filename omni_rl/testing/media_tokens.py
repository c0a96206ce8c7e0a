"""How many prompt tokens one image / video / audio clip should cost on the vLLM server, from the processor.

The count must come from the *server venv's* processor (its transformers differs from the main venv's, and
video sizing changed between them) fed with the media as vLLM decodes it (vLLM's own video loader, 32
frames, which the processor then re-samples at 2 fps from their metadata). So `expected_media_tokens` runs this file as a script in
the server venv; the script imports nothing from omni_rl.

    .venv-vllm/bin/python omni_rl/testing/media_tokens.py MODEL_DIR '[["image", "a.jpg"], ["audio", "b.wav"]]' [NUM_FRAMES]

prints {"tokens": [...]}: how many media placeholder tokens the model's processor expands each item to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

VIDEO_FRAMES = 32  # frames vLLM's video loader decodes per clip (its default)


def expected_media_tokens(model_dir: str | os.PathLike, kind: str, path: str | os.PathLike,
                          num_frames: int = VIDEO_FRAMES) -> int:  # fmt: skip
    """Media tokens one item expands to, computed in the vLLM server venv (see module docstring)."""
    return expected_media_tokens_many(model_dir, [(kind, path)], num_frames)[0]


def expected_media_tokens_many(model_dir: str | os.PathLike, items: list[tuple[str, str | os.PathLike]],
                               num_frames: int = VIDEO_FRAMES) -> list[int]:  # fmt: skip
    """`expected_media_tokens` for many (kind, path) items in one server-venv process (imports cost ~10 s)."""
    from omni_rl.testing.servers import vllm_python

    py = vllm_python()
    if py is None:
        raise FileNotFoundError("vLLM server venv not found: run `make setup`")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_LOGGING_LEVEL="ERROR")
    spec = json.dumps([[k, str(p)] for k, p in items])
    cmd = [str(py), __file__, str(model_dir), spec, str(num_frames)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"media token count failed for {items}:\n{res.stderr[-3000:]}")
    return [int(n) for n in json.loads(res.stdout.strip().splitlines()[-1])["tokens"]]


def _load(kind: str, path: Path, num_frames: int, processor) -> dict:
    """The item as vLLM's media loaders decode it (kwargs for the HF processor call)."""
    data = path.read_bytes()
    if kind == "image":
        from vllm.multimodal.media.image import ImageMediaIO

        return {"images": [ImageMediaIO().load_bytes(data).media.convert("RGB")]}
    if kind == "video":
        from transformers.video_utils import VideoMetadata
        from vllm.multimodal.media.image import ImageMediaIO
        from vllm.multimodal.media.video import VideoMediaIO

        frames, meta = VideoMediaIO(ImageMediaIO(), num_frames=num_frames).load_bytes(data).media
        meta = VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"})
        # The Qwen processors re-sample the decoded frames at 2 fps of the clip's real length (a 9.7 s clip
        # becomes 18 frames); the count is the processor's own sampling rule, the frames' size is the clip's.
        n = len(processor.video_processor.sample_frames(metadata=meta, fps=2.0))
        return {"videos": [frames[:n]], "do_sample_frames": False}
    if kind == "audio":
        import librosa

        wave, _ = librosa.load(str(path), sr=16000, mono=True)  # vLLM resamples to the extractor's rate
        return {"audio": [wave]}
    raise ValueError(f"unknown media kind {kind!r}; use image, video or audio")


@lru_cache(maxsize=4)
def _processor(model_dir: str):
    """The model's saved processor, loaded once per script run."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


def _count(model_dir: str, kind: str, path: str, num_frames: int) -> int:
    """Run the model's own processor on one placeholder and count the expanded media tokens."""
    processor = _processor(model_dir)
    tok = processor.tokenizer
    token = getattr(processor, f"{kind}_token")
    out = processor(
        text=[f"x {token} y"], **_load(kind, Path(path), num_frames, processor), return_tensors="np"
    )
    token_id = tok.convert_tokens_to_ids(token)
    return int((out["input_ids"][0] == token_id).sum())


if __name__ == "__main__":
    model, spec = sys.argv[1:3]
    frames = int(sys.argv[3]) if len(sys.argv) > 3 else VIDEO_FRAMES
    print(json.dumps({"tokens": [_count(model, kind, file, frames) for kind, file in json.loads(spec)]}))
