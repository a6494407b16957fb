"""benchmarks/nicabench/report.py: the table and the JSON agree, one row per figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.nicabench.report import HEADERS, format_table, rows, write_json


def latency(rps: float, p50: float, p95: float, failed: int = 0) -> dict[str, Any]:
    return {
        "requests": 400,
        "failed": failed,
        "seconds": 4.0,
        "requests_per_s": rps,
        "p50_ms": p50,
        "p95_ms": p95,
    }


RESULTS: dict[str, Any] = {
    "machine": {"cpu": "test"},
    "deploy": {"cold_s": 95.04, "no_change_s": 12.0, "code_change_s": 61.3},
    "image": {"image_mb": 265.2, "base_mb": 123.3},
    "prefetch": {
        "files": 9,
        "bytes": 91_000_000,
        "prefetch_mb_s": 40.0,
        "raw_mb_s": 80.0,
        "warm_s": 0.412,
    },
    "embeddings": {
        "ours": {"1": latency(50.0, 18.0, 25.0), "16": latency(120.0, 120.0, 180.0, failed=2)},
        "infinity": {"1": latency(40.0, 22.0, 30.0), "16": latency(100.0, 150.0, 360.0)},
        "sentence_transformers": {"1": {**latency(70.0, 13.0, 17.0), "sentences_per_s": 70.0}},
    },
    "search": {
        "100000": {
            "p50_ms": 20.0,
            "p95_ms": 31.5,
            "statement_p50_ms": 3.1,
            "statement_p95_ms": 7.254,
            "queries": 100,
            "recall_at_10": 0.987,
            "top1_agreement": 1.0,
            "top1_misses": 0,
            "top1_misses_tied": 0,
        }
    },
}


def row(measure_start: str) -> tuple[str, ...]:
    found = [r for r in rows(RESULTS) if r.measure.startswith(measure_start)]
    assert len(found) == 1, f"one row for {measure_start!r}, got {found}"
    return tuple(found[0])


def test_one_row_per_figure_in_run_order() -> None:
    sections = [r.section for r in rows(RESULTS)]
    assert sections == ["deploy"] * 3 + ["image"] + ["prefetch"] * 2 + ["embeddings"] * 3 + [
        "search"
    ]


def test_a_missing_deploy_figure_is_a_dash() -> None:
    figures = rows({"deploy": {"cold_s": None, "no_change_s": 12.0, "code_change_s": 61.3}})
    assert figures[0].ours == "-", "--keep-host: no cold deploy measured"
    assert figures[1].ours == "12.0 s"


def test_image_row_shows_the_delta_to_the_base() -> None:
    assert row("runtime image") == (
        "image",
        "runtime image vs its base",
        "265.2 MB",
        "base 123.3 MB",
        "+141.9 MB",
    )


def test_prefetch_row_is_the_ratio_to_the_raw_download() -> None:
    assert row("cold prefetch")[2:] == ("40.0 MB/s", "raw HTTP 80.0 MB/s", "0.50x")
    assert row("cold prefetch")[1] == "cold prefetch (9 files, 91.0 MB)"
    assert row("warm prefetch")[2] == "0.41 s"


def test_embeddings_rows_put_infinity_beside_ours_with_both_ratios() -> None:
    sixteen = row("16 clients")
    assert sixteen[2] == "120.0 req/s, p50 120.0 ms, p95 180.0 ms, 2 failed"
    assert sixteen[3] == "Infinity 100.0 req/s, p50 150.0 ms, p95 360.0 ms"
    assert sixteen[4] == "1.20x req/s, 0.50x p95"
    assert row("1 client,")[4] == "1.25x req/s, 0.83x p95"


def test_each_runtime_of_ours_gets_its_rows_named_beside_infinity() -> None:
    embeddings = {
        **RESULTS["embeddings"],
        "ours_numpy": {"16": latency(80.0, 150.0, 200.0)},
        "runtimes": {"ours": "onnxruntime", "ours_numpy": "numpy"},
    }
    found = [r for r in rows({"embeddings": embeddings}) if "clients" in r.measure]
    assert [(r.measure, r.ratio) for r in found] == [
        ("16 clients, 1 sentence each, ONNX Runtime", "1.20x req/s, 0.50x p95"),
        ("16 clients, 1 sentence each, NumPy BERT", "0.80x req/s, 0.56x p95"),
    ]


def test_metrics_cost_row_puts_metrics_off_beside_on_with_the_throughput_ratio() -> None:
    on = {"requests_per_s": 95.0, "p50_ms": 160.0, "p95_ms": 200.0, "failed": 0}
    off = {"requests_per_s": 100.0, "p50_ms": 150.0, "p95_ms": 190.0, "failed": 0}
    cost = {"metrics_cost": {"16": {"on": on, "off": off, "throughput_ratio": 0.95}}}
    (found,) = rows({"embeddings": cost})
    assert found == (
        "embeddings",
        "16 clients, metrics on vs off",
        "95.0 req/s, p50 160.0 ms, p95 200.0 ms",
        "metrics off 100.0 req/s, p50 150.0 ms, p95 190.0 ms",
        "0.95x req/s",
    )


def test_sentence_transformers_row_is_in_sentences_per_second() -> None:
    assert row("sentence-transformers")[3] == "70.0 sentences/s, p50 13.0 ms, p95 17.0 ms"


def test_search_row_gives_end_to_end_and_statement_latency_recall_and_top1() -> None:
    assert row("/v1/search")[1:] == (
        "/v1/search, 100,000 documents, k=10",
        "p50 20.0 ms, p95 31.5 ms; statement p50 3.10 ms, p95 7.25 ms",
        "exact search, 100 queries",
        "recall@10 0.987, top-1 same 100%",
    )


def test_search_row_says_how_many_top1_misses_are_float_ties() -> None:
    figures = {**RESULTS["search"]["100000"], "top1_agreement": 0.98, "top1_misses": 2}
    (found,) = rows({"search": {"100000": {**figures, "top1_misses_tied": 1}}})
    assert found.ratio == "recall@10 0.987, top-1 same 98% (1 of the misses float ties)"


def test_search_row_of_an_older_run_without_statement_timing_shows_a_dash() -> None:
    older = {k: v for k, v in RESULTS["search"]["100000"].items() if "statement" not in k}
    (found,) = rows({"search": {"100000": older}})
    assert found.ours == "p50 20.0 ms, p95 31.5 ms; -"


def test_table_is_markdown_with_aligned_columns() -> None:
    lines = format_table(rows(RESULTS)).splitlines()
    assert lines[0].startswith("| section ") and all(h in lines[0] for h in HEADERS)
    assert set(lines[1]) <= {"|", "-"}, "the second line is the rule"
    assert len({len(line) for line in lines}) == 1, "every line padded to the same width"
    assert len(lines) == 2 + len(rows(RESULTS))


def test_json_holds_the_same_figures_with_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "benchmark.json"
    write_json({**RESULTS, "extra": {"p95_ms": float("nan")}}, path)
    written = json.loads(path.read_text())
    assert written["embeddings"]["ours"]["16"]["requests_per_s"] == 120.0
    assert written["extra"]["p95_ms"] is None, "NaN is not JSON: written as null"
    assert rows(written) == rows(RESULTS), "the table made from the file is the printed one"
    assert not list(path.parent.glob("*.tmp")), "written atomically, no leftover"


def test_fleet_rows_put_the_one_host_deploy_beside_as_the_anchor() -> None:
    fleet = {
        "one_host_cold_s": 150.0,
        "one_host_no_change_s": 10.0,
        "one_host_code_change_s": 60.0,
        "fleet_cold_s": 180.0,
        "fleet_no_change_s": 25.0,
        "fleet_code_change_s": 90.0,
    }
    table = {r.measure: tuple(r) for r in rows({"fleet": fleet})}
    assert table["cold deploy, 2 backend hosts + database host"][2:] == (
        "180.0 s",
        "one host: 150.0 s",
        "1.20x",
    )
    assert table["no-change deploy, 2 backend hosts + database host"][2:] == (
        "25.0 s",
        "one host: 10.0 s",
        "2.50x",
    )
    assert table["code-change redeploy, 2 backend hosts"][2:] == (
        "90.0 s",
        "one host: 60.0 s",
        "1.50x",
    )


def test_search_row_gives_top1_per_kind_of_query() -> None:
    figures = {
        **RESULTS["search"]["100000"],
        "top1_agreement": 0.94,
        "top1_agreement_paraphrases": 1.0,
        "top1_agreement_unrelated": 0.88,
    }
    (found,) = rows({"search": {"100000": figures}})
    assert found.ratio == ("recall@10 0.987, top-1 same 94% (paraphrases 100%, unrelated 88%)")
