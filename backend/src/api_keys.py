"""API keys: the file API_KEYS_FILE names, and checking a presented key against it.

The file is a JSON list, one object per key, holding the SHA-256 of each key, never the key:

    [
      {"name": "ci-reader", "scope": "read",  "sha256": "<64 hex digits: sha256 of the key>"},
      {"name": "ingest",    "scope": "write", "sha256": "..."}
    ]

- name    what logs and 403 messages call the key (1-64 of A-Z a-z 0-9 . _ -), unique
- scope   "read": embeddings, search, models; "write": also documents and collections
- sha256  hex SHA-256 of the key as the client sends it (`printf %s KEY | sha256sum`)

Several keys may be valid at once (a rotation lists the old and the new key until every
client has the new one). A presented key is hashed and compared with every listed hash in
constant time (hmac.compare_digest), so neither the answer nor its timing says how close a
guess was. The file on the host reveals no key; keys should be long random strings (e.g.
32 random bytes, base64), since a hash of a short one can be guessed offline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
FIELDS = ("name", "scope", "sha256")
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class ApiKeysError(ValueError):
    """The keys file cannot be used; str() is one line (it never quotes a hash)."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: Scope
    digest: bytes = field(repr=False)  # the key's SHA-256, 32 bytes

    def allows(self, needed: Scope) -> bool:
        """`write` includes `read`."""
        return self.scope == "write" or needed == "read"


@dataclass(frozen=True)
class ApiKeys:
    keys: tuple[ApiKey, ...]

    def match(self, presented: str) -> ApiKey | None:
        """The key whose hash is the presented key's, or None. Every listed key is compared,
        each in constant time, whichever matches."""
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def __len__(self) -> int:
        return len(self.keys)


def load(path: Path) -> ApiKeys:
    """The keys of the file at `path`; ApiKeysError naming the problem (and the entry)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ApiKeysError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ApiKeysError(f"{path} is not UTF-8 text") from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ApiKeysError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}"
        ) from None
    return parse(document, str(path))


def parse(document: Any, where: str) -> ApiKeys:
    if not isinstance(document, list):
        raise ApiKeysError(f"{where} must hold a JSON list of keys, not {_kind(document)}")
    if not document:
        raise ApiKeysError(
            f"{where} holds no keys: list at least one, or unset API_KEYS_FILE to leave the "
            "API open"
        )
    keys = [_entry(item, f"{where}: entry {index}") for index, item in enumerate(document)]
    for first in range(len(keys)):
        for second in range(first + 1, len(keys)):
            if keys[first].name == keys[second].name:
                raise ApiKeysError(
                    f"{where}: entries {first} and {second} have the same name {keys[first].name!r}"
                )
            if keys[first].digest == keys[second].digest:
                raise ApiKeysError(f"{where}: entries {first} and {second} are the same key")
    return ApiKeys(tuple(keys))


def _entry(item: Any, where: str) -> ApiKey:
    if not isinstance(item, dict):
        raise ApiKeysError(f"{where} must be an object with {', '.join(FIELDS)}")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise ApiKeysError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    missing = [name for name in FIELDS if name not in item]
    if missing:
        raise ApiKeysError(f"{where}: {missing[0]!r} is missing")
    name, scope, sha256 = item["name"], item["scope"], item["sha256"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiKeysError(f"{where}: name must be 1-64 of A-Z a-z 0-9 . _ -")
    if scope not in SCOPES:
        raise ApiKeysError(f"{where} ({name}): scope must be 'read' or 'write', not {scope!r}")
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
        raise ApiKeysError(
            f"{where} ({name}): sha256 must be 64 hex digits, the SHA-256 of the key "
            "(never the key itself)"
        )
    return ApiKey(name=name, scope=scope, digest=bytes.fromhex(sha256))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a " + type(value).__name__


def entry_for(name: str, scope: Scope, key: str) -> dict[str, str]:
    """One entry of the file for `key` (what a deployment writes; tests use it too)."""
    return {"name": name, "scope": scope, "sha256": hashlib.sha256(key.encode()).hexdigest()}
