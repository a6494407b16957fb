"""sentence-transformers in-process, for benchmarks/run (runs in the anchors' venv, not ours).

    python st_worker.py MODEL_DIR < commands

Loads the model from MODEL_DIR (no download), prints {"ready": ...}, then for each line of
JSON on stdin, {"batch": B, "calls": N, "seconds": S, "sentences": [...]}, encodes N batches
of B sentences (cycling through them, at most about S seconds) and prints one JSON line:
{"latencies_s": [...], "wall_s": ...}. Ends at end of input.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    import torch
    from sentence_transformers import SentenceTransformer, __version__

    model = SentenceTransformer(sys.argv[1], device="cpu")
    model.encode(["warm up"], show_progress_bar=False)
    print(
        json.dumps(
            {
                "ready": f"sentence-transformers {__version__}, torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads"
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        command = json.loads(line)
        batch, sentences = int(command["batch"]), command["sentences"]
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = time.monotonic() + float(command["seconds"])
        for call in range(int(command["calls"])):
            if time.monotonic() > deadline:
                break
            texts = [sentences[(call * batch + i) % len(sentences)] for i in range(batch)]
            t0 = time.perf_counter()
            model.encode(texts, batch_size=batch, convert_to_numpy=True, show_progress_bar=False)
            latencies.append(time.perf_counter() - t0)
        wall = time.perf_counter() - started
        print(json.dumps({"latencies_s": latencies, "wall_s": wall}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
