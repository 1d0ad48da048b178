"""Errors that end a command with one clear line instead of a traceback."""


class MlgateError(Exception):
    """A problem the user can fix; the message is the whole explanation."""

    exit_code = 2


class ConfigError(MlgateError):
    """The configuration file is missing, unreadable or invalid."""


class EvidenceError(MlgateError):
    """An evidence document is unreadable or does not match the schema."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's message on one line; a long one keeps its start and its end (where
    MLflow's schema errors say what is missing, after a dump of the data)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"
