"""An exception's message on one line, shortened: how registry errors quote MLflow's."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's message on one line, shortened."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
