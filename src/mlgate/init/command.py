"""The `mlgate init` command: detection and rendering live in this package's other modules."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="init")
@click.argument(
    "directory",
    default=".",
    # Checked by init itself, which names every problem in one line of its own.
    type=click.Path(path_type=Path, readable=False),
)
@click.option(
    "--model",
    default=None,
    help="The model to gate: a registered model NAME (its version at alias candidate), "
    "models:/NAME@ALIAS, models:/NAME/VERSION, or a directory holding an MLmodel file "
    "[default: an MLmodel directory found in the project].",
)
@click.option(
    "--promotion",
    is_flag=True,
    help="Also write bundle registration and the workflow_dispatch promotion workflow "
    "(needs a registered model).",
)
@click.option(
    "--fork-report/--no-fork-report",
    default=True,
    help="Write .github/workflows/mlgate-fork-report.yml, the verdict on pull requests from "
    "forks (on by default: init cannot tell whether forks will open pull requests, and the "
    "workflow's job is skipped for every other run).",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init_command(
    directory: Path, model: str | None, promotion: bool, fork_report: bool, force: bool
) -> None:
    """Write mlgate.yml and the GitHub workflows for the project in DIRECTORY.

    \b
    mlgate.yml                               the stages and the policy
    .github/workflows/mlgate.yml             the gate on pull requests, merge queues and
                                             pushes to the default branch
    .github/workflows/mlgate-fork-report.yml the verdict on pull requests from forks
                                             (on workflow_run of the gate)
    .github/workflows/mlgate-promote.yml     with --promotion

    \b
    It looks for (and enables the stages for):
      pytest tests          test_*.py / *_test.py files, tests/ or test/   -> tests
      pytest-benchmark      tests using the benchmark fixture, benchmarks/ -> bench
      requirements          requirements*.txt, pyproject.toml              -> scan, install step
      sources               src/, top-level packages or modules            -> scan (bandit)
      a Dockerfile          Dockerfile or Containerfile                    -> scan (trivy)
      an MLflow model       --model, or a directory holding MLmodel        -> promotion,
                                                                              load/quality examples
    Stages it cannot configure are written as commented-out examples. The workflows pin
    mlgate's actions to the commit this mlgate runs from, when it can tell (a git checkout,
    or pip's record of a git install), else to the placeholder <mlgate-commit-sha>.
    Existing files are never overwritten without --force; nothing is written unless
    everything could be.
    """
    from mlgate.init import detect, files, pin

    project = detect.inspect(directory, model)
    found = pin.find()
    rendered = files.render(project, found, promotion, fork_report)
    files.write(directory, rendered, force)
    for line in project.found() or ["no tests, benchmarks, requirements, Dockerfile or model"]:
        click.echo(f"found {line}")
    for item in rendered:
        click.echo(f"wrote {item.path}")
    if found.sha is None:
        click.echo(
            "mlgate's commit is unknown: replace <mlgate-commit-sha> in the workflows with the "
            "commit SHA of the mlgate release you reviewed"
        )
    if not _ignores_scratch(directory / ".gitignore"):
        click.echo("add .mlgate/ to .gitignore: it is scratch (evidence, reports), never committed")
    click.echo("next: mlgate config check, then commit mlgate.yml and .github/workflows/")


def _ignores_scratch(gitignore: Path) -> bool:
    try:
        return ".mlgate" in gitignore.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
