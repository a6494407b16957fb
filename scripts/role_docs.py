#!/usr/bin/env python3
"""Render each role's meta/argument_specs.yml as a Markdown table in the docs.

A table sits between `<!-- role-vars:NAME -->` and `<!-- /role-vars:NAME -->` in any
Markdown file of docs/ (or in README.md): adding that pair of markers to a page is all a
new role's table needs. `role_docs.py` rewrites the tables; `role_docs.py --check` exits 1
when a table is stale, when a marker names a role without argument specs, or when a role
with argument specs has no table (scripts/test runs it), so the docs cannot drift from the
specs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
MARKERS = re.compile(r"<!-- role-vars:(\w+) -->.*?<!-- /role-vars:\1 -->", flags=re.S)


class RoleDocsError(Exception):
    """A problem with a one-line reason."""


def pages(repo: Path) -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    found = [repo / "README.md"] if (repo / "README.md").is_file() else []
    return found + sorted((repo / "docs").rglob("*.md"))


def spec_file(repo: Path, role: str) -> Path:
    return repo / "roles" / role / "meta" / "argument_specs.yml"


def documented_roles(repo: Path) -> list[str]:
    """The roles that have argument specs, each of which needs a table."""
    return sorted(p.parent.parent.name for p in (repo / "roles").glob("*/meta/argument_specs.yml"))


def _cell(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def options(repo: Path, role: str) -> dict[str, Any]:
    """The `main` entry point's options; a role without one: every entry point's, in order."""
    path = spec_file(repo, role)
    if not path.is_file():
        raise RoleDocsError(f"no argument specs for role '{role}' ({path.relative_to(repo)})")
    entry_points: dict[str, Any] = yaml.safe_load(path.read_text())["argument_specs"]
    if "main" in entry_points:
        return dict(entry_points["main"].get("options") or {})
    merged: dict[str, Any] = {}
    for entry in entry_points.values():
        for name, spec in (entry.get("options") or {}).items():
            merged.setdefault(name, spec)
    return merged


def entry_points(repo: Path, role: str) -> str:
    """A role's entry points (tasks_from), what each does and the inputs it takes."""
    specs: dict[str, Any] = yaml.safe_load(spec_file(repo, role).read_text())["argument_specs"]
    rows = ["| entry point | what it does | its inputs |", "| --- | --- | --- |"]
    for name, entry in specs.items():
        inputs = (
            ", ".join(f"`{option}`" for option in entry.get("options") or {}) or "none of its own"
        )
        point = "main" if name == "main" else f"tasks_from: {name}"
        rows.append(f"| `{point}` | {_cell(entry.get('short_description', ''))} | {inputs} |")
    return "\n".join(rows)


def table(repo: Path, role: str) -> str:
    """The variable table of a role's options; and where the role has entry points besides
    main, or no options at all, the table of its entry points."""
    found = options(repo, role)
    parts = []
    if found:
        rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
        for name, spec in found.items():
            kind = spec.get("type", "str")
            if "choices" in spec:
                kind += " (" + ", ".join(str(c) for c in spec["choices"]) + ")"
            default = (
                "*required*" if spec.get("required") else f"`{_cell(spec.get('default', ''))}`"
            )
            rows.append(f"| `{name}` | {kind} | {default} | {_cell(spec.get('description', ''))} |")
        parts.append("\n".join(rows))
    specs = yaml.safe_load(spec_file(repo, role).read_text())["argument_specs"]
    if not found or set(specs) - {"main"}:
        parts.append(entry_points(repo, role))
    return "\n\n".join(parts)


def render(repo: Path, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        role = match.group(1)
        return f"<!-- role-vars:{role} -->\n{table(repo, role)}\n<!-- /role-vars:{role} -->"

    return MARKERS.sub(replace, text)


def main(argv: list[str] | None = None, repo: Path = REPO) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a table is stale or missing"
    )
    args = parser.parse_args(argv)
    problems: list[str] = []
    tabled: set[str] = set()
    for page in pages(repo):
        current = page.read_text()
        tabled.update(match.group(1) for match in MARKERS.finditer(current))
        try:
            wanted = render(repo, current)
        except RoleDocsError as error:
            problems.append(f"{page.relative_to(repo)}: {error}")
            continue
        if current == wanted:
            continue
        if args.check:
            problems.append(
                f"{page.relative_to(repo)}: role tables are stale; run scripts/role_docs.py"
            )
        else:
            page.write_text(wanted)
    for role in documented_roles(repo):
        if role not in tabled:
            problems.append(
                f"role '{role}' has argument specs but no table: add <!-- role-vars:{role} --> "
                f"and <!-- /role-vars:{role} --> to a page in docs/, then run scripts/role_docs.py"
            )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
