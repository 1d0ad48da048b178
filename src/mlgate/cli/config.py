"""`mlgate config`: validate the config, name the extras it needs, print its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlgate.cli.options import config_option, load_config
from mlgate.errors import MlgateError


@click.group(name="config")
def config_group() -> None:
    """Validate the config or print its JSON Schema."""


@config_group.command("check")
@config_option
def config_check(config_path: Path | None) -> None:
    """Validate the config file; print what it enables."""
    cfg = load_config(config_path or Path("mlgate.yml"))
    click.echo(
        f"{config_path or 'mlgate.yml'}: ok; stages: {', '.join(cfg.enabled_stages) or 'none'}"
    )


# The module each extra brings, to tell whether it is installed.
_EXTRA_MODULES = {
    "stats": "scipy",
    "load": "locust",
    "bench": "pytest_benchmark",
    "serve": "mlflow",
    "example": "sklearn",
    "container": "docker",
    "scan": "pip_audit",
    "modelscan": "fickling",
    "drift": "pandas",
    "quality": "sklearn",
}


@config_group.command("extras")
@config_option
@click.option(
    "--extras", "named", default=None, help="Check these extras instead, comma-separated."
)
@click.option("--missing", is_flag=True, help="Only the extras not installed here.")
def config_extras(config_path: Path | None, named: str | None, missing: bool) -> None:
    """Print the package extras the enabled stages need, comma-separated (for installers)."""
    import importlib.util

    from mlgate.stages import STAGES

    if named is not None:
        wanted = [name for name in named.split(",") if name]
        unknown = [name for name in wanted if name not in _EXTRA_MODULES]
        if unknown:
            raise MlgateError(f"unknown extras: {', '.join(unknown)}")
    else:
        cfg = load_config(config_path or Path("mlgate.yml"))
        wanted = list(
            dict.fromkeys(
                extra
                for name in cfg.enabled_stages
                for extra in STAGES[name].extras_for(cfg.stage_config(name))
            )
        )
    if missing:
        wanted = [e for e in wanted if importlib.util.find_spec(_EXTRA_MODULES[e]) is None]
    click.echo(",".join(wanted))


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of mlgate.yml (for editors)."""
    from mlgate import config

    click.echo(json.dumps(config.json_schema(), indent=2))
