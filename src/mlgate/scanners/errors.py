"""The error a scanner raises when it cannot do its job (kept apart so OSV data can raise it)."""

from __future__ import annotations

from mlgate.errors import MlgateError


class ScanError(MlgateError):
    """A scanner could not do its job (tool missing, crashed, input unusable): the stage is
    `error`, never a pass. The message is one line naming the tool and the problem."""
