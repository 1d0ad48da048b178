"""The mlgate command line: the group of commands (each module of this package holds some)
and its entry point, which turns errors into one line and an exit code."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import signal
import sys
from collections.abc import Iterator, MutableMapping

import click

from mlgate import __version__, redact
from mlgate.errors import MlgateError

# Each command, and where it lives; imported only when it runs (or `mlgate --help` lists it),
# so that a command does not pay for the others' imports.
COMMANDS = {
    "test": "mlgate.cli.stages:test",
    "bench": "mlgate.cli.stages:bench",
    "load": "mlgate.cli.stages:load",
    "drift": "mlgate.cli.stages:drift",
    "probe": "mlgate.cli.stages:probe",
    "quality": "mlgate.cli.stages:quality",
    "scan": "mlgate.cli.stages:scan",
    "run": "mlgate.cli.stages:run",
    "serve": "mlgate.cli.serve:serve",
    "gate": "mlgate.cli.gate:gate",
    "report": "mlgate.cli.gate:report",
    "card": "mlgate.cli.gate:card",
    "fork-evidence": "mlgate.cli.gate:fork_evidence",
    "compare": "mlgate.cli.compare:compare",
    "bundle": "mlgate.cli.promote:bundle_group",
    "promote": "mlgate.cli.promote:promote",
    "rollback": "mlgate.cli.promote:rollback",
    "history": "mlgate.cli.promote:history",
    "init": "mlgate.init.command:init_command",
    "config": "mlgate.cli.config:config_group",
}


class _Commands(MutableMapping[str, click.Command]):
    """The group's commands by name, each imported from COMMANDS when first looked up (listing
    their names imports none)."""

    def __init__(self, where: dict[str, str]) -> None:
        self._where = where
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attribute = self._where[name].split(":")  # KeyError: no such command
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("mlgate's commands are not removed")

    def __contains__(self, name: object) -> bool:
        return name in self._where or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._where, *self._loaded]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._where, *self._loaded]))


@click.group(
    commands=_Commands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 pass/ok, 1 gate failed, 2 usage or config error, 3 gate "
    "inconclusive, 4 stage error or publishing failed.",
)
@click.version_option(__version__, prog_name="mlgate")
def cli() -> None:
    """mlgate: evidence-backed gates for deploying ML models."""
    if os.environ.get("MLGATE_TODAY"):
        from mlgate import waivers

        waivers.today()  # refuses the override inside GitHub Actions, before any command runs


def _terminated(signum: int, frame: object) -> None:
    # A cancelled job sends SIGTERM: unwind like Ctrl-C, so a running test command's process
    # group is stopped instead of orphaned.
    raise KeyboardInterrupt


def main() -> None:
    # What is alive at exit lives to the end: frozen then, it is skipped by the collections
    # of the interpreter's shutdown, 30-50 ms of every command (benchmarks/results-report.md).
    # Cycles that are garbage by then are not collected, so nothing may rely on a __del__ at
    # exit (files are written in `with` blocks). Registered once, however often main() runs
    # in one process (tests).
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _main()
    finally:
        # Called in-process (tests, embedding), the caller's handler comes back.
        signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    try:
        cli.main(standalone_mode=False)
    except MlgateError as exc:
        click.echo(f"mlgate: error: {redact.credentials(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mlgate: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"mlgate: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("mlgate: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MLGATE_DEBUG"):
            raise
        click.echo(
            f"mlgate: internal error: {type(exc).__name__}: {exc} "
            "(set MLGATE_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(70)
