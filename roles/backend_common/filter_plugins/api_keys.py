"""Filters for backend_api_keys: checking the inventory's list, and the file the backend reads.

The inventory holds the keys themselves (from ansible-vault), a list of {name, scope, key};
the host gets only their SHA-256, in the JSON list backend/src/api_keys.py reads
(API_KEYS_FILE): [{name, scope, sha256}]. Written here, in Python with unit tests
(tests/roles/test_api_keys_filters.py), so that the check and the file follow the
backend's own rules (a name, the scopes) and no message ever quotes a key.

  backend_api_keys | api_keys_problem   '' or one line saying what is wrong (never a key)
  backend_api_keys | api_keys_file      the hashes file's content (JSON, one line)
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# backend/src/api_keys.py's rules for the file (tests/roles/test_api_keys_filters.py holds
# the two to the same examples).
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
SCOPES = ("read", "write")
FIELDS = ("name", "scope", "key")
# A key is checked against its SHA-256 only; a short one could be guessed from the hash
# offline. 32 characters: e.g. `openssl rand -base64 32` gives 44.
MIN_KEY_LENGTH = 32


def api_keys_problem(keys: Any) -> str:
    """What is wrong with the list, in one line naming the entry, or '' when nothing is."""
    if not isinstance(keys, list):
        return f"must be a list of {{name, scope, key}}, not a {type(keys).__name__}"
    names: dict[str, int] = {}
    digests: dict[str, int] = {}
    for index, entry in enumerate(keys):
        where = f"entry {index}"
        if not isinstance(entry, dict):
            return f"{where} must be a mapping with {', '.join(FIELDS)}"
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            return f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})"
        missing = [field for field in FIELDS if field not in entry]
        if missing:
            return f"{where}: {missing[0]!r} is missing"
        name, scope, key = entry["name"], entry["scope"], entry["key"]
        if not isinstance(name, str) or not NAME.fullmatch(name):
            return f"{where}: name must be 1-64 of A-Z a-z 0-9 . _ -"
        where = f"{where} ({name})"
        if name in names:
            return f"{where}: the name is already entry {names[name]}'s"
        names[name] = index
        if scope not in SCOPES:
            return f"{where}: scope must be 'read' or 'write', not {scope!r}"
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH or re.search(r"\s", key):
            return (
                f"{where}: key must be at least {MIN_KEY_LENGTH} characters with no spaces or "
                "newlines (e.g. `openssl rand -base64 32`, kept in ansible-vault)"
            )
        digest = hashlib.sha256(key.encode()).hexdigest()
        if digest in digests:
            return f"{where}: the same key as entry {digests[digest]}"
        digests[digest] = index
    return ""


def api_keys_file(keys: list[dict[str, str]]) -> str:
    """The content of the file API_KEYS_FILE names: each key's name, scope and SHA-256."""
    problem = api_keys_problem(keys)
    if problem:
        raise ValueError(f"backend_api_keys: {problem}")
    entries = [
        {
            "name": entry["name"],
            "scope": entry["scope"],
            "sha256": hashlib.sha256(entry["key"].encode()).hexdigest(),
        }
        for entry in keys
    ]
    return json.dumps(entries) + "\n"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"api_keys_problem": api_keys_problem, "api_keys_file": api_keys_file}
