"""Sentences/s and latency of the backend's NumPy encoder against sentence-transformers.

One run measures both on the same CPU, the same model and the same sentences, at batch
sizes 1 and 32, in alternating blocks of calls, for a bounded number of calls (and about
--seconds at most per encoder and batch size), then prints the ratio. Without
sentence-transformers installed, its half is skipped with a line that says so. Nothing is
downloaded: the model comes from a local folder.

    python benchmarks/embeddings_bench.py [--model-dir build/hub-data/all-MiniLM-L6-v2]

Needs the backend's dependencies (numpy, tokenizers, safetensors); sentence-transformers
and torch only for the comparison (see backend/tests/data/make_reference_embeddings.py for
a venv that has both). threadpoolctl, if present, shows which BLAS kernel numpy runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_DIR / "build" / "hub-data" / "all-MiniLM-L6-v2"
BATCH_SIZES = (1, 32)
CALLS = {1: 200, 32: 20}  # timed calls per encoder and batch size, in ROUNDS blocks
ROUNDS = 4
WARMUP_CALLS = 2  # untimed, before each block
PAUSE_S = 0.5  # before each block
CORPUS_SIZE = 640
WORDS = (
    "the a model search query document vector embedding server request answer fast slow "
    "city river bridge library school clinic budget year morning committee member people "
    "reads writes finds keeps sends takes gives small large old new green quiet bright "
    "because while although after before under over between into from with without"
)

HEADER = (
    f"{'encoder':<24} {'batch':>5} {'calls':>6} {'sentences/s':>12} {'p50 ms':>9} {'p95 ms':>9}"
)
Encode = Callable[[list[str]], object]


@dataclass(frozen=True)
class Result:
    calls: int
    sentences_per_s: float
    p50_ms: float
    p95_ms: float


def corpus(size: int) -> list[str]:
    """Deterministic sentences of 5 to 60 words (about 7 to 65 tokens)."""
    rng = random.Random(1234)  # noqa: S311 - repeatable sentences, not secrets
    words = WORDS.split()
    return [
        " ".join(rng.choice(words) for _ in range(rng.randint(5, 60))).capitalize() + "."
        for _ in range(size)
    ]


def measure(
    encoders: dict[str, Encode], texts: Sequence[str], batch_size: int, seconds: float
) -> dict[str, Result]:
    """Time each encoder on the same batches, in ROUNDS blocks that alternate encoders.

    Alternating blocks, both see about the same background load (this machine is shared).
    Not call by call: each library's idle BLAS/OpenMP threads spin for a while after a
    call and would slow the other one down; a pause before each block lets them settle.
    """

    def batch(call: int) -> list[str]:
        start = (call * batch_size) % len(texts)
        return list(texts[start : start + batch_size])

    per_round = CALLS[batch_size] // ROUNDS
    latencies: dict[str, list[float]] = {name: [] for name in encoders}
    spent = dict.fromkeys(encoders, 0.0)
    for round_index in range(ROUNDS):
        for name, encode in encoders.items():
            if spent[name] > seconds:
                continue
            time.sleep(PAUSE_S)
            for call in range(WARMUP_CALLS):
                encode(batch(call))
            for call in range(round_index * per_round, (round_index + 1) * per_round):
                started = time.perf_counter()
                encode(batch(WARMUP_CALLS + call))
                latencies[name].append(time.perf_counter() - started)
            spent[name] += sum(latencies[name][-per_round:])
    return {name: summarize(batch_size, values) for name, values in latencies.items()}


def summarize(batch_size: int, latencies: list[float]) -> Result:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Result(
        calls=len(latencies),
        sentences_per_s=batch_size * len(latencies) / sum(latencies),
        p50_ms=statistics.median(latencies) * 1000,
        p95_ms=cuts[94] * 1000,
    )


def numpy_encoder(model_dir: Path) -> Encode:
    sys.path.insert(0, str(REPO_DIR / "backend"))
    embeddings = importlib.import_module("src.embeddings")
    encoder = embeddings.load(model_dir)

    def encode(texts: list[str]) -> object:
        return encoder.encode(texts, batch_size=len(texts))

    return encode


def sentence_transformers_encoder(model_dir: Path) -> tuple[Encode, str] | str:
    """(encode, description), or why it cannot run."""
    try:
        st = importlib.import_module("sentence_transformers")
        torch = importlib.import_module("torch")
    except ImportError as error:
        return f"not importable ({error})"
    model = st.SentenceTransformer(str(model_dir), device="cpu")

    def encode(texts: list[str]) -> object:
        return model.encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        )

    described = f"sentence-transformers {st.__version__}, torch {torch.__version__}"
    return encode, f"{described}, {torch.get_num_threads()} threads"


def describe_machine() -> list[str]:
    import numpy

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        f"cpu: {cpu}, {os.cpu_count()} logical cores; python {platform.python_version()}",
        f"numpy {numpy.__version__}",
    ]
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        lines.append(f"{name}={os.environ.get(name, '(unset)')}")
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return [*lines, "BLAS: threadpoolctl not installed, kernel unknown"]
    for pool in threadpoolctl.threadpool_info():
        if pool.get("user_api") == "blas":
            lines.append(_describe_blas(pool))
    return lines


def _describe_blas(pool: dict[str, Any]) -> str:
    library = Path(str(pool.get("filepath", "")))
    where = f"{library.parent.name}/{library.name}"  # numpy.libs/...: the one numpy uses
    return (
        f"BLAS: {pool.get('internal_api')} {pool.get('version')}, "
        f"kernel {pool.get('architecture')}, {pool.get('num_threads')} threads ({where})"
    )


def row(name: str, batch_size: int, result: Result) -> str:
    return (
        f"{name:<24} {batch_size:>5} {result.calls:>6} {result.sentences_per_s:>12.1f} "
        f"{result.p50_ms:>9.2f} {result.p95_ms:>9.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--seconds",
        type=float,
        default=30,
        help="at most about this long per encoder and batch size (default 30)",
    )
    args = parser.parse_args(argv)
    if not (args.model_dir / "model.safetensors").is_file():
        print(f"error: no model.safetensors in {args.model_dir}", file=sys.stderr)
        return 2

    texts = corpus(CORPUS_SIZE)
    encoders: dict[str, Encode] = {"numpy (src.embeddings)": numpy_encoder(args.model_dir)}
    reference = sentence_transformers_encoder(args.model_dir)
    for line in describe_machine():
        print(line)
    if isinstance(reference, str):
        print(f"sentence-transformers: skipped, {reference}")
    else:
        encoders["sentence-transformers"] = reference[0]
        print(reference[1])
    print(f"model: {args.model_dir}; {len(texts)} sentences of 5-60 words")
    print()
    print(HEADER)
    results: dict[tuple[str, int], Result] = {}
    for batch_size in BATCH_SIZES:
        for name, result in measure(encoders, texts, batch_size, args.seconds).items():
            results[name, batch_size] = result
            print(row(name, batch_size, result), flush=True)
    if len(encoders) == 2:
        print()
        for batch_size in BATCH_SIZES:
            ours = results["numpy (src.embeddings)", batch_size]
            theirs = results["sentence-transformers", batch_size]
            print(
                f"ratio numpy / sentence-transformers, batch {batch_size}: "
                f"{ours.sentences_per_s / theirs.sentences_per_s:.2f}x sentences/s, "
                f"{ours.p50_ms / theirs.p50_ms:.2f}x p50 latency"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
