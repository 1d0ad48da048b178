"""Options and helpers the mlgate commands share: --config, --evidence-dir, a stage's command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def config_option(function: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Config file [default: mlgate.yml in the working directory].",
    )(function)


def evidence_option(function: F) -> F:
    return click.option(
        "--evidence-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Evidence directory [default: evidence_dir from the config, .mlgate/evidence].",
    )(function)


def load_config(config_path: Path | None) -> Any:
    from mlgate import config

    # An explicit --config must exist; the default file is optional for stage commands.
    return config.load(config_path, required=config_path is not None)


def command_options(function: F) -> F:
    """Options every stage that runs a command shares."""
    for decorator in reversed(
        [
            click.option(
                "--command",
                "command_line",
                default=None,
                help="Command as one string, split like a shell would (no shell is used); "
                "an alternative to COMMAND after --.",
            ),
            click.option(
                "--working-directory", default=None, help="Where the command runs and paths start."
            ),
            click.option(
                "--timeout", type=float, default=None, help="Seconds before the stage is stopped."
            ),
            click.argument("command", nargs=-1, type=click.UNPROCESSED),
        ]
    ):
        function = decorator(function)
    return function
