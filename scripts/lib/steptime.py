"""Pass a command's output through, and note where its time goes.

usage: CMD 2>&1 | steptime.py LOG ACTIONS

Every line goes on to stdout unchanged, and to LOG with the seconds since the start in
front (where the minutes of a long step went, read afterwards). A Molecule line that starts
an action (`default ➜ converge: Executing`) closes the previous action and opens this one;
ACTIONS gets one `scenario<TAB>action<TAB>seconds` line per action, in order, which
scripts/lib/summary.py prints under the step. Molecule reports no durations itself.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# molecule/logger.py: `<scenario> ➜ <action>: Executing` (INFO level, rich markup stripped).
ACTION = re.compile(r"(?P<scenario>[\w.-]+) ➜ (?P<action>[\w-]+): Executing")


def follow(lines: TextIO, out: TextIO, log: TextIO, actions: TextIO) -> None:
    start = time.monotonic()
    current: tuple[str, str, float] | None = None

    def close(now: float) -> None:
        if current is not None:
            scenario, action, began = current
            actions.write(f"{scenario}\t{action}\t{now - began:.1f}\n")
            actions.flush()

    for line in lines:
        now = time.monotonic()
        out.write(line)
        out.flush()
        log.write(f"{now - start:8.1f} {line}")
        match = ACTION.search(ANSI.sub("", line))
        if match:
            close(now)
            current = (match["scenario"], match["action"], now)
    close(time.monotonic())


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: CMD 2>&1 | steptime.py LOG ACTIONS", file=sys.stderr)
        return 2
    with (
        Path(argv[1]).open("w", encoding="utf-8") as log,
        Path(argv[2]).open("w", encoding="utf-8") as actions,
    ):
        stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        follow(stdin, sys.stdout, log, actions)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
