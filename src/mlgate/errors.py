"""Errors that end a command with one clear line instead of a traceback."""


class MlgateError(Exception):
    """A problem the user can fix; the message is the whole explanation."""

    exit_code = 2


class ConfigError(MlgateError):
    """The configuration file is missing, unreadable or invalid."""


class EvidenceError(MlgateError):
    """An evidence document is unreadable or does not match the schema."""
