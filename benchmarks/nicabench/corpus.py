"""Real English sentences, without a download: the first lines of the docstrings of Python's
own standard library (read with `ast`, nothing imported), deduplicated, shuffled with a fixed
seed. Split into disjoint sets: documents to store, queries to search with, load sentences.
"""

from __future__ import annotations

import ast
import random
import sysconfig
from pathlib import Path

MIN_WORDS, MAX_WORDS = 5, 30


def sentence(docstring: str | None) -> str | None:
    """The docstring's first line if it reads as a sentence of MIN_WORDS..MAX_WORDS words."""
    if not docstring:
        return None
    first = docstring.strip().splitlines()[0].strip()
    words = first.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or not first[0].isupper():
        return None
    if not first.endswith(".") or any(mark in first for mark in ("(", ">>>", "`", "::")):
        return None
    return first


def stdlib_sentences(limit: int, seed: int = 10) -> list[str]:
    """`limit` distinct sentences (fewer if the library has fewer), in a seeded order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found: set[str] = set()
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "test" in path.parts[-2] or path.name.startswith("test"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                text = sentence(ast.get_docstring(node))
                if text:
                    found.add(text)
    ordered = sorted(found)
    random.Random(seed).shuffle(ordered)  # noqa: S311 - a repeatable order, not a secret
    return ordered[:limit]
