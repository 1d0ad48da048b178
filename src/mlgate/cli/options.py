"""Options the mlgate commands share, and stage commands whose options come from the stage's
config model: --config, --evidence-dir, a stage's command, an option per config field."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

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


def path_option(
    *decls: str, default: str, help: str, file: bool = False, directory: bool = False
) -> Callable[[F], F]:
    """An option naming a file (file=True), a directory (directory=True) or either, with its
    default shown."""
    kind = click.Path(path_type=Path, dir_okay=not file, file_okay=not directory)
    return click.option(*decls, type=kind, default=Path(default), show_default=True, help=help)


def load_config(config_path: Path | None) -> Any:
    from mlgate import config

    # An explicit --config must exist; the default file is optional for stage commands.
    return config.load(config_path, required=config_path is not None)


def command_options(function: F) -> F:
    """The command a stage runs: --command or COMMAND after --."""
    for decorator in reversed(
        [
            click.option(
                "--command",
                "command_line",
                default=None,
                help="Command as one string, split like a shell would (no shell is used); "
                "an alternative to COMMAND after --.",
            ),
            click.argument("command", nargs=-1, type=click.UNPROCESSED),
        ]
    ):
        function = decorator(function)
    return function


# The config fields every stage command takes an option for, after its own.
COMMON_FIELDS = ("working_directory", "timeout")


def config_model(stage: str) -> type[BaseModel]:
    """The stage's config model, through the stage registry (its light config module only)."""
    from mlgate import stages

    return stages.config_model(stage)


@dataclasses.dataclass(frozen=True)
class FieldOption:
    """An option that sets one field of a stage's config, under a name of its own."""

    key: str  # as mlgate.yml spells it (the field's alias where it has one)
    flag: str  # e.g. --rerun-junit


class StageCommand(click.Command):
    """A stage's command: --config, --evidence-dir and an option for each config field it names
    (its type, and its help from the field's description), then the command's own options.
    The field options are added when the parameters are first read (a parse, the command's
    help), so that listing the commands imports no stage."""

    def __init__(self, *args: Any, stage: str, fields: tuple[str | FieldOption, ...], **kw: Any):
        self._with_fields = False
        super().__init__(*args, **kw)
        self.stage = stage
        self.fields = (*fields, *COMMON_FIELDS)

    @property
    def params(self) -> list[click.Parameter]:
        if not self._with_fields:
            model = config_model(self.stage)
            # After --config and --evidence-dir: stage_command declares them outermost.
            self._params[2:2] = [_field_option(self.stage, model, f) for f in self.fields]
            self._with_fields = True
        return self._params

    @params.setter
    def params(self, params: list[click.Parameter]) -> None:
        self._params, self._with_fields = params, False


def stage_command(
    stage: str, *fields: str | FieldOption, **settings: Any
) -> Callable[[Callable[..., Any]], StageCommand]:
    """A command for `stage` with an option for each of its config `fields` (and the common
    ones), passed to the function as keyword arguments named by their keys (None: not given)."""

    def decorate(function: Callable[..., Any]) -> StageCommand:
        make = click.command(cls=StageCommand, stage=stage, fields=fields, **settings)
        return make(config_option(evidence_option(function)))

    return decorate


def _field_option(stage: str, model: type[BaseModel], spec: str | FieldOption) -> click.Option:
    key = spec.key if isinstance(spec, FieldOption) else spec
    flag = spec.flag if isinstance(spec, FieldOption) else "--" + key.replace("_", "-")
    info = next(f for name, f in model.model_fields.items() if (f.alias or name) == key)
    kind, repeated = _click_type(info.annotation)
    help_text = _field_help(stage, key, info, repeated)
    if repeated:  # given none: an empty tuple
        return click.Option([flag, key], type=kind, multiple=True, help=help_text)
    return click.Option([flag, key], type=kind, default=None, help=help_text)


def _click_type(annotation: Any) -> tuple[type, bool]:
    """The option's type for a field's (int, float, else str), and whether it repeats (a list)."""
    kinds = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
    if len(kinds) != 1:
        return str, False  # e.g. a path or a mapping: the config's validation decides
    kind = kinds[0]
    if typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is list:
        return str, True
    return (kind, False) if kind in (int, float) else (str, False)


def _field_help(stage: str, key: str, info: FieldInfo, repeated: bool) -> str:
    """The field's description, and where the value comes from when the option is not given."""
    text = (info.description or "").strip()
    if repeated:
        text += " Repeatable."
    where = f"config: stages.{stage}.{key}"
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if default not in (None, []) and "default" not in text.lower():
        where += f"; default: {_shown(default)}"
    return f"{text} [{where}]"


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)  # 30.0 as 30
