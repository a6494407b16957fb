"""POST /v1/embeddings under 1 and N concurrent single-sentence clients, next to Infinity
serving the same model files on this machine, and sentence-transformers in-process.

Ours is the demo host's published port (through its proxy); Infinity a 127.0.0.1 port of
this machine. Each round measures, for each client count, ours then Infinity, then
sentence-transformers at batch 1 and batch N: interleaved, so both see about the same
background load. The rounds are pooled (every latency; requests over the blocks' wall time).

Ours is the public test model (on ONNX Runtime where the demo host's Hub serves its
onnx/model.onnx) and, when the host serves it on another runtime, the private test model: the
same weights without onnx/, on the NumPy BERT (`ours_numpy`). GET /v1/models says which
runtime serves each (`runtimes`).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import anchors, host
from .load import embeddings_request, has_one_embedding, run_block
from .options import Options
from .stats import Block, pool

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
NUMPY_MODEL = "nica/private-minilm"  # inventory/local: the same files, no onnx/
PAUSE_S = 1.0  # between blocks: the previous server's threads settle


def _block(options: Options, port: int, model: str, clients: int, sentences: list[str]) -> Block:
    time.sleep(PAUSE_S)
    warm = embeddings_request(model, sentences[::-1])
    run_block(port, clients, warm, clients * 2, 10, has_one_embedding)  # untimed
    return run_block(
        port,
        clients,
        embeddings_request(model, sentences),
        options.block_requests,
        options.block_seconds,
        has_one_embedding,
    )


def runtimes(port: int) -> dict[str, str | None]:
    """GET /v1/models of the demo host: repo id -> the runtime serving it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as answer:
        data = json.load(answer)["data"]
    return {str(model["id"]): model.get("runtime") for model in data}


def measure(options: Options, sentences: list[str], log_dir: Path) -> dict[str, Any]:
    python = anchors.ensure_venv()
    served = runtimes(options.port)
    numpy_too = NUMPY_MODEL in served and served[NUMPY_MODEL] != served.get(MODEL)
    ours: dict[int, list[Block]] = {clients: [] for clients in options.clients}
    ours_numpy: dict[int, list[Block]] = {clients: [] for clients in options.clients}
    theirs: dict[int, list[Block]] = {clients: [] for clients in options.clients}
    in_process: dict[int, list[Block]] = {clients: [] for clients in options.clients}
    worker = anchors.SentenceTransformersWorker(python, log_dir / "benchmark-st-worker.log")
    try:
        with anchors.infinity(python, log_dir / "benchmark-infinity.log") as (port, model_id):
            for round_index in range(options.rounds):
                for clients in options.clients:
                    host.say(
                        f"embeddings: round {round_index + 1} of {options.rounds}, "
                        f"{clients} client(s): ours, Infinity, sentence-transformers"
                    )
                    ours[clients].append(_block(options, options.port, MODEL, clients, sentences))
                    if numpy_too:
                        ours_numpy[clients].append(
                            _block(options, options.port, NUMPY_MODEL, clients, sentences)
                        )
                    theirs[clients].append(_block(options, port, model_id, clients, sentences))
                    time.sleep(PAUSE_S)
                    in_process[clients].append(
                        worker.encode(
                            clients,
                            max(1, options.block_requests // clients),
                            options.block_seconds,
                            sentences,
                        )
                    )
        description = worker.description
    finally:
        worker.close()
    for name, blocks in (("ours", ours), ("ours (NumPy)", ours_numpy), ("Infinity", theirs)):
        for clients, runs in blocks.items():
            errors = [block.first_error for block in runs if block.first_error]
            if errors:
                host.say(f"embeddings: {name} at {clients} client(s) had failures: {errors[0]}")
    numpy_figures = {str(c): pool(runs).as_dict() for c, runs in ours_numpy.items() if runs}
    return {
        "ours": {str(c): pool(runs).as_dict() for c, runs in ours.items()},
        **({"ours_numpy": numpy_figures} if numpy_figures else {}),
        "runtimes": {
            "ours": served.get(MODEL),
            **({"ours_numpy": served.get(NUMPY_MODEL)} if numpy_figures else {}),
        },
        "infinity": {str(c): pool(runs).as_dict() for c, runs in theirs.items()},
        "infinity_model": model_id,
        "sentence_transformers": {
            str(c): _sentences_per_s(runs, c) for c, runs in in_process.items()
        },
        "sentence_transformers_version": description,
        "rounds": options.rounds,
        "block_requests": options.block_requests,
    }


def _sentences_per_s(blocks: list[Block], batch: int) -> dict[str, Any]:
    figures = pool(blocks).as_dict()
    figures["sentences_per_s"] = round(figures["requests_per_s"] * batch, 2)
    return figures
