"""The errors of loading an encoder and of running it."""

from __future__ import annotations


class EncoderLoadError(Exception):
    """A snapshot cannot be loaded as a sentence encoder; str() is one line naming the file."""


class EncodeError(Exception):
    """A forward pass gave vectors that must not be served; str() is one line."""
