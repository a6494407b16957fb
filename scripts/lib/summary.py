"""Add up the junit reports of a test run and print one closing line.

usage: summary.py REPORT_DIR [FAILED_STEP ...]; exits 1 if a test or a step failed, if no
test passed, or, in CI (CI=true), if a test was skipped that allowed_skips.txt does not allow.
Each skip is printed with its test id and reason; an allowed one says so.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ALLOWED_SKIPS = Path(__file__).with_name("allowed_skips.txt")


class AllowListError(Exception):
    """allowed_skips.txt is malformed; str() is the one line to print."""


@dataclass(frozen=True)
class Skip:
    test_id: str  # classname::name, e.g. tests.test_api::test_healthz
    reason: str


@dataclass(frozen=True)
class Allowed:
    test_id: str  # fnmatch patterns
    reason: str

    def allows(self, skip: Skip) -> bool:
        return fnmatch.fnmatchcase(skip.test_id, self.test_id) and fnmatch.fnmatchcase(
            skip.reason, self.reason
        )


def read_allowed(path: Path) -> list[Allowed]:
    """`TEST_ID_PATTERN  REASON_PATTERN` per line; # comments and blank lines ignored."""
    allowed = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise AllowListError(
                f"{path.name} line {number}: expected a test id pattern, then the skip reason"
            )
        allowed.append(Allowed(fields[0], fields[1].strip()))
    return allowed


def skips_in(report: Path) -> list[Skip]:
    skips = []
    # Our own pytest junit reports, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        skipped = case.find("skipped")
        if skipped is not None:
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            skips.append(Skip(test_id, skipped.get("message", "").strip()))
    return skips


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def refused_skips(skips: list[Skip], allowed: list[Allowed], ci: bool) -> list[Skip]:
    """Print each skip with its reason; return those that fail the run (in CI, not allowed)."""
    refused = []
    for skip in skips:
        if any(entry.allows(skip) for entry in allowed):
            print(f"skipped (allowed): {skip.test_id}: {skip.reason}", file=sys.stderr)
        elif ci:
            refused.append(skip)
            print(
                f"error: skipped in CI, not in {ALLOWED_SKIPS.name}: {skip.test_id}: {skip.reason}",
                file=sys.stderr,
            )
        else:
            print(f"skipped: {skip.test_id}: {skip.reason}", file=sys.stderr)
    return refused


def clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes:3d}:{rest:02d}"


def times(report_dir: Path) -> list[str]:
    """Where the time went: each step of scripts/test (steps.tsv: slug, name, seconds,
    exit code; in the order they ended), under a Molecule step its actions
    (<slug>.actions.tsv, from scripts/lib/steptime.py), and the wall time of the whole run
    (steps in the background overlap the others)."""
    steps = report_dir / "steps.tsv"
    if not steps.exists():
        return []
    lines, wall = ["time (min:s)  step"], 0.0
    rows = sorted(row.split("\t") for row in steps.read_text(encoding="utf-8").splitlines())
    for slug, name, seconds, rc in rows:
        status = "" if rc == "0" else f"  (failed: exit {rc})"
        lines.append(f"      {clock(float(seconds))}  {name}{status}")
        actions = report_dir / f"{slug}.actions.tsv"
        if actions.exists():
            for action_row in actions.read_text(encoding="utf-8").splitlines():
                scenario, action, action_seconds = action_row.split("\t")
                lines.append(f"      {clock(float(action_seconds))}      {scenario} {action}")
    started = report_dir / "started"
    if started.exists():
        wall = float(time.time()) - float(started.read_text(encoding="utf-8"))
        lines.append(f"      {clock(wall)}  the whole run (wall time)")
    return lines


def main(argv: list[str]) -> int:
    report_dir, failed_steps = Path(argv[1]), argv[2:]
    for line in times(report_dir):
        print(line)
    try:
        allowed = read_allowed(ALLOWED_SKIPS)
    except (OSError, AllowListError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    passed = failed = skipped = 0
    skips: list[Skip] = []
    for report in sorted(report_dir.glob("*.xml")):
        # Our own pytest junit reports, not untrusted input.
        for suite in ET.parse(report).getroot().iter("testsuite"):  # noqa: S314
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
        skips += skips_in(report)
    refused = refused_skips(skips, allowed, in_ci())
    for step in failed_steps:
        print(f"failed step: {step}", file=sys.stderr)
    if passed == 0:
        print("error: no test ran", file=sys.stderr)
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or failed_steps or passed == 0 or refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
