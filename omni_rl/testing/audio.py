"""Real audio clips made on the spot (the fixtures have none): PCM wav files from numpy signals."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np


def write_wav(path: str | os.PathLike, signal: np.ndarray, rate: int = 16000) -> Path:
    """Mono 16-bit PCM wav of `signal` (floats in [-1, 1])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def tone(freq: float, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    """A sine tone at half amplitude."""
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def noise(seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Seeded white noise at a third of full scale (a clip that sounds nothing like a tone)."""
    return np.random.default_rng(seed).uniform(-1, 1, int(seconds * rate)) / 3
