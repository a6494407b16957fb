"""docker/prometheus/: the alert rules and the sample scrape configs are what Prometheus's own
checker accepts, the alerts fire on the series they are about (promtool's rule unit tests),
and they name only metrics docs/observability.md lists (whose list the backend's tests hold to
a real scrape: backend/tests/test_metrics.py).

promtool comes with Debian's `prometheus` package; scripts/test installs it. Without it these
tests fail, naming the package: they are not skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "docker" / "prometheus"
DOCS = REPO / "docs" / "observability.md"
CONFIGS = ["prometheus.one-host.yml", "prometheus.fleet.yml"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: install Debian's `prometheus` package (scripts/test does)"
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout, result.stdout


def test_each_alert_fires_on_its_series_and_not_on_healthy_ones() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", CONFIGS)
def test_the_sample_scrape_config_passes_promtool_check_config(config: str) -> None:
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {config} is valid prometheus config file syntax" in result.stdout


def documented_metrics() -> set[str]:
    """The metric names of docs/observability.md's tables (first column, in backticks)."""
    return set(re.findall(r"^\| `([a-z_]+)`", DOCS.read_text(encoding="utf-8"), re.MULTILINE))


def test_the_alerts_name_only_documented_metrics() -> None:
    rules = (PROMETHEUS / "alerts.yml").read_text(encoding="utf-8")
    named = set(re.findall(r"\b(nica_[a-z_]+)", rules))
    suffixes = ("_bucket", "_count", "_sum")
    families = {next((n[: -len(s)] for s in suffixes if n.endswith(s)), n) for n in named}
    assert families, "the rules name some nica_ metrics"
    assert families <= documented_metrics(), families - documented_metrics()
