"""roles/backend_common's API key filters (filter_plugins/api_keys.py): the check of
backend_api_keys names the entry and never quotes a key, and the file it writes is one the
backend reads (backend/src/api_keys.py, loaded here by path), with each key's SHA-256 only."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.roles.loader import REPO, load

FILTERS = load("api_keys_filters", REPO / "roles/backend_common/filter_plugins/api_keys.py")
BACKEND = load("backend_api_keys", REPO / "backend/src/api_keys.py")
WRITE_KEY = "w" * 31 + "1"
READ_KEY = "r" * 40


def key(name: str = "ingest", scope: str = "write", value: str = WRITE_KEY) -> dict[str, str]:
    return {"name": name, "scope": scope, "key": value}


def test_the_file_is_what_the_backend_reads_with_hashes_only() -> None:
    keys = [key(), key("search-app", "read", READ_KEY)]
    content = FILTERS.api_keys_file(keys)
    assert WRITE_KEY not in content and READ_KEY not in content, "a key is in the hashes file"
    parsed = BACKEND.parse(json.loads(content), "api_keys")
    assert parsed.match(WRITE_KEY).name == "ingest" and parsed.match(READ_KEY).scope == "read"
    assert parsed.match("w" * 32) is None
    assert json.loads(content)[0]["sha256"] == hashlib.sha256(WRITE_KEY.encode()).hexdigest()


def test_no_keys_is_an_empty_list() -> None:
    assert json.loads(FILTERS.api_keys_file([])) == []
    assert FILTERS.api_keys_problem([]) == ""


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("ingest", "must be a list of {name, scope, key}"),
        ([WRITE_KEY], "entry 0 must be a mapping with name, scope, key"),
        ([{**key(), "sha256": "x"}], "entry 0: unknown field 'sha256'"),
        ([{"name": "ingest", "scope": "write"}], "entry 0: 'key' is missing"),
        ([key(name="in gest")], "entry 0: name must be 1-64 of A-Z a-z 0-9 . _ -"),
        ([key(name="x" * 65)], "entry 0: name must be 1-64"),
        ([key(scope="admin")], "entry 0 (ingest): scope must be 'read' or 'write', not 'admin'"),
        ([key(value=WRITE_KEY[:31])], "entry 0 (ingest): key must be at least 32 characters"),
        ([key(value=WRITE_KEY[:20] + " " + WRITE_KEY[:20])], "key must be at least 32 characters"),
        ([key(), key(value=READ_KEY)], "entry 1 (ingest): the name is already entry 0's"),
        ([key(), key("other")], "entry 1 (other): the same key as entry 0"),
    ],
)
def test_a_bad_list_is_one_line_naming_the_entry_never_the_key(keys: Any, problem: str) -> None:
    said = FILTERS.api_keys_problem(keys)
    assert problem in said, f"expected {problem!r}, got {said!r}"
    assert "\n" not in said and WRITE_KEY[:20] not in said and READ_KEY not in said, said
    with pytest.raises(ValueError, match="backend_api_keys: "):
        FILTERS.api_keys_file(keys)


@pytest.mark.parametrize("name", ["a", "ci.reader_2-x", "x" * 64, "", "a b", "é", "x" * 65, "a/b"])
def test_the_role_and_the_backend_accept_the_same_names(name: str) -> None:
    role = FILTERS.api_keys_problem([key(name=name)]) == ""
    entry = {"name": name, "scope": "write", "sha256": "0" * 64}
    try:
        BACKEND.parse([entry], "api_keys")
        backend = True
    except BACKEND.ApiKeysError:
        backend = False
    assert role == backend, (
        f"{name!r}: the role {'accepts' if role else 'refuses'} it, the backend not"
    )


def test_the_role_and_the_backend_have_the_same_scopes() -> None:
    assert tuple(FILTERS.SCOPES) == tuple(BACKEND.SCOPES)
