"""Every pointer the code gives a reader, `docs/<page>.md, "<section>"` (in error messages,
comments and the roles' specs), names a page that exists and a heading on it that starts
with that section's name: a message that sends an operator somewhere at 3 a.m. must not
send them nowhere."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POINTER = re.compile(r'docs/([a-z0-9-]+\.md),? "([^"]+)"')
SOURCES = ("*.yml", "*.py", "*.sh", "*.j2", "*.conf", "Dockerfile")
SKIP = {".venv", "build", ".git", "node_modules"}


def headings(page: Path) -> list[str]:
    return [
        line.lstrip("#").strip()
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    ]


def pointers() -> list[tuple[str, str, str]]:
    found = []
    for pattern in SOURCES:
        for path in REPO.rglob(pattern):
            if SKIP.intersection(path.relative_to(REPO).parts):
                continue
            # A pointer may wrap across comment lines: `# ... "Replacing a` / `# lost host"`.
            text = path.read_text(encoding="utf-8", errors="replace")
            for page, section in POINTER.findall(re.sub(r"\s*\n\s*#?\s*", " ", text)):
                found.append((str(path.relative_to(REPO)), page, section))
    return found


def test_every_pointer_into_the_docs_names_a_page_and_a_heading_on_it() -> None:
    found = pointers()
    assert len(found) >= 10, (
        f"found only {len(found)} pointers into docs/: is the pattern still right?"
    )
    broken = []
    for source, page, section in found:
        path = REPO / "docs" / page
        if not path.exists():
            broken.append(f"{source}: docs/{page} does not exist")
        elif not any(heading.startswith(section) for heading in headings(path)):
            broken.append(f'{source}: docs/{page} has no heading "{section}"')
    assert broken == [], "\n".join(sorted(set(broken)))
