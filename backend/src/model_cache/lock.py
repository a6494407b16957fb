"""Whether the model cache is unlocked: the marker file of an encrypted cache.

An fscrypt directory shows only ciphertext names while it is locked, and an unmounted
one is missing or empty, so a file created inside it after the first unlock (named by
HF_CACHE_MARKER) is found by its name only while the cache is usable.
"""

from __future__ import annotations

from pathlib import Path


def locked_reason(hf_home: Path, marker: str) -> str | None:
    """None when no marker is configured or it is there; otherwise a one-line reason."""
    if not marker:
        return None
    path = hf_home / marker
    try:
        path.lstat()
    except OSError:
        return f"model cache locked or not mounted: {path} is missing"
    return None
