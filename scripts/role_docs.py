#!/usr/bin/env python3
"""Render each role's meta/argument_specs.yml as a Markdown table in README.md.

The tables sit between `<!-- role-vars:NAME -->` and `<!-- /role-vars:NAME -->`.
`role_docs.py` rewrites them; `role_docs.py --check` exits 1 when README.md is out
of date (scripts/test runs it), so the README cannot drift from the specs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def _cell(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(role: str) -> str:
    spec_file = REPO / "roles" / role / "meta" / "argument_specs.yml"
    options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]["options"]
    rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    for name, spec in options.items():
        kind = spec.get("type", "str")
        if "choices" in spec:
            kind += " (" + ", ".join(str(c) for c in spec["choices"]) + ")"
        default = "*required*" if spec.get("required") else f"`{_cell(spec.get('default', ''))}`"
        rows.append(f"| `{name}` | {kind} | {default} | {_cell(spec.get('description', ''))} |")
    return "\n".join(rows)


def render(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        role = match.group(1)
        return f"<!-- role-vars:{role} -->\n{table(role)}\n<!-- /role-vars:{role} -->"

    return re.sub(r"<!-- role-vars:(\w+) -->.*?<!-- /role-vars:\1 -->", replace, text, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if current != wanted:
            print("error: README.md role tables are stale; run scripts/role_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
