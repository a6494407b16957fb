"""benchmarks/nicabench/search_data.py: the search test set is distinct, repeatable, and
embedded once per recipe."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from benchmarks.nicabench.search_data import F32, QUESTION_STEMS, Recipe, _gerund, generate
from benchmarks.nicabench.search_data import load_or_make as load


class CountingEmbed:
    """Deterministic stand-in vectors (a text's hash as a seed), counting the texts asked for."""

    def __init__(self) -> None:
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> F32:
        self.texts += len(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            rows.append(np.random.default_rng(seed).standard_normal(8))
        return np.asarray(rows, dtype=np.float32)


def test_documents_are_distinct() -> None:
    documents, _ = generate(5000, 20, seed=1)
    assert len(set(documents)) == len(documents) == 5000, "every document text is its own"


def test_the_same_arguments_give_the_same_set() -> None:
    assert generate(500, 20, seed=3) == generate(500, 20, seed=3), "a test set must repeat"
    assert generate(500, 20, seed=3)[0] != generate(500, 20, seed=4)[0], "the seed matters"


def test_a_smaller_set_is_the_start_of_a_larger_one() -> None:
    """The benchmark's 1k and 10k steps store the first rows of the 100k set."""
    assert generate(300, 20, seed=5)[0] == generate(3000, 20, seed=5)[0][:300]


def test_queries_are_never_documents_and_half_are_questions() -> None:
    documents, queries = generate(2000, 40, seed=2)
    assert len(set(queries)) == 40, "queries are distinct"
    assert not set(queries) & set(documents), "a query is never a stored document"
    questions = [q for q in queries if q.endswith("?") and q.startswith(QUESTION_STEMS)]
    assert len(questions) == 20, f"half the queries should be questions, got {questions}"


def test_a_paraphrase_keeps_its_documents_actor_action_and_object() -> None:
    documents, queries = generate(2000, 40, seed=2)

    def words(text: str) -> set[str]:
        return set(text.lower().replace(",", "").rstrip(".").split())

    paraphrase = queries[0]
    best = max(documents, key=lambda document: len(words(paraphrase) & words(document)))
    assert len(words(paraphrase) - words(best)) == 1, (
        f"{paraphrase!r} should share all its words but the verb with a document, best {best!r}"
    )


@pytest.mark.parametrize(
    ("action", "gerund"),
    [
        ("kneads", "kneading"),
        ("debugs", "debugging"),
        ("studies", "studying"),
        ("operates on", "operating on"),
        ("fixes", "fixing"),
        ("ties", "tying"),
    ],
)
def test_paraphrases_use_the_ing_form(action: str, gerund: str) -> None:
    assert _gerund(action) == gerund


def test_too_many_queries_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="at most"):
        generate(100, 10_000, seed=1)


def test_the_recipe_key_changes_with_each_ingredient() -> None:
    base = Recipe(documents=1000, seed=10, model="a" * 64)
    others = [
        Recipe(documents=1001, seed=10, model="a" * 64),
        Recipe(documents=1000, seed=11, model="a" * 64),
        Recipe(documents=1000, seed=10, model="b" * 64),
        Recipe(documents=1000, seed=10, model="a" * 64, version=base.version + 1),
    ]
    assert base.key() == Recipe(documents=1000, seed=10, model="a" * 64).key()
    assert len({base.key(), *(other.key() for other in others)}) == 5


def test_a_second_load_reads_the_cache_instead_of_embedding(tmp_path: Path) -> None:
    embed = CountingEmbed()
    recipe = Recipe(documents=300, seed=1, model="m")
    first = load(recipe, 10, tmp_path, embed)
    assert embed.texts == 300, "the first load embeds every document"
    second = load(recipe, 10, tmp_path, embed)
    assert embed.texts == 300, "the second load should embed nothing"
    assert np.array_equal(first.document_vectors, second.document_vectors)
    assert first.documents == second.documents and first.queries == second.queries
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"search-{recipe.key()}.json",
        f"search-{recipe.key()}.npy",
    ], "one vectors file and its recipe, no partial file left"


def test_another_recipe_is_embedded_again(tmp_path: Path) -> None:
    embed = CountingEmbed()
    load(Recipe(documents=200, seed=1, model="m"), 10, tmp_path, embed)
    load(Recipe(documents=200, seed=1, model="other"), 10, tmp_path, embed)
    assert embed.texts == 400, "another model's weights: other vectors"
