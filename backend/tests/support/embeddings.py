"""Encoder helpers: one load per snapshot per session, the reference data, waiting for loading."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient

from src.app import create_app
from src.embeddings import Encoder, load
from src.settings import Settings
from src.warmup import RUNNING, WAITING

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "data" / "minilm_reference.json"
# The claim in docs/api.md. The encoder's worst case is 1 - 2e-11 (the reference has 6 decimals);
# a tanh GELU scores 1 - 2.2e-6 and a LayerNorm epsilon of 1e-5 for 1e-12 scores 1 - 1.7e-6.
MIN_COSINE = 0.9999999


@functools.cache
def cached_load(snapshot_dir: Path, onnx_file: str | None = None) -> Encoder:
    """embeddings.load, once per folder and ONNX file (None: the NumPy BERT) for the whole
    session (a failed load is not cached)."""
    return load(snapshot_dir, onnx_file)


@dataclass(frozen=True)
class ReferenceItem:
    text: str
    token_count: int
    embedding: list[float]


@functools.cache
def reference_items() -> tuple[ReferenceItem, ...]:
    """sentence-transformers' own embeddings (tests/data/make_reference_embeddings.py)."""
    document = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return tuple(ReferenceItem(**item) for item in document["items"])


def text_of_length(length: int) -> str:
    """English prose of exactly `length` characters (the tokenizer reads words, not one blob)."""
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    return (sentence * (length // len(sentence) + 1))[:length]


def is_loading(check: str) -> bool:
    return any(part.endswith(": loading") for part in check.split("; "))


def readyz_after_loading(client: httpx2.Client, timeout: float = 60) -> httpx2.Response:
    """GET /readyz once the embeddings check no longer says a model is loading and this
    worker's warm-up has run, or stopped at a failure (src.warmup)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        checks = response.json()["checks"]
        if not is_loading(checks["embeddings"]) and checks["warmup"] not in (WAITING, RUNNING):
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"models still loading after {timeout} s: {response.json()}")
        time.sleep(0.05)


@contextmanager
def app_while_loading(settings: Settings) -> Iterator[TestClient]:
    """The app with its model still loading: the loader waits until the block ends."""
    release = threading.Event()

    def slow_load(path: Path, onnx_file: str | None) -> Encoder:
        release.wait(timeout=60)
        return cached_load(path, onnx_file)

    try:
        with TestClient(create_app(settings, load_encoder=slow_load)) as client:
            yield client
    finally:
        release.set()
