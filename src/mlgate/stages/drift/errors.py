"""The drift stage's bad input: an exception whose message is the one-line reason."""

from __future__ import annotations


class Invalid(Exception):
    """Input that cannot be compared; the message is the one-line reason."""
