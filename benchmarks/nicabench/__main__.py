"""benchmarks/run: one benchmark run against the demo host (see docs/benchmarks.md).

Prints a table (Markdown) on stdout and writes the same results as JSON (--json); progress
goes to stderr. Exit status 0 when every section ran, 1 when one failed (its error is in the
JSON and on stderr; the other sections still run), 2 for bad options.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import corpus, deploy, embeddings, fleet, host, metrics_cost, prefetch, report, search
from .options import REPO, Options, parse_or_exit

# The embeddings load's sentences: those after the first SKIPPED_SENTENCES + --queries, as when
# the search section took its documents and queries from the same list (the same load as before).
SKIPPED_SENTENCES = 400
LOAD_SENTENCES = 400  # single sentences of the embeddings load


def machine() -> dict[str, Any]:
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    for line in lines:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(options: Options) -> tuple[dict[str, Any], dict[str, str]]:
    results: dict[str, Any] = {"machine": machine()}
    errors: dict[str, str] = {}
    logs = REPO / "build" / "reports"
    sentences = corpus.stdlib_sentences(SKIPPED_SENTENCES + options.queries + LOAD_SENTENCES)
    load = sentences[SKIPPED_SENTENCES + options.queries :]
    steps = {
        "deploy": lambda: deploy.measure(options, logs),
        "image": lambda: deploy.image_size(options),
        "prefetch": lambda: prefetch.measure(options),
        "embeddings": lambda: (
            metrics_cost.measure(options, load, logs)
            if options.metrics_cost
            else embeddings.measure(options, load, logs)
        ),
        "search": lambda: search.measure(options),
        "fleet": lambda: fleet.measure(logs),
    }
    for section in options.sections:
        started = time.monotonic()
        try:
            results[section] = steps[section]()
        except (host.HostError, OSError, ValueError, KeyError) as error:
            errors[section] = f"{type(error).__name__}: {error}"
            host.say(f"{section}: failed: {errors[section]}")
            if section == "deploy":
                break  # the host is in no known state: nothing after it is meaningful
        host.say(f"{section}: {time.monotonic() - started:.0f} s")
    results["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    if errors:
        results["errors"] = errors
    return results, errors


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_or_exit(sys.argv[1:] if argv is None else argv)
    results, errors = run(options)
    report.write_json(results, options.json_path)
    print(report.format_table(report.rows(results)))
    print(f"\n(JSON: {options.json_path})")
    for section, error in errors.items():
        print(f"error: {section}: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
