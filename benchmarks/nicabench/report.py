"""The benchmark's results as a table (one row per figure) and as JSON (pure functions).

The results are one JSON-able dict, section by section (see `rows` for the keys); the table
is made from that dict only, so the printed table and the JSON file always agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

HEADERS = ("section", "measure", "ours", "anchor", "ours / anchor")


class Row(NamedTuple):
    section: str
    measure: str
    ours: str
    anchor: str
    ratio: str


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """`12.3 s`; '-' for a missing figure (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


def times(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def _latency(figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return "-"
    text = (
        f"{number(figures['requests_per_s'])} req/s, p50 {number(figures['p50_ms'])} ms, "
        f"p95 {number(figures['p95_ms'])} ms"
    )
    if figures.get("failed"):
        text += f", {figures['failed']} failed"
    return text


def _deploy_rows(deploy: Mapping[str, Any]) -> list[Row]:
    names = (
        ("cold_s", "cold deploy (bare host)"),
        ("no_change_s", "no-change deploy"),
        ("code_change_s", "code-change redeploy"),
    )
    return [Row("deploy", name, number(deploy.get(key), 1, "s"), "", "") for key, name in names]


def _image_rows(image: Mapping[str, Any]) -> list[Row]:
    delta = image["image_mb"] - image["base_mb"]
    return [
        Row(
            "image",
            "runtime image vs its base",
            number(image["image_mb"], 1, "MB"),
            f"base {number(image['base_mb'], 1, 'MB')}",
            f"+{number(delta, 1, 'MB')}",
        )
    ]


def _prefetch_rows(prefetch: Mapping[str, Any]) -> list[Row]:
    size = f"{prefetch['files']} files, {number(prefetch['bytes'] / 1e6, 1, 'MB')}"
    return [
        Row(
            "prefetch",
            f"cold prefetch ({size})",
            number(prefetch["prefetch_mb_s"], 1, "MB/s"),
            f"raw HTTP {number(prefetch['raw_mb_s'], 1, 'MB/s')}",
            times(prefetch["prefetch_mb_s"] / prefetch["raw_mb_s"]),
        ),
        Row("prefetch", "warm prefetch (all cached)", number(prefetch["warm_s"], 2, "s"), "", ""),
    ]


RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "numpy": "NumPy BERT"}


def _embeddings_rows(embeddings: Mapping[str, Any]) -> list[Row]:
    rows = []
    for clients, figures in embeddings.get("metrics_cost", {}).items():
        rows.append(
            Row(
                "embeddings",
                f"{clients} client{'s' if clients != '1' else ''}, metrics on vs off",
                _latency(figures["on"]),
                f"metrics off {_latency(figures['off'])}",
                f"{times(figures['throughput_ratio'])} req/s",
            )
        )
    infinity = embeddings.get("infinity", {})
    runtimes = embeddings.get("runtimes", {})
    for key in ("ours", "ours_numpy"):
        ours = embeddings.get(key, {})
        runtime = runtimes.get(key)
        label = f", {RUNTIME_NAMES.get(runtime, runtime)}" if runtime else ""
        for clients in ours:
            mine, theirs = ours[clients], infinity.get(clients)
            ratio = "-"
            if theirs:
                ratio = (
                    f"{times(mine['requests_per_s'] / theirs['requests_per_s'])} req/s, "
                    f"{times(mine['p95_ms'] / theirs['p95_ms'])} p95"
                )
            rows.append(
                Row(
                    "embeddings",
                    f"{clients} client{'s' if clients != '1' else ''}, 1 sentence each{label}",
                    _latency(mine),
                    f"Infinity {_latency(theirs)}" if theirs else "Infinity: not run",
                    ratio,
                )
            )
    for batch, figures in embeddings.get("sentence_transformers", {}).items():
        rows.append(
            Row(
                "embeddings",
                f"sentence-transformers in-process, batch {batch}",
                "",
                f"{number(figures['sentences_per_s'])} sentences/s, "
                f"p50 {number(figures['p50_ms'])} ms, p95 {number(figures['p95_ms'])} ms",
                "",
            )
        )
    return rows


def _search_rows(search: Mapping[str, Any]) -> list[Row]:
    rows = []
    for docs, figures in search.items():
        statement = "-"
        if figures.get("statement_p50_ms") is not None:
            statement = (
                f"statement p50 {number(figures['statement_p50_ms'], 2)} ms, "
                f"p95 {number(figures['statement_p95_ms'], 2)} ms"
            )
        agreement = (
            f"recall@10 {figures['recall_at_10']:.3f}, "
            f"top-1 same {figures['top1_agreement'] * 100:.0f}%"
        )
        if "top1_agreement_paraphrases" in figures:
            agreement += (
                f" (paraphrases {figures['top1_agreement_paraphrases'] * 100:.0f}%, "
                f"unrelated {figures['top1_agreement_unrelated'] * 100:.0f}%)"
            )
        if figures.get("top1_misses_tied"):
            agreement += f" ({figures['top1_misses_tied']} of the misses float ties)"
        rows.append(
            Row(
                "search",
                f"/v1/search, {int(docs):,} documents, k=10",
                f"p50 {number(figures['p50_ms'])} ms, p95 {number(figures['p95_ms'])} ms; "
                + statement,
                f"exact search, {figures['queries']} queries",
                agreement,
            )
        )
    return rows


def _fleet_rows(fleet: Mapping[str, Any]) -> list[Row]:
    """The fleet's deploys, the one-host deploy on the same hosts as the anchor."""
    names = (
        ("cold", "cold deploy, 2 backend hosts + database host"),
        ("no_change", "no-change deploy, 2 backend hosts + database host"),
        ("code_change", "code-change redeploy, 2 backend hosts"),
    )
    rows = []
    for key, name in names:
        ours, anchor = fleet.get(f"fleet_{key}_s"), fleet.get(f"one_host_{key}_s")
        rows.append(
            Row(
                "fleet",
                name,
                number(ours, 1, "s"),
                f"one host: {number(anchor, 1, 's')}",
                times(ours / anchor) if ours and anchor else "-",
            )
        )
    return rows


SECTION_ROWS = {
    "deploy": _deploy_rows,
    "image": _image_rows,
    "prefetch": _prefetch_rows,
    "embeddings": _embeddings_rows,
    "search": _search_rows,
    "fleet": _fleet_rows,
}


def rows(results: Mapping[str, Any]) -> list[Row]:
    """One row per figure, for the sections present in `results`, in run order."""
    table: list[Row] = []
    for section, make in SECTION_ROWS.items():
        if section in results:
            table.extend(make(results[section]))
    return table


def format_table(table: Sequence[Row]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    cells = [HEADERS, *table]
    widths = [max(len(row[column]) for row in cells) for column in range(len(HEADERS))]

    def line(row: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            + " |"
        )

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(HEADERS), rule, *(line(row) for row in table)])


def write_json(results: Mapping[str, Any], path: Path) -> None:
    """The results as indented JSON (NaN written as null), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_no_nan(results), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _no_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(item) for item in value]
    return value
