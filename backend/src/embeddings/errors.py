"""The one error of loading an encoder."""

from __future__ import annotations


class EncoderLoadError(Exception):
    """A snapshot cannot be loaded as a sentence encoder; str() is one line naming the file."""
