"""Render every file `mlgate init` writes first, then write them all or none."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlgate.errors import MlgateError
from mlgate.init import config_template, workflow_template
from mlgate.init.detect import Project
from mlgate.init.pin import Pin, git_output

CONFIG = "mlgate.yml"
GATE_WORKFLOW = ".github/workflows/mlgate.yml"
PROMOTE_WORKFLOW = ".github/workflows/mlgate-promote.yml"
FORK_WORKFLOW = ".github/workflows/mlgate-fork-report.yml"


@dataclass(frozen=True)
class Rendered:
    path: str  # relative to the project, POSIX
    text: str


def render(project: Project, pin: Pin, promotion: bool, fork_report: bool) -> list[Rendered]:
    if promotion and (project.model is None or project.model.name is None):
        raise MlgateError(
            "--promotion needs a registered model: give --model NAME (or models:/NAME@ALIAS)"
        )
    branch = json.dumps(default_branch(project.root))
    files = [
        Rendered(CONFIG, config_template.render(project)),
        Rendered(GATE_WORKFLOW, workflow_template.gate(project, pin, branch, promotion)),
    ]
    if fork_report:
        files.append(Rendered(FORK_WORKFLOW, workflow_template.fork_report(pin)))
    if promotion:
        files.append(Rendered(PROMOTE_WORKFLOW, workflow_template.promote(pin)))
    return files


def default_branch(root: Path) -> str:
    """origin's HEAD when the project is a clone, else main."""
    name = git_output(root, "symbolic-ref", "--short", "refs/remotes/origin/HEAD")
    if name is None or not name.startswith("origin/"):
        return "main"
    return name.removeprefix("origin/")


def write(root: Path, files: list[Rendered], force: bool) -> None:
    """Every file or none: refuse existing ones (unless force), stage each next to its place,
    then move them in; a failure removes what was moved."""
    existing = [f.path for f in files if (root / f.path).exists()]
    if existing and not force:
        raise MlgateError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} in {root}; "
            "--force overwrites"
        )
    staged: list[tuple[Path, Path]] = []
    moved: list[Path] = []
    try:
        for item in files:
            target = root / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            staged.append((Path(name), target))
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(item.text)
        for temporary, target in staged:
            os.replace(temporary, target)
            moved.append(target)
    except OSError as exc:
        for temporary, target in staged:
            temporary.unlink(missing_ok=True)
            if target in moved and target.relative_to(root).as_posix() not in existing:
                target.unlink(missing_ok=True)
        raise MlgateError(f"cannot write {exc.filename or root}: {exc.strerror or exc}") from None
