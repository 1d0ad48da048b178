"""The quality stage's bad input: an exception whose message is the one-line reason."""

from __future__ import annotations


class Invalid(Exception):
    """Input the stage cannot evaluate; the message is the one-line reason."""
