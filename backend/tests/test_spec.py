"""parse_model_repos: HF_MODEL_REPOS as users write it."""

from __future__ import annotations

import pytest

from src.model_cache.spec import ModelSpec, parse_model_repos


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        (" , ,", []),
        ("org/name", [ModelSpec("org/name", "main")]),
        (" org/a ,  org/b ", [ModelSpec("org/a", "main"), ModelSpec("org/b", "main")]),
        ("org/a@v1.2,org/b", [ModelSpec("org/a", "v1.2"), ModelSpec("org/b", "main")]),
        ("org/a@" + "a" * 40, [ModelSpec("org/a", "a" * 40)]),
        ("org/a@refs/pr/3", [ModelSpec("org/a", "refs/pr/3")]),
        ("Org_1/name.v2-x", [ModelSpec("Org_1/name.v2-x", "main")]),
    ],
)
def test_valid_values_parse(value: str, expected: list[ModelSpec]) -> None:
    assert parse_model_repos(value, "main") == expected, f"{value!r} should parse as {expected}"


def test_entries_without_revision_take_the_default() -> None:
    specs = parse_model_repos("org/a,org/b@dev", default_revision="v3")
    assert [s.revision for s in specs] == ["v3", "dev"], "only org/a should take the default v3"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("name-only", "'name-only'"),
        ("org/name/extra", "'org/name/extra'"),
        ("org/na me", "'org/na me'"),
        ("org/-name", "'org/-name'"),
        ("org--x/name", "'org--x/name'"),
        ("org/a@", "'org/a@'"),
        ("org/a@bad rev", "'org/a@bad rev'"),
        ("org/a@../x", "'org/a@../x'"),
        ("org/a,org/a@v2", "'org/a@v2'"),
    ],
)
def test_malformed_entry_raises_one_line_naming_it(value: str, named: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        parse_model_repos(value, "main")
    message = str(caught.value)
    assert named in message, f"the error should name the entry {named}, got: {message}"
    assert "\n" not in message, f"the error should be one line, got: {message!r}"


def test_duplicate_repo_is_reported_as_repeated() -> None:
    with pytest.raises(ValueError, match="repeats repository org/a"):
        parse_model_repos("org/a, org/a", "main")


def test_str_shows_repo_and_revision() -> None:
    assert str(ModelSpec("org/a", "v1")) == "org/a@v1"
