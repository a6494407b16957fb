"""Add up the junit reports of a test run and print one closing line.

usage: summary.py REPORT_DIR [FAILED_STEP ...]; exits 1 if a test or a step failed.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(argv: list[str]) -> int:
    report_dir, failed_steps = Path(argv[1]), argv[2:]
    passed = failed = skipped = 0
    for report in sorted(report_dir.glob("*.xml")):
        # Our own pytest junit reports, not untrusted input.
        for suite in ET.parse(report).getroot().iter("testsuite"):  # noqa: S314
            tests = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    for step in failed_steps:
        print(f"failed step: {step}", file=sys.stderr)
    if passed == 0:
        print("error: no test ran", file=sys.stderr)
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or failed_steps or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
