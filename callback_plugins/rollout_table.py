"""Print one table at the end of a deploy.yml run, a failed one too: host, release
serving, state.

Ansible stops a serial play at its first failure (deploy.yml's failure budget) and
runs no later play, so the table cannot be a task: this callback prints it from what
the run reported. Each backend host sets the fact ``backend_rollout_report``
(``{"release": ..., "state": ...}``; roles/cutover tasks_from: report) once before the
rollout ("not reached") and again after its deploy ("rolled out", "unchanged"); a host
whose deploy failed keeps the release its record names, with the failing task's message.
Found beside deploy.yml (a playbook's ``callback_plugins/``) and on by itself; it prints
nothing in a run where no host reported.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: rollout_table
type: aggregate
short_description: the table host -> release serving -> state at the end of deploy.yml
description:
  - Reads the fact backend_rollout_report each backend host sets, and the hosts that failed.
"""

FACT = "backend_rollout_report"
MESSAGE_LIMIT = 160


def first_line(message: object) -> str:
    """The first non-empty line of a task's message, cut to MESSAGE_LIMIT characters."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    text = lines[0] if lines else "failed"
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def render(rows: list[tuple[str, str, str]]) -> list[str]:
    """Rows of (host, release, state) as aligned text lines with a header."""
    header = ("host", "release serving", "state")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]
    return [f"{h:<{widths[0]}}  {r:<{widths[1]}}  {s}" for h, r, s in [header, *rows]]


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no types
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "rollout_table"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self.reports: dict[str, dict[str, str]] = {}
        self.failures: dict[str, str] = {}

    def v2_runner_on_ok(self, result: Any) -> None:
        report = (result._result.get("ansible_facts") or {}).get(FACT)
        if isinstance(report, dict):
            self.reports[result._host.get_name()] = {k: str(v) for k, v in report.items()}

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self.failures[result._host.get_name()] = first_line(result._result.get("msg"))

    def v2_runner_on_unreachable(self, result: Any) -> None:
        message = first_line(result._result.get("msg"))
        self.failures[result._host.get_name()] = "unreachable: " + message

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self.reports:
            return
        rows = []
        for host, report in sorted(self.reports.items()):  # the same order every run
            state = report.get("state", "")
            if stats.failures.get(host, 0) or stats.dark.get(host, 0):
                state = "FAILED: " + self.failures.get(host, "failed")
            rows.append((host, report.get("release", ""), state))
        self._display.banner("ROLLOUT")
        for line in render(rows):
            self._display.display(line)
