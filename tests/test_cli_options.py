"""The command line's shape: every option a command had is still there, stage commands' options
come from their config models, and a command imports only what it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mlgate.cli import COMMANDS, cli
from mlgate.cli.options import StageCommand, config_model

SRC = Path(__file__).resolve().parents[1] / "src"

# The options of the stage commands when their options were written out one by one (dbcd89b).
STAGE_FLAGS = {
    "test": "--command --junit --rerun-junit",
    "bench": "--command --json",
    "load": "--url --path --payload --locustfile --duration --warmup --users --rate --baseline",
    "drift": "--reference --current --json --dispatch",
    "probe": "--url --path --payload --perturbations --request-timeout",
    "quality": "--candidate --champion --data --target --json",
    "scan": "--source --requirements --environment --image --dockerfile --model --osv-db --waivers",
}
EVERY_STAGE = "--config --evidence-dir --working-directory --timeout"


def _flags(command: click.Command) -> set[str]:
    params = command.get_params(click.Context(command))
    return {opt for param in params for opt in param.opts if opt.startswith("--")}


@pytest.mark.parametrize("name", sorted(STAGE_FLAGS))
def test_a_stage_command_keeps_every_option_it_had(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, StageCommand)
    expected = {*STAGE_FLAGS[name].split(), *EVERY_STAGE.split(), "--help"}
    assert _flags(command) == expected
    # Also where tools that walk the group (a reference generator) read them.
    assert {o for param in command.params for o in param.opts} >= expected - {"--help"}


@pytest.mark.parametrize("name", sorted(STAGE_FLAGS))
def test_a_stage_option_is_typed_and_described_by_its_config_field(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, StageCommand)
    fields = config_model(command.stage).model_fields
    keys = {info.alias or field: info for field, info in fields.items()}
    derived = [
        param
        for param in command.get_params(click.Context(command))
        if isinstance(param, click.Option) and param.name in keys
    ]
    assert len(derived) >= 2  # at least --working-directory and --timeout
    for option in derived:
        info = keys[str(option.name)]
        assert option.help and info.description and info.description.strip() in option.help
        assert f"stages.{command.stage}.{option.name}" in option.help
        assert option.multiple == (str(info.annotation).startswith("list["))


def test_every_stage_command_takes_its_options_from_the_stage_config_model() -> None:
    from mlgate.stages import STAGES

    for stage, entry in STAGES.items():
        assert config_model(stage) is entry.config_model


def test_every_command_is_found_where_the_group_says() -> None:
    context = click.Context(cli)
    assert cli.list_commands(context) == sorted(COMMANDS)
    for name in COMMANDS:
        assert isinstance(cli.get_command(context, name), click.Command), name


def _modules_after(*argv: str) -> set[str]:
    """The modules a fresh `mlgate ARGV` process has imported when it exits."""
    script = (
        "import json, sys\n"
        "from mlgate.cli import cli\n"
        "try:\n"
        f"    cli.main({list(argv)!r}, standalone_mode=False)\n"
        "finally:\n"
        "    print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


HEAVY = ("numpy", "pandas", "scipy", "mlflow", "github", "mlgate.stages")
OTHER_COMMANDS = ("mlgate.cli.stages", "mlgate.cli.promote", "mlgate.cli.serve", "mlgate.init")


def _imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_listing_the_commands_imports_no_stage() -> None:
    assert not _imported(_modules_after("--help"), HEAVY)


@pytest.mark.parametrize("name", ["gate", "report"])
def test_a_report_command_imports_no_other_command(name: str) -> None:
    modules = _modules_after(name, "--help")
    assert "mlgate.cli.gate" in modules
    assert not _imported(modules, HEAVY + OTHER_COMMANDS)


def test_a_mistyped_command_is_answered_with_the_one_meant() -> None:
    from tests.helpers import mlgate_in_process

    result = mlgate_in_process("gat")
    assert result.exit_code == 2
    assert result.stderr == "mlgate: error: No such command 'gat'. Did you mean 'gate'?\n"
