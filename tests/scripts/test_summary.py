"""scripts/lib/summary.py: the closing line, and skips in CI only where allowed_skips.txt says.

Run from the repository root: `.venv/bin/python -m pytest -q tests/scripts`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from xml.sax.saxutils import quoteattr

import pytest

SUMMARY = Path(__file__).resolve().parents[2] / "scripts" / "lib" / "summary.py"
# An entry of scripts/lib/allowed_skips.txt: this test id, skipped for this reason.
ALLOWED_ID = (
    "tests.test_telemetry",
    "test_without_an_endpoint_nothing_is_exported_and_nothing_warns",
)
ALLOWED_REASON = "port 4318 is in use here"
NO_POSTGRES = "no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)"


def junit_case(classname: str, name: str, skipped: str | None = None) -> str:
    """One <testcase> as pytest's junit report writes it, skipped with that message or passed."""
    inner = ""
    if skipped is not None:
        inner = f'<skipped type="pytest.skip" message={quoteattr(skipped)}>file.py:1: {skipped}'
        inner += "</skipped>"
    return f"<testcase classname={quoteattr(classname)} name={quoteattr(name)}>{inner}</testcase>"


def write_report(folder: Path, *cases: tuple[str, str, str | None]) -> Path:
    """folder/unit.xml with `cases`: (classname, name, the skip message or None for a pass)."""
    skipped = sum(1 for case in cases if case[2] is not None)
    body = "".join(junit_case(*case) for case in cases)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "unit.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="0" failures="0" skipped="{skipped}" '
        f'tests="{len(cases)}">{body}</testsuite></testsuites>',
        encoding="utf-8",
    )
    return folder


def summary(reports: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, str(SUMMARY), str(reports)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


PASSED = ("tests.test_api", "test_healthz", None)


def test_allowed_skip_passes_in_ci(tmp_path: Path) -> None:
    reports = write_report(tmp_path, PASSED, (*ALLOWED_ID, ALLOWED_REASON))
    result = summary(reports, ci=True)
    assert result.returncode == 0, f"an allowed skip should pass in CI: {result.stderr}"
    assert result.stdout.splitlines()[-1] == "tests: 1 passed, 0 failed, 1 skipped"


def test_skip_not_allowed_fails_in_ci_naming_test_and_reason(tmp_path: Path) -> None:
    reports = write_report(tmp_path, PASSED, ("tests.test_db_cli", "test_bad_usage", NO_POSTGRES))
    result = summary(reports, ci=True)
    assert result.returncode == 1, f"a skip not allowed should fail in CI, got {result.returncode}"
    expected = (
        "error: skipped in CI, not in allowed_skips.txt: tests.test_db_cli::test_bad_usage: "
        + NO_POSTGRES
    )
    assert expected in result.stderr.splitlines(), f"expected {expected!r} in {result.stderr!r}"


def test_skip_not_allowed_passes_outside_ci(tmp_path: Path) -> None:
    reports = write_report(tmp_path, PASSED, ("tests.test_db_cli", "test_bad_usage", NO_POSTGRES))
    result = summary(reports, ci=False)
    assert result.returncode == 0, f"outside CI a skip is shown, not failed: {result.stderr}"
    assert f"skipped: tests.test_db_cli::test_bad_usage: {NO_POSTGRES}" in result.stderr


def test_allowed_test_skipped_for_another_reason_fails_in_ci(tmp_path: Path) -> None:
    reports = write_report(tmp_path, PASSED, (*ALLOWED_ID, NO_POSTGRES))
    result = summary(reports, ci=True)
    assert result.returncode == 1, "the allow-list names the reason too; another one must fail"


def test_a_run_where_nothing_passed_fails(tmp_path: Path) -> None:
    reports = write_report(tmp_path, (*ALLOWED_ID, ALLOWED_REASON))
    result = summary(reports, ci=False)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (1, "error: no test ran")


def load_summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("summary", SUMMARY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["summary"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_allow_list_line_without_a_reason_is_refused_by_line(tmp_path: Path) -> None:
    module = load_summary()
    allow_list = tmp_path / "allowed_skips.txt"
    allow_list.write_text("# a comment\n\ntests.test_api::test_healthz\n", encoding="utf-8")
    with pytest.raises(module.AllowListError, match=r"^allowed_skips\.txt line 3: expected"):
        module.read_allowed(allow_list)


STEPTIME = SUMMARY.with_name("steptime.py")


def test_molecule_actions_are_timed_from_the_output_that_passes_through(tmp_path: Path) -> None:
    # The lines Molecule prints when an action starts, colour codes and all.
    output = (
        "\x1b[2mINFO    \x1b[0m default ➜ create: \x1b[1mExecuting\x1b[0m\n"
        "PLAY [Create] ***\n"
        "INFO     default ➜ converge: Executing\n"
        "ok: [host]\n"
    )
    log, actions = tmp_path / "step.log", tmp_path / "step.actions.tsv"
    result = subprocess.run(
        [sys.executable, str(STEPTIME), str(log), str(actions)],
        input=output,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == output, "the output must pass through unchanged"
    rows = [line.split("\t") for line in actions.read_text(encoding="utf-8").splitlines()]
    assert [row[:2] for row in rows] == [["default", "create"], ["default", "converge"]]
    assert all(float(row[2]) >= 0 for row in rows)
    stamped = log.read_text(encoding="utf-8").splitlines()
    assert len(stamped) == 4 and stamped[1].split(maxsplit=1) == ["0.0", "PLAY [Create] ***"]


def test_the_summary_prints_each_step_and_molecule_action_with_its_time(tmp_path: Path) -> None:
    reports = write_report(tmp_path, PASSED)
    (reports / "steps.tsv").write_text(
        "step02\tmolecule test\t125\t1\nstep01\truff\t3\t0\n", encoding="utf-8"
    )
    (reports / "step02.actions.tsv").write_text(
        "default\tcreate\t20.4\ndefault\tconverge\t104.6\n", encoding="utf-8"
    )
    lines = summary(reports, ci=False).stdout.splitlines()
    assert lines[:5] == [
        "time (min:s)  step",
        "        0:03  ruff",
        "        2:05  molecule test  (failed: exit 1)",
        "        0:20      default create",
        "        1:45      default converge",
    ], lines
    assert lines[-1] == "tests: 1 passed, 0 failed, 0 skipped"
