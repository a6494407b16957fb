"""API keys for tests: a keys file as a deployment writes it (src.api_keys' format)."""

from __future__ import annotations

import json
from pathlib import Path

from src.api_keys import Scope, entry_for

# Throwaway keys, as long as real ones (32 random bytes, base64).
READ_KEY = "test-read-4mX0e9UuN2rV7qLk1sH8cWbZ3yJ5tP6aF0gD"
WRITE_KEY = "test-write-Qz8Lr2Vn5Xc1Bm7Kj4Hg9Fd3Sa6Pw0Oe2Iu"
NEW_WRITE_KEY = "test-write-new-Yt6Re3Wq9Az1Sx4Dc7Fv2Gb5Hn8Jm0Kl"


def write_keys_file(path: Path, keys: dict[str, tuple[Scope, str]]) -> Path:
    """`keys`: name -> (scope, key); the file holds each key's SHA-256 only, mode 0400."""
    entries = [entry_for(name, scope, key) for name, (scope, key) in keys.items()]
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o400)
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
