"""parse_model_repos: HF_MODEL_REPOS as users write it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.model_spec import ModelSpec, is_valid_repo_id, is_valid_revision, parse_model_repos


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


# The one rule (src/model_spec_rules.json) is shared with roles/backend_common and the fake Hub;
# all of them are held to this list (tests/roles/test_validate.py checks the other two).
SHARED_EXAMPLES = json.loads(
    (
        Path(__file__).resolve().parents[2] / "tests" / "data" / "model_spec_examples.json"
    ).read_text()
)


@pytest.mark.parametrize("repo_id", SHARED_EXAMPLES["repo_ids"]["accept"])
def test_the_shared_good_repo_ids_are_accepted(repo_id: str) -> None:
    assert is_valid_repo_id(repo_id), f"{repo_id!r} should be a valid repo id"


@pytest.mark.parametrize("repo_id", SHARED_EXAMPLES["repo_ids"]["refuse"])
def test_the_shared_bad_repo_ids_are_refused(repo_id: str) -> None:
    assert not is_valid_repo_id(repo_id), f"{repo_id!r} should be refused"


@pytest.mark.parametrize("revision", SHARED_EXAMPLES["revisions"]["accept"])
def test_the_shared_good_revisions_are_accepted(revision: str) -> None:
    assert is_valid_revision(revision), f"{revision!r} should be a valid revision"


@pytest.mark.parametrize("revision", SHARED_EXAMPLES["revisions"]["refuse"])
def test_the_shared_bad_revisions_are_refused(revision: str) -> None:
    assert not is_valid_revision(revision), f"{revision!r} should be refused"
