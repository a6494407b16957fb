"""What the metrics cost: POST /v1/embeddings on the same backend with metrics on and off,
side by side on this machine (`benchmarks/run --sections embeddings --metrics-cost`).

Two backends of this checkout run at once on 127.0.0.1 (local_backend.py: uvicorn, two
workers, the real model), one with PROMETHEUS_MULTIPROC_DIR and the metrics process (scraped
every 5 s), one without (what METRICS_ENABLED=0 gives). Each round measures, for each client
count, metrics on then metrics off: interleaved, so both see about the same background load;
the rounds are pooled as the embeddings section pools its own. The target: throughput with
metrics within 5% of without, at 16 clients.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from . import host, local_backend
from .load import embeddings_request, has_one_embedding, run_block
from .options import Options
from .stats import Block, pool, ratio

PAUSE_S = 1.0


def _block(options: Options, port: int, clients: int, sentences: list[str]) -> Block:
    time.sleep(PAUSE_S)
    model = local_backend.MODEL
    run_block(port, clients, embeddings_request(model, sentences[::-1]), clients * 2, 10)
    return run_block(
        port,
        clients,
        embeddings_request(model, sentences),
        options.block_requests,
        options.block_seconds,
        has_one_embedding,
    )


def measure(options: Options, sentences: list[str], log_dir: Path) -> dict[str, Any]:
    on: dict[int, list[Block]] = {clients: [] for clients in options.clients}
    off: dict[int, list[Block]] = {clients: [] for clients in options.clients}
    with tempfile.TemporaryDirectory(prefix="nica-bench-hf-") as folder:
        home = local_backend.hf_home(Path(folder))
        with (
            local_backend.serving(
                home, log_dir / "benchmark-metrics-on.log", metrics=True
            ) as with_metrics,
            local_backend.serving(
                home, log_dir / "benchmark-metrics-off.log", metrics=False
            ) as without,
        ):
            for round_index in range(options.rounds):
                for clients in options.clients:
                    host.say(
                        f"embeddings: round {round_index + 1} of {options.rounds}, "
                        f"{clients} client(s): metrics on, metrics off"
                    )
                    on[clients].append(_block(options, with_metrics.port, clients, sentences))
                    off[clients].append(_block(options, without.port, clients, sentences))
    for name, blocks in (("metrics on", on), ("metrics off", off)):
        for clients, runs in blocks.items():
            errors = [block.first_error for block in runs if block.first_error]
            if errors:
                host.say(f"embeddings: {name} at {clients} client(s) had failures: {errors[0]}")
    figures: dict[str, Any] = {}
    for clients in options.clients:
        with_figures, without_figures = pool(on[clients]), pool(off[clients])
        figures[str(clients)] = {
            "on": with_figures.as_dict(),
            "off": without_figures.as_dict(),
            "throughput_ratio": round(
                ratio(with_figures.requests_per_s, without_figures.requests_per_s), 4
            ),
        }
    return {
        "metrics_cost": figures,
        "backend": "this checkout under uvicorn on 127.0.0.1, 2 workers, the real model",
        "rounds": options.rounds,
        "block_requests": options.block_requests,
    }
